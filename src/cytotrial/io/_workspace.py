"""FlowJo 10 workspaces as strategies: every sample's own gate tree, matched to its data file.

FlowJo keeps one gate tree per sample (its ``SampleNode``): the group's gates, and each gate a
scientist adjusted on that sample alone (``owningGroup=""``); FlowJo counts a sample with its own
tree. A workspace is read as a strategy in one of three ways (:func:`load_workspace`):

* ``sample_id``: that sample's tree gates every data file (a template taken from one sample);
* ``sample_group``: each data file is gated with the tree of its own sample of the group
  (:class:`SampleTrees`). The group's first sample gives the panel's template, which the config's
  populations, adaptive gates and matrix are checked against before any work;
* neither: the samples of ``All Samples`` must share one tree, which then gates every file; where
  their trees differ, a key must say which is meant (one line), never one tree silently for all.

A data file is the group's sample whose ``DataSet`` URI leads to that very file (a relative URI
from the workspace's folder, as FlowJo and our export write it); failing that, the sample whose
URI ends in the file's name (its node name where it has no URI), as FlowJo finds a moved file. A
file that no sample of the group is, or that two samples are, is refused in one line naming it.

Trees are compared on what gating reads of them: the sample's transformations and spillover
matrix, each gate's name, shape and place in the tree (not counts, gate ids, owners, annotations
or display settings). Samples whose trees are identical share one :class:`Strategy` object, and
FlowKit reads each distinct tree once, when the first file of it is gated: a gating job of a
workspace of thousands of samples reads the XML once and the trees of its own files only.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import os
import urllib.parse
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from .._flowkit import UnreadableStrategy, import_flowkit, parse_strategy
from ..errors import StrategyError
from ._files import file_sha256
from ._strategy import Strategy, _as_written, _gates_of, _prepared
from ._strategy_checks import check_gate_references

if TYPE_CHECKING:
    from lxml import etree

__all__ = ["DEFAULT_GROUP", "SampleTrees", "WorkspaceSample", "load_workspace"]

DEFAULT_GROUP = "All Samples"
_GATING = "{http://www.isac-net.org/std/Gating-ML/v2.0/gating}"
_NODES = ("Population", "AndNode", "OrNode", "NotNode")  # FlowJo's gate tree nodes
_IDS = (f"{_GATING}id", f"{_GATING}parent_id")  # a gate's ids: not what it gates
_SAMPLE_PARTS = ("Transformations", "spilloverMatrix")  # what gating reads of a sample beside gates
_LISTED = 5  # files named in one line before "and N more"


@dataclass(frozen=True)
class WorkspaceSample:
    """One sample of a workspace: its node, its data file and its gate tree.

    Attributes
    ----------
    number
        FlowJo's ``sampleID`` (what groups list).
    name
        The sample's name in FlowJo (its ``SampleNode``; FlowJo's default: the file name).
    file_name
        The data file's name: the ``DataSet`` URI's last part, else :attr:`name`.
    path
        Where the URI leads (relative URIs from the workspace's folder); ``None`` without a file
        URI.
    """

    number: str
    name: str
    file_name: str
    path: Path | None
    element: etree._Element = field(repr=False, compare=False)

    @property
    def label(self) -> str:
        """The sample as a message names it."""
        return f"{self.name!r} (sampleID {self.number})"


def _uri_parts(uri: str | None, workspace: Path) -> tuple[str | None, Path | None]:
    """The file name and the path a ``DataSet`` URI names (``None``: no file URI)."""
    if not uri:
        return None, None
    parsed = urllib.parse.urlparse(uri)
    if len(parsed.scheme) == 1:  # a Windows drive letter, not a scheme
        text = uri
    elif parsed.scheme in ("", "file"):
        text = urllib.parse.unquote(parsed.path)
    else:
        return None, None
    name = text.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1] or None
    if len(parsed.scheme) == 1 or "\\" in text:
        return name, None  # a path of another machine: found by name only
    path = Path(text) if os.path.isabs(text) else workspace.parent / text
    return name, Path(os.path.abspath(path))  # links kept: two names are two files to FlowJo


def _sample(element: etree._Element, workspace: Path) -> WorkspaceSample | None:
    node = element.find("SampleNode")
    data_set = element.find("DataSet")
    number = node.get("sampleID") if node is not None else None
    if number is None and data_set is not None:
        number = data_set.get("sampleID")
    if number is None:
        return None
    name = node.get("name", "") if node is not None else ""
    file_name, path = _uri_parts(data_set.get("uri") if data_set is not None else None, workspace)
    return WorkspaceSample(str(number), name, file_name or name, path, element)


def _gating_part(subpopulations: etree._Element) -> etree._Element:
    """The gate nodes under ``subpopulations`` as gating reads them: names, gates, dependents."""
    from lxml import etree

    kept = etree.Element("Subpopulations")
    for node in subpopulations:
        if node.tag not in _NODES:
            continue
        copy_ = etree.SubElement(kept, node.tag, name=node.get("name", ""))
        for child in node:
            if child.tag == "Subpopulations":
                copy_.append(_gating_part(child))
            elif child.tag in ("Gate", "Dependents"):
                piece = copy.deepcopy(child)
                for element in (piece, *piece):  # the holder's and the gate's own ids
                    for key in _IDS:
                        element.attrib.pop(key, None)
                copy_.append(piece)
    return kept


def tree_key(element: etree._Element) -> str:
    """A digest of what gating reads of a ``<Sample>``: equal for samples gated alike."""
    from lxml import etree

    holder = etree.Element("tree")
    for child in element:
        if isinstance(child.tag, str) and etree.QName(child).localname in _SAMPLE_PARTS:
            holder.append(copy.deepcopy(child))
    node = element.find("SampleNode")
    for sub in node.findall("Subpopulations") if node is not None else ():
        holder.append(_gating_part(sub))
    return hashlib.sha256(etree.tostring(holder, method="c14n")).hexdigest()


class Workspace:
    """A FlowJo workspace's samples and groups (from the XML), each distinct tree read once."""

    def __init__(self, path: Path, document: etree._ElementTree) -> None:
        self.path = path
        self.root = document.getroot()
        self.sha256 = file_sha256(path)
        sample_list = self.root.find("SampleList")
        found = [_sample(el, path) for el in (sample_list if sample_list is not None else ())
                 if el.tag == "Sample"]  # fmt: skip
        self.samples = [sample for sample in found if sample is not None]
        self.groups: dict[str, list[str]] = {}
        for node in self.root.iter("GroupNode"):
            refs = node.findall("Group/SampleRefs/SampleRef")
            numbers = list(dict.fromkeys(str(ref.get("sampleID")) for ref in refs))
            if numbers or node.find("Subpopulations") is not None:
                self.groups.setdefault(str(node.get("name")), numbers)
        self._keys: dict[str, str] = {}
        self._trees: dict[str, Strategy | StrategyError] = {}

    def named(self, name: str) -> WorkspaceSample:
        """The sample of this name (``sample_id``)."""
        found = [sample for sample in self.samples if sample.name == name]
        if len(found) == 1:
            return found[0]
        if found:
            raise StrategyError(
                f"{self.path}: {len(found)} samples are named {name!r} "
                f"({', '.join(s.label for s in found)}); rename one of them in FlowJo"
            )
        raise StrategyError(
            f"{self.path}: no sample {name!r} in the workspace; samples: "
            f"{', '.join(repr(s.name) for s in self.samples) or '(none)'}"
        )

    def members(self, group: str) -> list[WorkspaceSample]:
        """The samples of a group, in FlowJo's order."""
        if group not in self.groups:
            raise StrategyError(
                f"{self.path}: no sample group {group!r} in the workspace; groups: "
                f"{', '.join(map(repr, self.groups)) or '(none)'}"
            )
        by_number = {sample.number: sample for sample in self.samples}
        members = [by_number[n] for n in self.groups[group] if n in by_number]
        if not members:
            raise StrategyError(
                f"{self.path}: sample group {group!r} has no sample with a gate tree; name a "
                "sample_id instead"
            )
        return members

    def key(self, sample: WorkspaceSample) -> str:
        if sample.number not in self._keys:
            self._keys[sample.number] = tree_key(sample.element)
        return self._keys[sample.number]

    def strategy(self, sample: WorkspaceSample) -> Strategy:
        """The sample's own tree as a strategy: one object per distinct tree, read once."""
        key = self.key(sample)
        if key not in self._trees:
            try:
                self._trees[key] = self._read(sample)
            except StrategyError as error:
                self._trees[key] = error
        found = self._trees[key]
        if isinstance(found, StrategyError):
            raise StrategyError(str(found))
        return found

    def _document(self, sample: WorkspaceSample) -> etree._ElementTree:
        """A workspace of this one sample: FlowKit reads what it needs and no more."""
        from lxml import etree

        root = etree.Element(self.root.tag, attrib=dict(self.root.attrib), nsmap=self.root.nsmap)
        etree.SubElement(root, "Groups")
        etree.SubElement(root, "SampleList").append(copy.deepcopy(sample.element))
        return etree.ElementTree(root)

    def _read(self, sample: WorkspaceSample) -> Strategy:
        from lxml import etree

        fk = import_flowkit()

        document = self._document(sample)
        prepared = _prepared(self.path, "flowjo", document)
        source = prepared.source
        if not isinstance(source, bytes):  # nothing renamed: the one-sample document itself
            source = etree.tostring(document, xml_declaration=True, encoding="UTF-8")
        with warnings.catch_warnings():
            # FlowKit builds each FlowJo transform's lookup table as it reads the workspace; with
            # extreme biex/asinh parameters NumPy overflows there (the table's ends become inf or
            # NaN, FlowKit's own result). Reading stays quiet, as FlowJo's parameters are the user's.
            warnings.filterwarnings(
                "ignore",
                message=r"(overflow|invalid value|divide by zero) encountered in ",
                category=RuntimeWarning,
                module=r"flowkit\.",
            )
            try:
                parsed = parse_strategy(fk.parse_wsp, source)
            except UnreadableStrategy as error:
                where = f" (sample {sample.name!r})" if len(self.samples) > 1 else ""
                raise StrategyError(
                    f"{self.path}: cannot read the FlowJo workspace{where}: "
                    f"{_as_written(error.cause, prepared)}"
                ) from None
        gating_strategy = next(iter(parsed["samples"].values()))["gating_strategy"]
        try:
            gates = _gates_of(gating_strategy, prepared.names)
        except StrategyError as error:
            raise StrategyError(f"{self.path}: {error}") from None
        if not gates:
            raise StrategyError(f"{self.path}: sample {sample.name!r} has no gates")
        check_gate_references(self.path, gating_strategy, gates)
        return Strategy(
            path=self.path,
            kind="flowjo",
            sha256=self.sha256,
            gating_strategy=gating_strategy,
            gates=gates,
            sample_id=sample.name,
            flowkit_names=dict(prepared.names),
        )


class SampleTrees:
    """The samples of a workspace group, each data file matched to its own sample's tree.

    Parameters
    ----------
    workspace
        The workspace read (:class:`Workspace`).
    group
        The sample group (``sample_group``).
    """

    def __init__(self, workspace: Workspace, group: str) -> None:
        self.workspace = workspace
        self.group = group
        self.samples = workspace.members(group)
        self._by_path: dict[Path, list[WorkspaceSample]] = {}
        self._by_name: dict[str, list[WorkspaceSample]] = {}
        for sample in self.samples:
            if sample.path is not None:
                self._by_path.setdefault(sample.path, []).append(sample)
            self._by_name.setdefault(sample.file_name, []).append(sample)

    @property
    def where(self) -> str:
        return f"group {self.group!r} of {self.workspace.path.name}"

    def _found(self, fcs: str | Path) -> tuple[list[WorkspaceSample], str]:
        """The samples that are this data file, and how they were found (``path`` or ``name``)."""
        path = Path(os.path.abspath(fcs))
        found = self._by_path.get(path)
        if found:
            return found, "path"
        return self._by_name.get(path.name, []), "name"

    def match(self, fcs: str | Path) -> WorkspaceSample:
        """The group's sample that is this data file.

        Raises
        ------
        StrategyError
            One line naming the file: no sample of the group is it, or several are.
        """
        found, how = self._found(fcs)
        name = Path(fcs).name
        if len(found) == 1:
            return found[0]
        if not found:
            close = difflib.get_close_matches(name, list(self._by_name), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise StrategyError(
                f"{name}: no sample of {self.where} is this data file{hint}; add it to the group "
                "in FlowJo, or set sample_id to gate every file with one sample's gates"
            )
        raise StrategyError(
            f"{name}: samples {', '.join(s.label for s in found)} of {self.where} are all this "
            f"data file (by {'path' if how == 'path' else 'file name'}); keep one of them in the group"
        )

    def strategy_for(self, fcs: str | Path) -> Strategy:
        """The tree of the data file's own sample (shared by samples with identical trees).

        Raises
        ------
        StrategyError
            One line naming the file: no sample or several, or its tree cannot be read.
        """
        sample = self.match(fcs)
        try:
            return self.workspace.strategy(sample)
        except StrategyError as error:  # said by the workspace's name: outputs hold no paths
            message, full = str(error), f"{self.workspace.path}: "
            if message.startswith(full):
                message = f"{self.workspace.path.name}: {message[len(full) :]}"
            raise StrategyError(f"{Path(fcs).name}: {message}") from None

    def distinct_trees(self) -> int:
        """How many different gate trees the group's samples have."""
        return len({self.workspace.key(sample) for sample in self.samples})

    def problems(self, files: Mapping[str, str | Path]) -> list[str]:
        """One line per kind of mismatch between data files and the group's samples.

        Parameters
        ----------
        files
            A label (a sample sheet's sample id) -> its data file.

        Returns
        -------
        list of str
            Files no sample is, files several samples are, and files of one name found by name
            only (they would all get one sample's tree), each line naming the files.
        """
        missing: list[str] = []
        ambiguous: list[str] = []
        by_name: dict[str, list[str]] = {}  # a sample found by name only -> its files
        for label, fcs in files.items():
            found, how = self._found(fcs)
            shown = f"{Path(fcs).name} ({label})"
            if not found:
                missing.append(shown)
            elif len(found) > 1:
                ambiguous.append(f"{shown}: {', '.join(s.label for s in found)}")
            elif how == "name":
                by_name.setdefault(found[0].number, []).append(shown)
        lines = []
        if missing:
            lines.append(
                f"{self.where} has no sample for {_listed(missing)}; add the files to the group "
                "in FlowJo or drop their rows from the sheet, or set sample_id to gate every file "
                "with one sample's gates"
            )
        if ambiguous:
            lines.append(
                f"{self.where} has several samples for {_listed(ambiguous)}; keep one sample "
                "per data file in the group"
            )
        for number, shown in by_name.items():
            if len(shown) > 1:
                sample = next(s for s in self.samples if s.number == number)
                lines.append(
                    f"data files {', '.join(shown)} all match sample {sample.label} of "
                    f"{self.where} by file name; one of them is its file: rename the others or "
                    "keep the workspace beside its data files"
                )
        return lines


def _listed(items: list[str]) -> str:
    more = len(items) - _LISTED
    text = ", ".join(items[:_LISTED])
    count = f"{len(items)} data file{'s' if len(items) > 1 else ''}"
    return f"{count}: {text}" + (f" and {more} more" if more > 0 else "")


def load_workspace(
    path: Path,
    document: etree._ElementTree,
    *,
    sample_group: str | None = None,
    sample_id: str | None = None,
) -> Strategy:
    """A FlowJo workspace as a strategy (see the module docstring for the three ways).

    Returns
    -------
    Strategy
        ``sample_id``: that sample's tree. ``sample_group``: the group's first sample's tree, the
        panel's template, with :attr:`Strategy.sample_trees` giving each data file its own.
        Neither: the one tree of ``All Samples``.

    Raises
    ------
    StrategyError
        One line naming the file: unknown sample or group, an unreadable tree, or (neither key)
        samples with different trees.
    """
    workspace = Workspace(path, document)
    if sample_id is not None:
        return workspace.strategy(workspace.named(sample_id))
    if sample_group is not None:
        trees = SampleTrees(workspace, sample_group)
        return replace(workspace.strategy(trees.samples[0]), sample_trees=trees)
    trees = SampleTrees(workspace, DEFAULT_GROUP)
    distinct = trees.distinct_trees()
    if distinct > 1:
        raise StrategyError(
            f"{path}: the {len(trees.samples)} samples of group {DEFAULT_GROUP!r} have {distinct} "
            "different gate trees (FlowJo keeps one per sample); set sample_group to gate each "
            "data file with its own sample's gates, or sample_id to gate every file with one "
            "sample's gates"
        )
    return workspace.strategy(trees.samples[0])
