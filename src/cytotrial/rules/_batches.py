"""Which gating job (batch) each sample belongs to, and the membership file of each batch.

The samples of each panel are batched apart, so that an edit to one panel's strategy re-gates (and
redraws) that panel's samples only. Within a panel, a batch is a prefix of the bits of a stable
hash of ``sample_id`` (a node of a binary trie) that holds at most ``batch_size`` samples while its
parent holds more; it is named ``<panel>_<prefix>`` (``blood_0110``; ``blood_all`` while the
panel's samples fit in one batch). Adding a sample changes only the batch it falls in (when that
batch overflows, its samples split between the two halves of its prefix), so adding one row
re-gates at most one batch's worth of samples, whatever the number of samples; the other batches
keep their members, their membership files and their outputs.

Each membership file also holds the sha256 of each member's FCS file, so a file whose content
changes rewrites its batch's membership file and its batch is gated again, whatever the file's
timestamp says. A file is not hashed before its batch's first gating (that job hashes it, reading
it once from disk, and records the digest in its QC table): its digest stays empty in the
membership file for as long as the file is the one its gating recorded, and becomes the file's
digest, which re-gates the batch, once it is not.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from ..errors import ConfigError
from ._checksums import CHECKSUM_CACHE, file_checksums
from ._tables import writing

__all__ = [
    "BATCH_COLUMNS",
    "ROOT_BATCH",
    "assign_batches",
    "form_batches",
    "read_batch",
    "write_batch",
]

#: Columns of a batch membership file (``sha256``: of the FCS file's bytes).
BATCH_COLUMNS = ["sample_id", "panel", "fcs", "sha256"]
#: Name of the batch of the empty prefix (every sample, while they fit in one batch).
ROOT_BATCH = "all"
_HASH_BITS = 256


def _hash_bits(sample_id: str) -> str:
    """The 256 bits of the SHA-256 of a sample id, most significant first (stable across runs)."""
    digest = hashlib.sha256(str(sample_id).encode("utf-8")).digest()
    return format(int.from_bytes(digest, "big"), f"0{_HASH_BITS}b")


def assign_batches(
    sample_ids: Iterable[str], *, batch_size: int, panels: Iterable[str] | None = None
) -> dict[str, str]:
    """Assign samples to gating batches by a binary trie over a stable hash of the sample id.

    Parameters
    ----------
    sample_ids
        The samples (unique ids; order does not matter).
    batch_size
        Most samples in one batch.
    panels
        Each sample's panel, in the order of ``sample_ids``: each panel's samples are a trie of
        their own, and a batch's name starts with its panel (``blood_0110``, ``blood_all``).

    Returns
    -------
    dict
        sample id -> batch name: the hash prefix of its batch (``"0110"``), or ``"all"`` while every
        sample fits in one batch; with ``panels``, ``<panel>_`` before it.

    Raises
    ------
    ConfigError
        ``batch_size`` is below 1.
    """
    if batch_size < 1:
        raise ConfigError(f"config gating.batch_size must be at least 1, not {batch_size}")
    if panels is not None:
        ids = list(sample_ids)
        groups: dict[str, list[str]] = {}
        for sid, panel in zip(ids, panels, strict=True):
            groups.setdefault(str(panel), []).append(sid)
        return {
            sid: f"{panel}_{batch}"
            for panel, members in groups.items()
            for sid, batch in assign_batches(members, batch_size=batch_size).items()
        }
    bits = {sid: _hash_bits(sid) for sid in dict.fromkeys(sample_ids)}
    batches: dict[str, str] = {}
    pending = [("", sorted(bits))]
    while pending:
        prefix, members = pending.pop()
        if len(members) <= batch_size:
            for sid in members:
                batches[sid] = prefix or ROOT_BATCH
            continue
        # distinct ids have distinct hashes, so a prefix never outgrows the hash
        depth = len(prefix)
        for bit in "01":
            half = [sid for sid in members if bits[sid][depth] == bit]
            if half:
                pending.append((prefix + bit, half))
    return batches


def write_batch(members: pd.DataFrame, path: str | Path) -> bool:
    """Write a batch's membership table, unless the file already holds exactly that.

    An unchanged file keeps its modification time, so its gating job is not re-run.

    Parameters
    ----------
    members
        One row per sample with :data:`BATCH_COLUMNS`.
    path
        The membership file (tab-separated).

    Returns
    -------
    bool
        Whether the file was (re)written.
    """
    text = members[BATCH_COLUMNS].to_csv(sep="\t", index=False, lineterminator="\n")
    path = Path(path)
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return False
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, path)  # never a half-written membership file
    return True


def _earlier(path: Path) -> dict[str, tuple[str, str]]:
    """An existing membership file: sample id -> (fcs, sha256); empty when absent or unreadable."""
    try:
        table = read_batch(path)
    except (OSError, ValueError, KeyError, pd.errors.ParserError):
        return {}
    return dict(zip(table["sample_id"], zip(table["fcs"], table["sha256"])))


def _gated_digests(path: Path) -> dict[str, str]:
    """Sample id -> the sha256 its gating job recorded (a batch's QC table); empty when absent."""
    try:
        table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
        return dict(zip(table["sample_id"], table["sha256"]))
    except (OSError, ValueError, KeyError, pd.errors.ParserError):
        return {}


def form_batches(
    samples: pd.DataFrame,
    *,
    batch_size: int,
    pattern: str,
    checksum_cache: str | Path | None = CHECKSUM_CACHE,
    gated: str | None = None,
) -> dict[str, pd.DataFrame]:
    """Assign samples to batches and write each batch's membership file (only when it changed).

    A file is hashed now only where its batch's membership file (or, for a digest left empty
    there, the batch's QC table) holds a digest to compare it with and the checksum cache has none
    for the file as it is; the others are hashed by their gating job (an empty digest here).

    Parameters
    ----------
    samples
        ``sample_id``, ``panel`` and ``fcs`` (the path the workflow declares) of every sample.
    batch_size
        Most samples in one batch.
    pattern
        The membership file of batch ``{batch}`` (``results/gating/batches/batch_{batch}.tsv``).
    checksum_cache
        Where the FCS digests are cached (see :func:`file_checksums`); ``None``: hash every file.
    gated
        The QC table of batch ``{batch}``'s gating job, with the ``sha256`` of each file it gated
        (``results/gating/batch_{batch}.qc.tsv``); ``None``: every digest is taken now.

    Returns
    -------
    dict
        Batch name -> its members (:data:`BATCH_COLUMNS`, sorted by ``sample_id``), by name.

    Raises
    ------
    cytotrial.errors.ConfigError
        ``batch_size`` is below 1.
    cytotrial.errors.WriteError
        A membership file or the checksum cache cannot be written.
    """
    table = samples[["sample_id", "panel", "fcs"]].copy()
    table["batch"] = table["sample_id"].map(
        assign_batches(table["sample_id"], batch_size=batch_size, panels=table["panel"])
    )
    table["fcs"] = table["fcs"].astype(str)
    earlier: dict[str, tuple[str, str]] = {}  # sample -> (fcs, sha256) in its batch's file now
    recorded: dict[str, str] = {}  # sample -> sha256 its batch's gating recorded
    for batch in sorted(set(table["batch"])):
        before = _earlier(Path(pattern.format(batch=batch)))
        earlier.update(before)
        if gated is not None and any(not digest for _, digest in before.values()):
            recorded.update(_gated_digests(Path(gated.format(batch=batch))))
    if gated is None:
        defer: set[str] = set()
    else:
        # a digest to compare with: the membership file's, or the gating's where that is empty
        compare = {
            str(fcs)
            for sid, fcs in zip(table["sample_id"], table["fcs"])
            if sid in earlier and earlier[sid][0] == fcs and (earlier[sid][1] or recorded.get(sid))
        }
        defer = set(table["fcs"]) - compare
    digests = file_checksums(table["fcs"], cache=checksum_cache, prune=True, defer=defer)
    values = []
    for sid, fcs in zip(table["sample_id"], table["fcs"]):
        digest = digests[fcs]
        fcs_then, then = earlier.get(sid, ("", ""))
        if digest is None:
            values.append("")  # not hashed yet: its gating job hashes it
        elif fcs_then == fcs and not then and digest == recorded.get(sid):
            values.append("")  # the file its gating recorded: the membership stays as it is
        else:
            values.append(digest)
    table["sha256"] = values
    members = {
        batch: rows[BATCH_COLUMNS].sort_values("sample_id").reset_index(drop=True)
        for batch, rows in table.groupby("batch", sort=True)
    }
    for batch, rows in members.items():
        write_batch(rows, pattern.format(batch=batch))
    return members


def read_batch(path: str | Path) -> pd.DataFrame:
    """A batch's membership table (:data:`BATCH_COLUMNS`, all text)."""
    return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)[BATCH_COLUMNS]
