"""Gating batches and the FCS paths the workflow declares and records.

Batches stay stable as samples are added; membership files keep their timestamps while unchanged.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pandas as pd
import pytest

from cytotrial.errors import ConfigError
from cytotrial.rules import (
    ROOT_BATCH,
    assign_batches,
    fcs_for_workdir,
    fcs_relative_to_sheet,
    read_batch,
    read_samples_for_outputs,
    resolve_sheet_fcs,
    sheet_fcs,
    write_batch,
)


def _members(assignment: dict[str, str]) -> dict[str, frozenset[str]]:
    groups: dict[str, set[str]] = {}
    for sample, batch in assignment.items():
        groups.setdefault(batch, set()).add(sample)
    return {batch: frozenset(samples) for batch, samples in groups.items()}


def _random_ids(rng: random.Random, n: int) -> list[str]:
    ids: set[str] = set()
    while len(ids) < n:
        ids.add(
            f"P{rng.randrange(100000):05d}_{rng.choice(['C1D1', 'C1D8', 'C2D1'])}_"
            f"{rng.choice(['blood', 'tumor'])}"
        )
    return sorted(ids)


@pytest.mark.parametrize("seed", range(300))
def test_adding_a_sample_changes_at_most_one_batch(seed):
    """Adding one sample changes the members of at most one old batch.

    When that batch overflows it splits, and its halves together hold its samples plus the new one;
    every other sample keeps its batch; no batch exceeds batch_size.
    """
    rng = random.Random(seed)
    batch_size = rng.choice([1, 2, 3, 5, 8, 30, 250])
    ids = _random_ids(rng, rng.randrange(0, 6 * batch_size + 40))
    new = next(s for s in _random_ids(rng, len(ids) + 1) if s not in ids)
    before = assign_batches(ids, batch_size=batch_size)
    after = assign_batches([*ids, new], batch_size=batch_size)
    old, now = _members(before), _members(after)

    touched = [batch for batch, members in old.items() if now.get(batch) != members]
    assert len(touched) <= 1
    moved_from = old[touched[0]] if touched else frozenset()
    for sample in ids:
        if sample not in moved_from:
            assert after[sample] == before[sample]
    # the samples of every new or changed batch: the touched batch's and the new one, no others
    regated = set().union(*(m for b, m in now.items() if old.get(b) != m))
    assert regated <= moved_from | {new} and new in regated
    assert len(regated) <= batch_size + 1
    assert all(len(members) <= batch_size for members in now.values())


@pytest.mark.parametrize("seed", range(20))
def test_batches_do_not_depend_on_the_order_of_the_sheet(seed):
    rng = random.Random(seed)
    ids = _random_ids(rng, 200)
    shuffled = ids[:]
    rng.shuffle(shuffled)
    assert assign_batches(ids, batch_size=7) == assign_batches(shuffled, batch_size=7)


def test_batches_are_named_by_their_hash_prefix():
    ids = [f"P{i:03d}_C1D1_blood" for i in range(1, 11)]
    # SHA-256 of the sample id: the same names on every machine and Python version
    assert assign_batches(ids, batch_size=3) == {
        "P001_C1D1_blood": "100",
        "P002_C1D1_blood": "0",
        "P003_C1D1_blood": "0",
        "P004_C1D1_blood": "0",
        "P005_C1D1_blood": "100",
        "P006_C1D1_blood": "101",
        "P007_C1D1_blood": "100",
        "P008_C1D1_blood": "101",
        "P009_C1D1_blood": "101",
        "P010_C1D1_blood": "11",
    }
    assert set(assign_batches(ids, batch_size=10).values()) == {ROOT_BATCH}
    assert assign_batches([], batch_size=10) == {}


def test_batch_size_below_one_is_a_config_error():
    with pytest.raises(ConfigError, match=r"gating\.batch_size"):
        assign_batches(["a"], batch_size=0)


def test_a_membership_file_keeps_its_timestamp_while_unchanged(tmp_path):
    members = pd.DataFrame(
        {
            "sample_id": ["007", "s2"],
            "panel": ["blood", "tumor"],
            "fcs": ["fcs/a.fcs", "b.fcs"],
            "sha256": ["0" * 64, "1" * 64],
        }
    )
    path = tmp_path / "batches" / "batch_01.tsv"
    assert write_batch(members, path)
    os.utime(path, (1_000_000, 1_000_000))
    assert not write_batch(members.copy(), path)
    assert path.stat().st_mtime == 1_000_000
    assert read_batch(path).equals(members)  # ids stay text: "007" is not 7

    changed = members.assign(fcs=["fcs/a.fcs", "c.fcs"])
    assert write_batch(changed, path)
    assert path.stat().st_mtime != 1_000_000
    assert read_batch(path).equals(changed)
    assert [p.name for p in path.parent.iterdir()] == ["batch_01.tsv"]


def test_fcs_paths_in_outputs_are_relative_to_the_sheet(tmp_path):
    sheet = tmp_path / "trial" / "samples.tsv"
    assert fcs_relative_to_sheet("fcs/a.fcs", sheet) == "fcs/a.fcs"
    assert fcs_relative_to_sheet("../raw/a.fcs", sheet) == "../raw/a.fcs"
    assert fcs_relative_to_sheet(str(tmp_path / "trial/fcs/a.fcs"), sheet) == "fcs/a.fcs"
    assert fcs_relative_to_sheet(str(tmp_path / "raw/a.fcs"), sheet) == "../raw/a.fcs"
    assert resolve_sheet_fcs("fcs/a.fcs", sheet) == tmp_path / "trial/fcs/a.fcs"
    assert resolve_sheet_fcs("/data/a.fcs", sheet) == Path("/data/a.fcs")


def test_fcs_inputs_are_relative_to_the_working_directory(tmp_path):
    work = tmp_path / "project"
    assert fcs_for_workdir("fcs/a.fcs", "data/samples.tsv", workdir=work) == "data/fcs/a.fcs"
    assert fcs_for_workdir("fcs/a.fcs", work / "data/samples.tsv", workdir=work) == "data/fcs/a.fcs"
    assert fcs_for_workdir(str(work / "x/a.fcs"), "/elsewhere/s.tsv", workdir=work) == "x/a.fcs"
    # outside the working directory: relative too, up from the working directory
    outside = str(tmp_path / "store/a.fcs")
    assert fcs_for_workdir(outside, work / "data/samples.tsv", workdir=work) == "../store/a.fcs"
    assert (
        fcs_for_workdir("fcs/a.fcs", "../trial/samples.tsv", workdir=work) == "../trial/fcs/a.fcs"
    )
    # a working directory reached through a symbolic link
    work.mkdir()
    link = tmp_path / "link"
    link.symlink_to(work)
    assert fcs_for_workdir(str(work / "fcs/a.fcs"), "s.tsv", workdir=link) == "fcs/a.fcs"


def test_the_sheet_read_for_outputs_records_fcs_relative_to_it(tmp_path):
    (tmp_path / "trial/fcs").mkdir(parents=True)
    (tmp_path / "raw").mkdir()
    (tmp_path / "trial/fcs/a.fcs").write_bytes(b"")
    (tmp_path / "raw/b.fcs").write_bytes(b"")
    header = "sample_id\tpatient_id\tarm\tvisit\tcycle\tday\tcompartment\tpanel\tbatch\t fcs \n"
    rows = [
        "s1\tP1\tA\tC1D1\t1\t1\tblood\tblood\tB1\t fcs/a.fcs \n",
        f"s2\tP1\tA\tC1D8\t1\t8\tblood\tblood\tB1\t{tmp_path / 'raw/b.fcs'}\n",
    ]
    sheet = tmp_path / "trial/samples.tsv"
    sheet.write_text(header + "".join(rows))
    assert sheet_fcs(sheet) == {"s1": "fcs/a.fcs", "s2": str(tmp_path / "raw/b.fcs")}
    table = read_samples_for_outputs(sheet, arms=["A"], panels=["blood"])
    assert table["fcs"].tolist() == ["fcs/a.fcs", "../raw/b.fcs"]


@pytest.mark.parametrize("seed", range(30))
def test_each_panels_samples_are_batched_apart(seed):
    """A batch holds one panel's samples, named after it.

    A panel's batches are its own trie: adding or removing another panel's samples never changes
    them.
    """
    rng = random.Random(seed)
    batch_size = rng.choice([1, 3, 8, 250])
    ids = _random_ids(rng, rng.randrange(1, 4 * batch_size + 40))
    panels = [sid.rsplit("_", 1)[1] for sid in ids]
    mixed = assign_batches(ids, batch_size=batch_size, panels=panels)
    for panel in set(panels):
        mine = [sid for sid, p in zip(ids, panels) if p == panel]
        alone = assign_batches(mine, batch_size=batch_size)
        assert {sid: mixed[sid] for sid in mine} == {s: f"{panel}_{b}" for s, b in alone.items()}
    assert all(len(members) <= batch_size for members in _members(mixed).values())
    # names split back at their last "_" into the panel and a prefix (or "all")
    for batch in set(mixed.values()):
        panel, prefix = batch.rsplit("_", 1)
        assert panel in panels and (prefix == ROOT_BATCH or set(prefix) <= {"0", "1"})
