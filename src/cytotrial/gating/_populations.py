"""A panel's reported populations: mapped gates, Boolean populations, their order and true parents.

Per panel, every population of the config's population model that the panel can report:

* a mapped population is a gate of the panel's strategy (by gate name or path, resolved once);
* a Boolean population (``cd8_hladr and cd8_cd38``, ``cd4 and not treg``) is reported where every
  population it names exists in the panel (Booleans over Booleans included); elsewhere it is absent.

Parents, per panel (``freq_parent`` divides by the parent's count; ``""``: all events of the file):

* a mapped population: the config's ``parent:`` override where the panel reports it, else the
  nearest ancestor gate (by gate path) that is itself a reported population of the panel;
* a Boolean population: the override, else the deepest reported population that is an ancestor-or-
  self of every positive operand (``cd4 and not treg`` -> ``cd4``; ``cd8_hladr and cd8_cd38``, both
  under ``cd8`` -> ``cd8``). Where the expression has no positive operand at its top (``a or b``),
  of every branch's positive operands; a branch with none (``a or not b``) leaves the parent ``""``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._boolean import evaluate, names, positive_names
from ..errors import ConfigError, StrategyError
from ._adaptive import AdaptivePlan, adaptive_plan

if TYPE_CHECKING:
    from ..io import Strategy

__all__ = [
    "PanelGating",
    "gate_population_model",
    "load_panel_gating",
    "panel_gating",
    "population_masks",
]

#: A parsed Boolean expression (``cytotrial._boolean``): nested tuples.
Tree = tuple


@dataclass
class PanelGating:
    """A panel's loaded strategy and the populations it reports.

    Attributes
    ----------
    panel
        The panel name (a value of the sample sheet's ``panel`` column).
    strategy
        The loaded strategy.
    populations
        Mapped population -> the gate path it reports, in output order.
    booleans
        Boolean population -> its parsed expression, in evaluation order (operands first).
    order
        Every population the panel reports, in output order.
    parents
        Population -> its parent population in this panel (``""``: all events of the file).
    mfi
        ``(population, marker)`` pairs whose median intensity the panel reports, in config order.
    adaptive
        The strategy's gates placed from each sample's data (:func:`adaptive_plan`); ``None``:
        every gate as the strategy draws it.
    adaptive_spec, panels
        The config's ``strategies.<panel>.adaptive`` and ``panels:`` the plan was made from (a
        sample's own tree gets its own plan, :meth:`for_file`).
    """

    panel: str
    strategy: Strategy
    populations: dict[str, str]
    booleans: dict[str, Tree] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    parents: dict[str, str] = field(default_factory=dict)
    mfi: list[tuple[str, str]] = field(default_factory=list)
    adaptive: AdaptivePlan | None = None
    adaptive_spec: Mapping[str, Any] | None = field(default=None, repr=False)
    panels: Mapping[str, Sequence[str]] | None = field(default=None, repr=False)
    _own: dict[int, PanelGating | str] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if not self.order:
            self.order = [
                *self.populations,
                *(n for n in self.booleans if n not in self.populations),
            ]

    def for_file(self, fcs: str | Path) -> PanelGating:
        """The gating of one data file: this one, or its own sample's tree of a FlowJo workspace.

        A workspace read with ``sample_group`` (:attr:`Strategy.sample_trees`) gates each file
        with the tree of its own sample, where each population is the gate of the same path as in
        the panel's template (so parents and outputs stay the panel's). The sample's own tree is
        the template of its adaptive gates: they are placed from its own positions, within the
        declared windows, and fall back to its own positions. One gating per distinct tree.

        Raises
        ------
        StrategyError
            One line naming the file: no sample of the group is it (or several are), its tree
            cannot be read, lacks the gate of a population or does not fit the adaptive gates.
        """
        trees = self.strategy.sample_trees
        if trees is None:
            return self
        strategy = trees.strategy_for(fcs)
        own = self._own.get(id(strategy))
        if own is None:
            own = self._own[id(strategy)] = self._sample_gating(strategy)
        if isinstance(own, str):
            raise StrategyError(f"{Path(fcs).name}: {own}")
        return own

    def _sample_gating(self, strategy: Strategy) -> PanelGating | str:
        """The panel's gating on a sample's own tree, or why that tree cannot report the panel."""
        where = f"its gate tree (sample {strategy.sample_id!r} of {strategy.path.name})"
        for name, path in self.populations.items():
            if path not in strategy.paths:
                return f"{where} has no gate {path!r}, the gate of population {name}"
        adaptive = None
        if self.adaptive_spec:
            try:
                adaptive = adaptive_plan(
                    self.panel, strategy, self.adaptive_spec, panels=self.panels
                )
            except ConfigError as error:
                return (
                    f"{where} does not fit the adaptive gates: {'; '.join(str(error).splitlines())}"
                )
        return replace(self, strategy=strategy, adaptive=adaptive)

    def gate_path(self, population: str) -> str:
        """The gate path of a mapped population; ``""`` for a Boolean population."""
        return self.populations.get(population, "")


def gate_population_model(strategy: Strategy, panel: str = "") -> dict[str, dict[str, Any]]:
    """A population model that reports every gate of a strategy (for gating without a config).

    Each gate is reported under its name, or its path where several gates share the name; parents
    are then the gates' own parents.

    Returns
    -------
    dict
        As :func:`cytotrial.config.population_model`: ``{name: {label, boolean, parent, gates}}``.
    """
    seen: dict[str, int] = {}
    for gate in strategy.gates:
        seen[gate.name] = seen.get(gate.name, 0) + 1
    model = {}
    for gate in strategy.gates:
        name = gate.name if seen[gate.name] == 1 else gate.path
        model[name] = {"label": name, "boolean": None, "parent": None, "gates": {panel: gate.path}}
    return model


def load_panel_gating(
    panel: str,
    spec: Mapping,
    *,
    model: Mapping[str, Mapping[str, Any]] | None = None,
    mfi_markers: Mapping[str, Sequence[str]] | None = None,
    base: Path | None = None,
    panels: Mapping[str, Sequence[str]] | None = None,
) -> PanelGating:
    """Load a panel's strategy (GatingML or FlowJo) and resolve the populations it reports.

    Parameters
    ----------
    panel
        The panel name (a value of the sample sheet's ``panel`` column).
    spec
        The config entry ``strategies.<panel>``: ``strategy`` (path), optional ``sample_group``
        (FlowJo: each file gated with its own sample's tree, :meth:`PanelGating.for_file`) or
        ``sample_id`` (FlowJo: one sample's tree for every file), ``populations`` (name -> gate
        name or gate path) and optional ``adaptive`` (gates placed from each sample's data).
    model
        The config's population model (:func:`cytotrial.config.population_model`): labels, Boolean
        definitions, parent overrides and each population's gate per panel. ``None``: the
        populations of ``spec`` alone, no Boolean populations.
    mfi_markers
        The config's ``mfi.markers`` (population -> markers); pairs of populations the panel
        reports are kept.
    base
        Folder that relative strategy paths are relative to (the working directory by default).
    panels
        The config's ``panels:`` (marker -> channel names): adaptive declarations may name a
        gate's dimension by marker.

    Raises
    ------
    ConfigError
        A population maps to a gate the strategy lacks (one line naming
        ``strategies.<panel>.populations.<name>``), or an adaptive declaration does not fit the
        strategy (one line per problem naming ``strategies.<panel>.adaptive.<gate>...``).
    StrategyError
        The strategy file cannot be loaded.
    """
    from ..config import population_model
    from ..io import load_strategy

    path = Path(spec["strategy"])
    if base is not None and not path.is_absolute():
        path = base / path
    strategy = load_strategy(
        path, sample_group=spec.get("sample_group"), sample_id=spec.get("sample_id")
    )
    if model is None:
        model = population_model({"strategies": {panel: dict(spec)}})
    return panel_gating(
        panel,
        strategy,
        model,
        mfi_markers=mfi_markers,
        adaptive=spec.get("adaptive"),
        panels=panels,
    )


def panel_gating(
    panel: str,
    strategy: Strategy,
    model: Mapping[str, Mapping[str, Any]],
    *,
    mfi_markers: Mapping[str, Sequence[str]] | None = None,
    adaptive: Mapping[str, Any] | None = None,
    panels: Mapping[str, Sequence[str]] | None = None,
) -> PanelGating:
    """The populations a loaded strategy reports for a panel, their order and their parents.

    Parameters are as for :func:`load_panel_gating`; ``model`` may come from
    :func:`gate_population_model` (every gate, no config); ``adaptive`` is the config's
    ``strategies.<panel>.adaptive``.
    """
    mapped: dict[str, str] = {}
    for name, spec in model.items():
        gate = (spec.get("gates") or {}).get(panel)
        if gate is None or spec.get("boolean") is not None:
            continue
        try:
            mapped[name] = strategy.resolve(str(gate)).path
        except StrategyError as error:
            raise ConfigError(f"config strategies.{panel}.populations.{name}: {error}") from None
    booleans = _available_booleans(model, set(mapped))
    order = [name for name in model if name in mapped or name in booleans]
    parents = _parents(strategy, model, mapped, booleans, order)
    pairs = [
        (str(population), str(marker))
        for population, markers in (mfi_markers or {}).items()
        if population in parents
        for marker in markers
    ]
    return PanelGating(
        panel=panel,
        strategy=strategy,
        populations=mapped,
        booleans=booleans,
        order=order,
        parents=parents,
        mfi=pairs,
        adaptive=adaptive_plan(panel, strategy, adaptive, panels=panels) if adaptive else None,
        adaptive_spec=adaptive or None,
        panels=panels,
    )


def _available_booleans(
    model: Mapping[str, Mapping[str, Any]], mapped: set[str]
) -> dict[str, Tree]:
    """Boolean populations whose operands all exist in the panel, operands first."""
    pending = {
        name: spec["boolean"] for name, spec in model.items() if spec.get("boolean") is not None
    }
    available: dict[str, Tree] = {}
    known = set(mapped)
    progress = True
    while progress:
        progress = False
        for name, tree in list(pending.items()):
            if all(operand in known for operand in names(tree)):
                available[name] = tree
                known.add(name)
                del pending[name]
                progress = True
    return available


def _parents(
    strategy: Strategy,
    model: Mapping[str, Mapping[str, Any]],
    mapped: Mapping[str, str],
    booleans: Mapping[str, Tree],
    order: Sequence[str],
) -> dict[str, str]:
    """Each reported population's parent in the panel (see the module docstring)."""
    reported = set(order)
    by_path: dict[str, str] = {}
    for name in order:  # several names on one gate: the first in output order names it
        if name in mapped:
            by_path.setdefault(mapped[name], name)
    gate_parent = {gate.path: gate.parent_path for gate in strategy.gates}

    def override(name: str) -> str | None:
        wanted = model[name].get("parent")
        return wanted if wanted and wanted != name and wanted in reported else None

    parents: dict[str, str] = {}
    for name, path in mapped.items():
        parent = override(name)
        if parent is None:
            parent = ""
            ancestor = gate_parent.get(path)
            while ancestor is not None:
                if ancestor in by_path:
                    parent = by_path[ancestor]
                    break
                ancestor = gate_parent.get(ancestor)
        parents[name] = parent
    for name, tree in booleans.items():
        parent = override(name)
        parents[name] = parent if parent is not None else _boolean_parent(name, tree, parents)
    return {name: parents[name] for name in order}


def _chain(name: str, parents: Mapping[str, str]) -> list[str]:
    """``name`` and its parents up to the top (ancestors-or-self), guarded against cycles."""
    chain: list[str] = []
    while name and name not in chain and name in parents:
        chain.append(name)
        name = parents[name]
    return chain


def _containers(tree: Tree, parents: Mapping[str, str]) -> set[str] | None:
    """Reported populations that hold every event of ``tree`` (``None``: none is known to)."""
    if tree[0] == "or":
        found = [_containers(branch, parents) for branch in tree[1:]]
        if any(f is None for f in found):
            return None
        return set.intersection(*found)
    positive = positive_names(tree)
    if not positive:
        return None
    return set.intersection(*(set(_chain(p, parents)) for p in positive))


def _boolean_parent(name: str, tree: Tree, parents: Mapping[str, str]) -> str:
    """The deepest reported population holding every event of a Boolean population."""
    found = (_containers(tree, parents) or set()) - {name}
    if not found:
        return ""
    return max(found, key=lambda p: len(_chain(p, parents)))


def population_masks(
    gating: PanelGating, memberships: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Membership of every event in every population the panel reports, in output order.

    Parameters
    ----------
    gating
        The panel's populations.
    memberships
        Gate path -> boolean array over events (:func:`gate_events`).
    """
    masks = {name: memberships[path] for name, path in gating.populations.items()}
    for name, tree in gating.booleans.items():
        masks[name] = np.asarray(evaluate(tree, masks), dtype=bool)
    return {name: masks[name] for name in gating.order}
