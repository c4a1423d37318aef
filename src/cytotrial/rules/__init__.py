"""The bodies of the workflow's rules: one function per step, reading and writing files."""

from ._batches import assign_batches
from ._steps import (
    package_versions,
    run_aggregate,
    run_event_crosscheck,
    run_gate_batch,
    run_gating_qc,
)

__all__ = [
    "assign_batches",
    "package_versions",
    "run_aggregate",
    "run_event_crosscheck",
    "run_gate_batch",
    "run_gating_qc",
]
