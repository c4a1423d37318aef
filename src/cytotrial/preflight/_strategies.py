"""The config's strategies loaded once: strategy files, gate names and what each panel reports.

A FlowJo workspace read with ``sample_group`` gates each data file with its own sample's tree: every
file of the panel in the sample sheet must be one sample of the group (by path, else file name),
said before any job, one line per kind of mismatch naming the files.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, StrategyError

if TYPE_CHECKING:
    import pandas as pd

    from ..gating import PanelGating
    from ..io import Strategy

__all__ = ["marker_warnings", "strategy_findings"]


def one_line(error: BaseException) -> str:
    """An error's message on one line."""
    return " ".join(str(error).split()) or type(error).__name__


def located(value: str | Path, base: Path) -> Path:
    """A config path: absolute, or relative to ``base``."""
    path = Path(value)
    return path if path.is_absolute() else base / path


def _model(config: Mapping) -> dict[str, dict[str, Any]]:
    """The population model without Boolean definitions that do not parse (said by the config)."""
    from .._boolean import BooleanSyntaxError, parse
    from ..config import population_model

    populations = {}
    for name, spec in (config.get("populations") or {}).items():
        spec = dict(spec or {})
        if spec.get("boolean"):
            try:
                parse(spec["boolean"])
            except BooleanSyntaxError:
                spec.pop("boolean")
        populations[name] = spec
    return population_model({**config, "populations": populations})


def _load(panel: str, spec: Mapping, base: Path) -> tuple[Strategy | None, str | None]:
    """The panel's strategy, or the one-line reason it cannot be loaded."""
    from ..io import load_strategy

    try:
        strategy = load_strategy(
            located(spec["strategy"], base),
            sample_group=spec.get("sample_group"),
            sample_id=spec.get("sample_id"),
        )
    except StrategyError as error:
        return None, f"config strategies.{panel}.strategy: {one_line(error)}"
    return strategy, None


def _panel(
    panel: str, strategy: Strategy, model: dict[str, dict[str, Any]], config: Mapping
) -> tuple[PanelGating | None, list[str], set[str]]:
    """The panel's gating, the lines of its unknown gates, and the populations they leave out.

    The panel's adaptive gates (``strategies.<panel>.adaptive``) are resolved against the strategy
    too, every problem of theirs a line.
    """
    from ..gating import adaptive_problems, panel_gating

    spec = config["strategies"][panel]
    _, problems = adaptive_problems(panel, strategy, spec.get("adaptive"), panels=config["panels"])
    broken: set[str] = set()
    usable = dict(model)
    for name, gate in (config["strategies"][panel].get("populations") or {}).items():
        try:
            strategy.resolve(str(gate))
        except StrategyError as error:
            problems.append(f"config strategies.{panel}.populations.{name}: {one_line(error)}")
            gates = {p: g for p, g in model[name]["gates"].items() if p != panel}
            usable[name] = {**model[name], "gates": gates}
            broken.add(name)
    try:
        gating = panel_gating(panel, strategy, usable, mfi_markers=config["mfi"]["markers"])
    except ConfigError as error:  # every gate resolved above: a gate the gating cannot take
        problems.append(one_line(error))
        return None, problems, broken
    return gating, problems, broken


def _reach_problems(
    config: Mapping, model: Mapping, gatings: Mapping[str, PanelGating], broken: set[str]
) -> list[str]:
    """Boolean populations and ratios that no panel can report (their operands in no one panel)."""
    from .._boolean import names

    reported = {name for gating in gatings.values() for name in gating.order}
    problems = []
    for name, spec in model.items():
        tree = spec.get("boolean")
        if tree is None or name in reported:
            continue
        operands = sorted(set(names(tree)))
        unreported = {o for o in operands if o in model and model[o].get("boolean") is not None}
        unreported -= reported
        if set(operands) & broken or unreported or not set(operands) <= set(model):
            continue  # said where it starts: an unknown gate, another Boolean, no population
        problems.append(
            f"config populations.{name}.boolean: no panel reports all of {', '.join(operands)}; "
            "a Boolean population combines populations of one panel"
        )
        broken.add(name)
    for ratio, pair in config["ratios"].items():
        if set(pair) & broken or not set(pair) <= reported:
            continue
        if not any(set(pair) <= set(gating.order) for gating in gatings.values()):
            problems.append(
                f"config ratios.{ratio}: no panel reports both {pair[0]} and {pair[1]}; a ratio "
                "divides two populations of one sample"
            )
    return problems


