"""Everything knowable before gating, checked before any job: every problem at once, one line each.

What a run needs and can know before it reads any event is checked in one pass, so a mistake costs
seconds, not a gating run:

* the config: unknown keys at every level (with the nearest known key), values, arm colours,
  channel names under two markers, the references between populations, ratios, MFIs and the
  analysed and primary features (:func:`cytotrial.config.diagnose_config`);
* the strategies: each file loads (GatingML validity, the FlowJo sample group or sample), every
  reported gate name or path exists, every Boolean population and ratio is reported by some panel;
  an MFI marker that neither ``panels:`` nor a strategy names is a warning;
* a spillover matrix file: square, numeric, 1 on the diagonal, invertible, one detector per marker,
  every channel the strategies compensate present;
* the sample sheet: columns and values, arms and panels, unique sample ids and FCS files, every FCS
  file present, visits and their cycle and day; the baseline and response visits and measures per
  compartment; the samples `figures.gating_review` lists (a retired figure key is a warning);
* the patients table: columns and values, arms against the sheet, and patients in one of the two
  only, in both directions (warnings: a patient with samples but no clinical row is left out of
  the response rate, a clinical row without samples counts in the response rate only).

What only the file can tell (a damaged FCS file, a missing channel) excludes that sample alone,
with its reason, when it is gated.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from ..errors import CytotrialError

__all__ = ["Findings", "check_before_run", "check_inputs", "preflight"]


@dataclass
class Findings:
    """The outcome of a pre-flight check.

    Attributes
    ----------
    errors
        One line per problem; any stops the run.
    warnings
        One line per thing a user should know that does not stop the run.
    config
        The config with its defaults filled in (``None`` when it is too broken to resolve).
    sheet
        The sample sheet as :func:`cytotrial.io.read_sample_sheet` reads it, when the inputs were
        checked and it has no problem (``None`` otherwise): the run needs not read it again.
    """

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    config: dict[str, Any] | None = None
    sheet: Any = field(default=None, compare=False, repr=False)


def preflight(
    config: Mapping,
    *,
    base: str | Path | None = None,
    inputs: bool = True,
    panels: Iterable[str] | None = None,
    cache: str | Path | None = None,
) -> Findings:
    """Check a workflow config and everything it names, without reading any event.

    Parameters
    ----------
    config
        The config as loaded (defaults not yet filled in).
    base
        Folder relative paths in config are relative to (the working directory by default).
    inputs
        Whether to check the sample sheet and patients table too (not for the demo before it is
        simulated, nor for ``cytotrial gate``).
    panels
        Check the strategies (and the matrix against them) of these panels only (``cytotrial gate``
        gates one); ``None``: every panel, and whether each Boolean population and ratio is
        reported by some panel.
    cache
        A file keeping the strategies' findings between runs (``preflight/_cache.py``): read back
        while nothing they read has changed. ``None``: always check.
    """
    from ..config import diagnose_config
    from ._cache import findings_key, read_findings, write_findings
    from ._compensation import compensation_findings
    from ._figures import figure_warnings
    from ._inputs import input_findings
    from ._strategies import marker_warnings, strategy_findings

    base = Path(base or ".")
    errors, resolved = diagnose_config(config, base=base)
    findings = Findings(errors=errors, config=resolved)
    if resolved is None:
        return findings
    findings.warnings += figure_warnings(resolved)
    key = kept = None
    if cache is not None:
        key = findings_key(resolved, base=base, panels=panels)
        kept = read_findings(Path(cache), key)
    if kept is None:
        problems, gatings = strategy_findings(resolved, base=base, panels=panels)
        problems += compensation_findings(resolved, gatings, base=base)
        kept = {"errors": problems, "warnings": marker_warnings(resolved, gatings)}
        if cache is not None and key is not None and not problems:
            write_findings(Path(cache), key, kept)
    findings.errors += kept["errors"]
    findings.warnings += kept["warnings"]
    if inputs:
        problems, warnings, sheet = input_findings(resolved, base=base)
        findings.errors += problems
        findings.warnings += warnings
        findings.sheet = sheet if not problems else None
    return findings


def _report(findings: Findings, stream: TextIO | None) -> None:
    stream = sys.stderr if stream is None else stream
    for line in findings.warnings:
        stream.write(f"cytotrial: warning: {line}\n")
    stream.flush()
    if findings.errors:
        raise CytotrialError("\n".join(findings.errors))


def check_before_run(
    config: Mapping,
    *,
    base: str | Path | None = None,
    inputs: bool = True,
    panels: Iterable[str] | None = None,
    stream: TextIO | None = None,
    cache: str | Path | None = None,
    keep: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """:func:`preflight`, its warnings written to ``stream`` (stderr), its errors raised.

    ``keep`` (a dict) gets the checked sample sheet under ``"samples"``, when the inputs were
    checked (:attr:`Findings.sheet`).

    Returns
    -------
    dict
        The config with its defaults filled in.

    Raises
    ------
    CytotrialError
        Every problem, one line each.
    """
    findings = preflight(config, base=base, inputs=inputs, panels=panels, cache=cache)
    _report(findings, stream)
    assert findings.config is not None  # no errors: the config resolved
    if keep is not None and findings.sheet is not None:
        keep["samples"] = findings.sheet
    return findings.config


def check_inputs(
    config: Mapping,
    *,
    base: str | Path | None = None,
    stream: TextIO | None = None,
    keep: dict[str, Any] | None = None,
) -> None:
    """The sample sheet and patients table of a checked config (the demo's, once simulated).

    Warnings go to ``stream`` (stderr); errors are raised as one :class:`CytotrialError`, one
    line each. ``keep`` (a dict) gets the checked sample sheet under ``"samples"``.
    """
    from ._inputs import input_findings

    errors, warnings, sheet = input_findings(config, base=Path(base or "."))
    _report(Findings(errors=errors, warnings=warnings), stream)
    if keep is not None and sheet is not None and not errors:
        keep["samples"] = sheet
