"""Channel harmonisation: find, in each file, the channel that carries what the strategy gates on.

Sites and instruments name the same marker differently (``CD8``, ``CD8 APC-H7``, ``Comp-APC-H7-A``,
``APC-H7-A``). The workflow config's ``panels:`` maps each marker to the names it may carry; a
strategy dimension is resolved to a file channel by, in order:

1. the file's ``$PnN`` equal to the dimension name (FlowJo's ``Comp-`` prefix ignored);
2. the alias group (marker and its names) that contains the dimension name: the file channel whose
   ``$PnN`` or ``$PnS`` is one of the group's names.

Matching ignores case and surrounding white space.

A channel found is then checked against its own ``$PnS``: when the label names a marker of
``panels:`` other than the one the strategy reads there (CD3 and CD8 swapped in the file's
labels), the file cannot be trusted to carry what its channel names say, and it is refused.

Messages name a channel by its ``$PnN`` only where the strategy or ``panels:`` know that name
(or it is ``Time``); any other channel by its keyword (``$P7N``): a file's TEXT values are never
quoted (:func:`shown_channel_names`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from ..errors import ConfigError, MissingMarkerError

__all__ = ["alias_groups", "panel_marker", "resolve_channels", "shown_channel_names"]


def _norm(name: str) -> str:
    return " ".join(str(name).split()).casefold()


def _strip_comp(name: str) -> str:
    return name[5:] if name.casefold().startswith("comp-") else name


def alias_groups(panels: Mapping[str, Sequence[str]] | None) -> list[tuple[str, frozenset[str]]]:
    """Normalised alias groups ``(marker, names)`` from the config's ``panels:`` mapping.

    Raises
    ------
    ConfigError
        When a name is claimed by two markers (it could not say which marker a channel carries).
    """
    groups: list[tuple[str, frozenset[str]]] = []
    owner: dict[str, str] = {}
    for marker, names in (panels or {}).items():
        if isinstance(names, str):
            names = [names]
        group = {_norm(marker)} | {_norm(n) for n in names or []}
        for name in group:
            if name in owner and owner[name] != marker:
                raise ConfigError(
                    f"config panels: the name {name!r} is listed under both {owner[name]!r} and "
                    f"{marker!r}; a channel name may belong to one marker only"
                )
            owner[name] = marker
        groups.append((str(marker), frozenset(group)))
    return groups


def shown_channel_names(
    channels: Sequence[str],
    *,
    panels: Mapping[str, Sequence[str]] | None = None,
    needed: Iterable[str] = (),
) -> list[str]:
    """How a message names each channel: its ``$PnN``, or its keyword (``"$P7N"``).

    The ``$PnN`` is shown where the strategy (``needed``) or ``panels:`` name it (case, blanks and
    FlowJo's ``Comp-`` prefix ignored) or it is ``Time``: a name the user already wrote. Any other
    ``$PnN`` is a value of the file's TEXT, which no message quotes.
    """
    known = {"time"}
    for name in needed:
        known |= {_norm(name), _norm(_strip_comp(name))}
    for _, names in alias_groups(panels):
        known |= set(names)
    return [
        channel if _norm(channel) in known or _norm(_strip_comp(channel)) in known else f"$P{k}N"
        for k, channel in enumerate(channels, start=1)
    ]


def panel_marker(
    channel: str, label: str = "", *, panels: Mapping[str, Sequence[str]] | None = None
) -> str:
    """The marker an output names beside a channel: one of ``panels:``, never the file's own text.

    The ``panels:`` marker whose names hold the channel's ``$PnN`` (FlowJo's ``Comp-`` prefix
    ignored), else the one whose names hold its ``$PnS`` ``label``; ``""`` when neither does. A
    ``$PnS`` is a value of the file's TEXT, free text that may carry anything a site typed (a
    patient's name among them): it chooses between the config's markers and is never shown
    itself.
    """
    groups = alias_groups(panels)
    for name in (channel, _strip_comp(channel), label):
        if name:
            for marker, names in groups:
                if _norm(name) in names:
                    return marker
    return ""


def resolve_channels(
    channels: Sequence[str],
    markers: Sequence[str],
    needed: Iterable[str],
    *,
    panels: Mapping[str, Sequence[str]] | None = None,
    file: str = "",
) -> dict[str, str]:
    """Map each needed strategy dimension to a channel of the file.

    Parameters
    ----------
    channels
        The file's ``$PnN`` names.
    markers
        The file's ``$PnS`` labels (``""`` where absent), aligned with ``channels``.
    needed
        The channel names the gating strategy reads.
    panels
        The config's marker -> channel names mapping.
    file
        The file name, for the error message.

    Returns
    -------
    dict
        Strategy dimension name -> file channel name (``$PnN``).

    Raises
    ------
    MissingMarkerError
        Listing every dimension the file cannot supply, with the names tried, in one line; or
        naming every channel found whose ``$PnS`` names another marker of ``panels:`` than the
        one the strategy reads there.
    """
    needed = list(needed)
    shown = dict(zip(channels, shown_channel_names(channels, panels=panels, needed=needed)))
    by_pnn = {_norm(c): c for c in channels}
    by_any: dict[str, list[str]] = {}
    for channel, marker in zip(channels, markers):
        for label in {_norm(channel), _norm(_strip_comp(channel)), _norm(marker or "")} - {""}:
            by_any.setdefault(label, []).append(channel)
    groups = alias_groups(panels)

    mapping: dict[str, str] = {}
    missing: list[str] = []
    for dim in needed:
        key = _norm(dim)
        bare = _norm(_strip_comp(dim))
        if key in by_pnn:
            mapping[dim] = by_pnn[key]
            continue
        if bare in by_pnn:
            mapping[dim] = by_pnn[bare]
            continue
        found: list[str] = []
        tried: set[str] = {dim}
        for marker, names in groups:
            if key in names or bare in names:
                tried |= {marker}
                for name in sorted(names):
                    for channel in by_any.get(name, []):
                        if channel not in found:
                            found.append(channel)
        if len(found) == 1:
            mapping[dim] = found[0]
        elif len(found) > 1:
            raise MissingMarkerError(
                f"{file}: strategy channel {dim!r} matches several channels of the file "
                f"({', '.join(shown[c] for c in found)}); make the config panels: names "
                "specific to one channel"
            )
        else:
            missing.append(f"{dim} (as {'/'.join(sorted(tried))})" if len(tried) > 1 else dim)
    if missing:
        raise MissingMarkerError(
            f"{file}: lacks {len(missing)} channel(s) the gating strategy needs: "
            f"{'; '.join(missing)}; add the file's names for them under config panels: "
            "(cytotrial inspect lists the file's markers)"
        )
    _check_labels(mapping, channels, markers, groups, file=file, shown=shown)
    return mapping


def _check_labels(
    mapping: Mapping[str, str],
    channels: Sequence[str],
    markers: Sequence[str],
    groups: list[tuple[str, frozenset[str]]],
    *,
    file: str,
    shown: Mapping[str, str],
) -> None:
    """Refuse channels whose ``$PnS`` names another marker of ``panels:`` than the strategy reads.

    The marker the strategy reads on a channel is the one whose names hold the strategy's name for
    it or the channel's ``$PnN``; a label no marker lists, or a channel no marker lists, is not
    checked. Only marker names of the config are quoted, never the label itself.
    """
    owner = {name: marker for marker, names in groups for name in names}
    problems = []
    for dim, channel in mapping.items():
        column = list(channels).index(channel)
        label = markers[column] if column < len(markers) else ""
        labelled = owner.get(_norm(label or ""))
        if labelled is None:
            continue
        names = {_norm(dim), _norm(_strip_comp(dim)), _norm(channel), _norm(_strip_comp(channel))}
        expected = sorted({owner[name] for name in names if name in owner})
        if expected and labelled not in expected:
            problems.append(
                f"channel {shown[channel]} is labelled {labelled} by its $P{column + 1}S but "
                f"the strategy reads it as {' or '.join(expected)}"
            )
    if problems:
        raise MissingMarkerError(
            f"{file}: {'; '.join(dict.fromkeys(problems))}; the file's $PnS labels contradict "
            "config panels: (markers swapped?); check the file's panel before gating it"
        )