def _sheet_files(config: Mapping, base: Path) -> pd.DataFrame | None:
    """The sample sheet's ``sample_id``, ``panel`` and ``fcs`` (``None``: not readable yet)."""
    from ..errors import SampleSheetError
    from ..io import read_sample_sheet

    try:
        sheet = read_sample_sheet(located(config["samples"], base), check_files=False)
    except SampleSheetError:  # said by the sheet's own check (or the demo is not simulated yet)
        return None
    return sheet[["sample_id", "panel", "fcs"]]


def _data_file_problems(
    config: Mapping, base: Path, strategies: Mapping[str, Strategy]
) -> list[str]:
    """Sheet files that are no sample, or several, of their panel's FlowJo sample group."""
    grouped = {p: s for p, s in strategies.items() if s.sample_trees is not None}
    sheet = _sheet_files(config, base) if grouped else None
    if sheet is None:
        return []
    problems = []
    for panel, strategy in grouped.items():
        rows = sheet[sheet["panel"] == panel]
        files = dict(zip(rows["sample_id"], rows["fcs"]))
        problems += [
            f"config strategies.{panel}.sample_group: {line}"
            for line in strategy.sample_trees.problems(files)
        ]
    return problems


def strategy_findings(
    config: Mapping, *, base: Path, panels: Iterable[str] | None = None
) -> tuple[list[str], dict[str, PanelGating]]:
    """Every strategy loaded, every reported gate found, every Boolean and ratio reachable.

    With every panel (``panels`` ``None``, the workflow's check), the sample sheet's files are
    matched to the samples of each FlowJo ``sample_group`` too (once the sheet reads).

    Parameters
    ----------
    config
        The resolved config (:func:`cytotrial.config.diagnose_config`).
    base
        Folder relative paths are relative to.
    panels
        These panels only (``None``: every panel, and what no panel reports).

    Returns
    -------
    tuple
        One line per problem (naming ``strategies.<panel>...`` and the file), and each loaded
        panel's gating (panels whose strategy cannot be loaded are left out).
    """
    model = _model(config)
    problems: list[str] = []
    gatings: dict[str, PanelGating] = {}
    loaded: dict[str, Strategy] = {}
    broken: set[str] = set()
    complete = panels is None
    chosen = list(config["strategies"]) if panels is None else list(panels)
    for panel in chosen:
        spec = config["strategies"][panel]
        if not located(spec["strategy"], base).is_file():
            complete = False  # said by the config check
            continue
        strategy, problem = _load(panel, spec, base)
        if strategy is None:
            problems.append(problem)
            complete = False
            continue
        loaded[panel] = strategy
        gating, lines, left_out = _panel(panel, strategy, model, config)
        problems += lines
        broken |= left_out
        if gating is None:
            complete = False
        else:
            gatings[panel] = gating
    if complete:  # with a panel missing, what no panel reports is not known
        problems += _reach_problems(config, model, gatings, broken)
    if panels is None:
        problems += _data_file_problems(config, base, loaded)
    return problems, gatings


def _norm(name: str) -> str:
    return " ".join(str(name).split()).casefold()


def marker_warnings(config: Mapping, gatings: Mapping[str, PanelGating]) -> list[str]:
    """MFI markers that are no name of ``panels:`` and no channel of a loaded strategy.

    Such a marker is found only where a file has a channel or ``$PnS`` label of that very name;
    every other file's sample would be excluded for it.
    """
    known = set()
    for marker, names in config["panels"].items():
        names = [names] if isinstance(names, str) else list(names or [])
        known |= {_norm(n) for n in [marker, *names]}
    for gating in gatings.values():
        known |= {_norm(d) for d in gating.strategy.dimensions()}
    return [
        f"config mfi.markers.{population}: {marker!r} is no marker or channel name of config "
        "panels: nor a channel of the strategies; a file without a channel or $PnS label of "
        "that name is excluded"
        for population, markers in config["mfi"]["markers"].items()
        for marker in markers
        if _norm(marker) not in known
    ]
