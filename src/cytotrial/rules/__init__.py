"""The bodies of the workflow's rules: one function per step, reading and writing files."""

from ._aggregate import package_versions, read_samples_for_outputs, run_aggregate
from ._batches import BATCH_COLUMNS, ROOT_BATCH, assign_batches, read_batch, write_batch
from ._crosscheck import run_event_crosscheck, run_gating_qc
from ._gate import run_gate_batch
from ._paths import fcs_for_workdir, fcs_relative_to_sheet, resolve_sheet_fcs, sheet_fcs

__all__ = [
    "BATCH_COLUMNS",
    "ROOT_BATCH",
    "assign_batches",
    "fcs_for_workdir",
    "fcs_relative_to_sheet",
    "package_versions",
    "read_batch",
    "read_samples_for_outputs",
    "resolve_sheet_fcs",
    "run_aggregate",
    "run_event_crosscheck",
    "run_gate_batch",
    "run_gating_qc",
    "sheet_fcs",
    "write_batch",
]
