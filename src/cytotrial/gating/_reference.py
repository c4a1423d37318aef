"""The reference: FlowKit's ``Session`` on the same file and strategy, counted and timed.

FlowKit is imported when these functions are called, never when the module is imported.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import numpy as np
import pandas as pd

from ._engine import COUNT_TABLE_COLUMNS, Engine, count_events

if TYPE_CHECKING:
    from flowkit import Sample, Session

    from ..io import Strategy

__all__ = ["benchmark_gating", "flowkit_session_counts"]

_T = TypeVar("_T")


@contextmanager
def _flowkit_warnings() -> Iterator[None]:
    """Silence the numpy warnings of FlowKit's log transform, and only them.

    FlowUtils' ``flog`` transform (GatingML log, FlowJo log) takes ``log10`` of every value of the
    channel: negative values warn "invalid value" (the one warning ``-W error`` raises on the test
    data and the FCS variety files), zeros "divide by zero". The NaN / -inf they become are
    FlowKit's result, which is the reference compared against.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore",
            message=r"(invalid value|divide by zero) encountered in log10",
            category=RuntimeWarning,
            module=r"flowutils\.",
        )
        yield


def _analyze(path: Path, strategy: Strategy, *, copy_strategy: bool) -> tuple[Sample, Session]:
    """FlowKit reads the file and its ``Session`` gates it (a copy of the strategy if ``copy_strategy``)."""
    import copy

    from .._flowkit import import_flowkit

    fk = import_flowkit()

    gating_strategy = (
        copy.deepcopy(strategy.gating_strategy) if copy_strategy else strategy.gating_strategy
    )
    with _flowkit_warnings():
        sample = fk.Sample(str(path), sample_id="sample")
        session = fk.Session(gating_strategy, fcs_samples=[sample])
        session.analyze_samples(use_mp=False)
    return sample, session


def _session_gate_counts(session: Session, strategy: Strategy) -> dict[str, int]:
    """Gate path (as :attr:`Gate.path`) -> count, from FlowKit's public results report.

    FlowKit names gates by the ids it parsed (safe ids for names FlowJo allows but XML does not);
    :meth:`Strategy.flowkit_path` turns them back into the paths of our gate records.
    """
    with _flowkit_warnings():
        report = session.get_gating_results("sample").report
    counts: dict[str, int] = {}
    for ancestors, name, quadrant_gate, count in zip(
        report["gate_path"], report["gate_name"], report["quadrant_parent"], report["count"]
    ):
        base = [p for p in ancestors if p and p != "root"]  # ancestors: ("root", ...)
        # a quadrant's row names its quadrant gate, which is part of the population's path
        names = [quadrant_gate, name] if isinstance(quadrant_gate, str) else [name]
        counts[strategy.flowkit_path(base + names)] = int(count)
    return counts


def flowkit_session_counts(path: str | Path, strategy: Strategy) -> pd.DataFrame:
    """The same table as :func:`count_events`, computed by ``flowkit.Session`` (the reference).

    The file is read by FlowKit itself; channel names must match the strategy as they are.
    """
    sample, session = _analyze(Path(path), strategy, copy_strategy=True)
    counts = _session_gate_counts(session, strategy)
    n = int(sample.event_count)
    rows = []
    for gate in strategy.gates:
        parent_count = n if gate.parent_path is None else counts[gate.parent_path]
        rows.append((gate.path, gate.name, gate.parent_path or "", counts[gate.path], parent_count))
    table = pd.DataFrame(rows, columns=COUNT_TABLE_COLUMNS)
    return table.astype({"count": "int64", "parent_count": "int64"})


def _timed(function: Callable[[], _T], repeats: int) -> tuple[float, _T]:
    best = math.inf
    value = None
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        value = function()
        best = min(best, time.perf_counter() - start)
    return best, value


def benchmark_gating(
    path: str | Path, strategy: Strategy, *, repeats: int = 3
) -> dict[str, int | float | bool]:
    """Time cytotrial's gating against FlowKit's ``Session`` on one file, side by side.

    Each step is run ``repeats`` times in this process and its best time kept.

    Returns
    -------
    dict
        ``events``, ``gates``, ``read_fcs_s`` (reading), ``compensate_s`` (reading + compensating the
        strategy's channels with the inverse matrix), ``cytotrial_s`` (reading + gating, end to end),
        ``flowkit_s`` (FlowKit: loading the sample + ``Session.analyze_samples``), ``speedup``
        (flowkit_s / cytotrial_s), ``cytotrial_over_compensate`` (cytotrial_s / compensate_s) and
        ``identical_counts`` (bool).
    """
    from ..io import read_fcs

    path = Path(path)
    read_s, data = _timed(lambda: read_fcs(path), repeats)

    def read_and_compensate() -> Engine:
        engine = Engine(read_fcs(path), strategy, None)
        engine.values.prepare()
        return engine

    compensate_s, _ = _timed(read_and_compensate, repeats)
    ours_s, ours = _timed(lambda: count_events(read_fcs(path), strategy), repeats)
    flowkit_s, _ = _timed(lambda: _analyze(path, strategy, copy_strategy=False), repeats)
    reference = flowkit_session_counts(path, strategy)
    identical = bool(
        list(reference["gate_path"]) == list(ours["gate_path"])
        and np.array_equal(reference["count"].to_numpy(), ours["count"].to_numpy())
    )
    return {
        "events": int(data.n_events),
        "gates": len(strategy.gates),
        "read_fcs_s": read_s,
        "compensate_s": compensate_s,
        "cytotrial_s": ours_s,
        "flowkit_s": flowkit_s,
        "speedup": flowkit_s / ours_s if ours_s > 0 else math.inf,
        "cytotrial_over_compensate": ours_s / compensate_s if compensate_s > 0 else math.inf,
        "identical_counts": identical,
    }
