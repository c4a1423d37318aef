"""Integrity: checksums, complete intermediate tables, nothing lost when nothing can be gated.

Every FCS file's sha256 recorded and a changed file gated again whatever its timestamp; every batch
table checked complete before it is aggregated; a run in which every sample is excluded
keeps the QC table that says why; a full disk or a folder without write permission ends with one
line naming the path.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import anndata as ad
import pandas as pd
import pytest
import yaml

from conftest import planned_jobs, run_snakemake
from cytotrial.cli import main
from cytotrial.config import check_config, population_model
from cytotrial.errors import CytotrialError, WriteError
from cytotrial.rules import (
    CHECKSUM_CACHE,
    fcs_for_workdir,
    file_checksums,
    form_batches,
    read_batch,
    run_aggregate,
    run_gate_batch,
    run_qc_table,
    stale_lock_note,
    verify_checksums,
    write_tsv,
)
from cytotrial.rules import _checksums as checksums

ROOT = Path(__file__).resolve().parents[1]


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def replace_keeping_mtime(path: Path, content: bytes) -> None:
    """New content, same size, old modification time: what `cp -p` or `rsync -t` leaves."""
    stat = path.stat()
    assert len(content) == stat.st_size
    path.write_bytes(content)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_mtime_ns == stat.st_mtime_ns


@pytest.fixture
def settled(monkeypatch):
    """Files count as settled at once (the cache otherwise waits 2 s before trusting timestamps)."""
    monkeypatch.setattr(checksums, "_RACY_NS", -(10**18))


# ---------------------------------------------------------------------------------------------
# the checksum cache


def test_checksums_are_sha256_and_reused_while_timestamps_hold(tmp_path, settled, monkeypatch):
    files = [tmp_path / f"{name}.fcs" for name in "abc"]
    for i, path in enumerate(files):
        path.write_bytes(bytes([i]) * 5000)
    cache = tmp_path / "cache.tsv"
    found = file_checksums(files, cache=cache)
    assert found == {str(p): sha256(p) for p in files}

    hashed = []
    real = checksums._sha256
    monkeypatch.setattr(checksums, "_sha256", lambda p: hashed.append(p) or real(p))
    assert file_checksums(files, cache=cache) == found and hashed == []

    replace_keeping_mtime(files[1], b"\x07" * 5000)  # same size, same mtime, new content
    again = file_checksums(files, cache=cache)
    assert hashed == [str(files[1])]
    assert again[str(files[1])] == sha256(files[1]) != found[str(files[1])]
    assert again[str(files[0])] == found[str(files[0])]


def test_a_missing_or_unreadable_file_has_no_checksum_and_a_damaged_cache_is_rebuilt(
    tmp_path, settled
):
    path = tmp_path / "a.fcs"
    path.write_bytes(b"x" * 100)
    cache = tmp_path / "cache.tsv"
    assert file_checksums([path, tmp_path / "gone.fcs"], cache=cache) == {
        str(path): sha256(path),
        str(tmp_path / "gone.fcs"): "",
    }
    cache.write_text(cache.read_text()[:-20])  # cut short
    assert file_checksums([path], cache=cache) == {str(path): sha256(path)}
    assert cache.read_text().splitlines()[1].endswith(sha256(path))


def test_only_settled_files_are_cached(tmp_path):
    """A file written within the last 2 s may change again within one timestamp tick."""
    path = tmp_path / "fresh.fcs"
    path.write_bytes(b"x" * 100)
    cache = tmp_path / "cache.tsv"
    assert file_checksums([path], cache=cache) == {str(path): sha256(path)}
    assert not cache.exists()


def test_a_changed_file_rewrites_its_batch_membership_only(tmp_path, settled, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for i in range(6):
        Path(f"s{i}.fcs").write_bytes(bytes([i]) * 1000)
    samples = pd.DataFrame(
        {
            "sample_id": [f"s{i}" for i in range(6)],
            "panel": "blood",
            "fcs": [f"s{i}.fcs" for i in range(6)],
        }
    )
    pattern = "batches/batch_{batch}.tsv"
    members = form_batches(samples, batch_size=3, pattern=pattern)
    assert len(members) >= 2
    files = {batch: Path(pattern.format(batch=batch)) for batch in members}
    for path in files.values():
        table = read_batch(path)
        assert list(table.columns) == ["sample_id", "panel", "fcs", "sha256"]
        assert table["sha256"].tolist() == [sha256(Path(f)) for f in table["fcs"]]
        os.utime(path, ns=(10**18, 10**18))
    assert Path(CHECKSUM_CACHE).is_file()

    form_batches(samples, batch_size=3, pattern=pattern)  # nothing changed: no file rewritten
    assert all(path.stat().st_mtime_ns == 10**18 for path in files.values())

    replace_keeping_mtime(Path("s4.fcs"), b"\xff" * 1000)
    changed = form_batches(samples, batch_size=3, pattern=pattern)
    of_s4 = next(b for b, rows in changed.items() if "s4" in set(rows["sample_id"]))
    assert files[of_s4].stat().st_mtime_ns != 10**18
    assert all(p.stat().st_mtime_ns == 10**18 for b, p in files.items() if b != of_s4)
    assert read_batch(files[of_s4]).set_index("sample_id").at["s4", "sha256"] == sha256(
        Path("s4.fcs")
    )


def _gate_as_a_job_would(members: dict[str, pd.DataFrame], gated: str) -> None:
    """What a gating job records of its files: it hashes them (cached) and writes their digests."""
    for batch, rows in members.items():
        found = verify_checksums(rows.to_dict("records"), cache=CHECKSUM_CACHE)
        table = pd.DataFrame({"sample_id": list(found), "sha256": list(found.values())})
        table.to_csv(gated.format(batch=batch), sep="\t", index=False)


def test_files_not_gated_yet_are_hashed_by_their_job_and_a_later_change_still_regates(
    tmp_path, settled, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    for i in range(6):
        Path(f"s{i}.fcs").write_bytes(bytes([i]) * 1000)
    samples = pd.DataFrame(
        {"sample_id": [f"s{i}" for i in range(6)], "panel": "blood",
         "fcs": [f"s{i}.fcs" for i in range(6)]}
    )  # fmt: skip
    pattern, gated = "batches/batch_{batch}.tsv", "batch_{batch}.qc.tsv"
    hashed: list[str] = []
    real = checksums._sha256
    monkeypatch.setattr(checksums, "_sha256", lambda p: hashed.append(p) or real(p))

    # a first run: no file is read before the jobs; each job hashes its own files
    members = form_batches(samples, batch_size=3, pattern=pattern, gated=gated)
    assert hashed == [] and len(members) >= 2
    assert all(set(rows["sha256"]) == {""} for rows in members.values())
    files = {batch: Path(pattern.format(batch=batch)) for batch in members}
    _gate_as_a_job_would(members, gated)
    assert sorted(hashed) == sorted(samples["fcs"])
    for path in files.values():
        os.utime(path, ns=(10**18, 10**18))

    # the next run: every digest is cached and is the one its gating recorded; nothing rewritten
    hashed.clear()
    again = form_batches(samples, batch_size=3, pattern=pattern, gated=gated)
    assert hashed == [] and all(p.stat().st_mtime_ns == 10**18 for p in files.values())
    assert {b: r["sha256"].tolist() for b, r in again.items()} == {
        b: r["sha256"].tolist() for b, r in members.items()
    }

    # a lost cache: the files are hashed to compare with what their gating recorded; unchanged
    Path(CHECKSUM_CACHE).unlink()
    form_batches(samples, batch_size=3, pattern=pattern, gated=gated)
    assert sorted(hashed) == sorted(samples["fcs"])
    assert all(p.stat().st_mtime_ns == 10**18 for p in files.values())

    # a file replaced with its old timestamp: hashed, and only its batch's membership rewritten
    hashed.clear()
    replace_keeping_mtime(Path("s4.fcs"), b"\xfe" * 1000)
    changed = form_batches(samples, batch_size=3, pattern=pattern, gated=gated)
    assert hashed == ["s4.fcs"]
    of_s4 = next(b for b, rows in changed.items() if "s4" in set(rows["sample_id"]))
    assert files[of_s4].stat().st_mtime_ns != 10**18
    assert all(p.stat().st_mtime_ns == 10**18 for b, p in files.items() if b != of_s4)
    digests = read_batch(files[of_s4]).set_index("sample_id")["sha256"]
    assert digests["s4"] == sha256(Path("s4.fcs"))
    assert set(digests.drop("s4")) == {""}
    # the job of that batch finds the file as the membership says (no "changed during the run")
    rows = changed[of_s4].to_dict("records")
    assert verify_checksums(rows, cache=CHECKSUM_CACHE)["s4"] == sha256(Path("s4.fcs"))


def _hash_into_cache(cache: str, files: list[str]) -> None:
    file_checksums(files, cache=cache, jobs=1)


def test_jobs_hashing_at_once_keep_each_others_digests(tmp_path, settled):
    import multiprocessing

    files = []
    for i in range(400):
        path = tmp_path / f"f{i:03d}.fcs"
        path.write_bytes(os.urandom(4096))
        files.append(str(path))
    cache = str(tmp_path / "checksums.tsv")
    context = multiprocessing.get_context("fork")
    jobs = [context.Process(target=_hash_into_cache, args=(cache, files[i::4])) for i in range(4)]
    for job in jobs:
        job.start()
    for job in jobs:
        job.join(60)
        assert job.exitcode == 0
    assert sorted(checksums._read_cache(Path(cache))) == sorted(files)


def test_a_file_changed_during_the_run_stops_its_gating_job(tmp_path):
    path = tmp_path / "a.fcs"
    path.write_bytes(b"x" * 10)
    members = [{"sample_id": "a", "panel": "blood", "fcs": str(path), "sha256": sha256(path)}]
    assert verify_checksums(members) == {"a": sha256(path)}
    path.write_bytes(b"y" * 10)
    with pytest.raises(CytotrialError, match=r"a\.fcs changed after this run began") as caught:
        verify_checksums(members)
    assert "\n" not in str(caught.value) and "run the same command again" in str(caught.value)


def test_fcs_outside_the_working_folder_is_reached_relatively(tmp_path):
    """No absolute path goes to Snakemake, and `..` resolves from the real working folder."""
    real = tmp_path / "disk" / "project"
    real.mkdir(parents=True)
    link = tmp_path / "home" / "project"
    link.parent.mkdir()
    link.symlink_to(real)
    store = tmp_path / "store"
    store.mkdir()
    (store / "a.fcs").write_bytes(b"FCS")
    for workdir in (real, link):
        value = fcs_for_workdir(str(store / "a.fcs"), "/elsewhere/samples.tsv", workdir=workdir)
        assert not os.path.isabs(value) and value.startswith("..")
        with contextlib.chdir(workdir):
            assert Path(value).read_bytes() == b"FCS"


# ---------------------------------------------------------------------------------------------
# a small trial gated and aggregated by the rule bodies, as the workflow calls them


def _trial(root: Path, *, broken: bool = False) -> dict:
    """A 1 + 1 patient trial in ``root`` (the working folder); every file broken if asked."""
    arguments = ["--patients-per-arm", "1", "--events", "2000", "--tumor-events", "1000"]
    assert main(["simulate", "--out", str(root / "data"), *arguments, "--seed", "5"]) == 0
    if broken:
        for path in (root / "data").rglob("*.fcs"):
            path.write_bytes(b"not an FCS file")
    config = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    config.pop("demo")
    config["samples"] = "data/samples.tsv"
    config["patients"] = "data/patients.tsv"
    for spec in config["strategies"].values():
        spec["strategy"] = str(ROOT / spec["strategy"])
    return check_config(config, base=root)


def _population_options(config: dict) -> dict:
    return dict(
        arms=list(config["arms"]),
        strategies=config["strategies"],
        model=population_model(config),
        ratios=config["ratios"],
        frequencies=config["frequencies"]["of"],
        absolute_reference=config["absolute"]["reference"],
        mfi_markers=config["mfi"]["markers"],
        mfi_min_events=config["mfi"]["min_events"],
        min_events=config["qc"]["min_events"],
    )


def _gate_all(root: Path, config: dict) -> dict[str, list[str]]:
    """Gate the trial in two batches as the workflow does; the tables of each kind."""
    sheet = pd.read_csv(root / "data/samples.tsv", sep="\t", dtype=str)
    samples = sheet[["sample_id", "panel"]].assign(fcs="data/" + sheet["fcs"])
    members = form_batches(
        samples, batch_size=4, pattern="results/gating/batches/batch_{batch}.tsv"
    )
    tables: dict[str, list[str]] = {"counts": [], "mfi": [], "qc": [], "manifest": []}
    for batch, rows in members.items():
        out = {kind: f"results/gating/batch_{batch}.{kind}.tsv" for kind in tables}
        run_gate_batch(
            rows.to_dict("records"),
            strategies=config["strategies"],
            panels=config["panels"],
            compensation=config["gating"]["compensation"],
            populations=config["populations"],
            mfi=config["mfi"],
            counts_out=out["counts"],
            qc_out=out["qc"],
            mfi_out=out["mfi"],
            manifest_out=out["manifest"],
            checksum_cache=CHECKSUM_CACHE,
        )
        for kind in tables:
            tables[kind].append(out[kind])
    return tables


def _aggregate(config: dict, tables: dict[str, list[str]]) -> ad.AnnData:
    return run_aggregate(
        counts=tables["counts"],
        mfi=tables["mfi"],
        qc=tables["qc"],
        manifests=tables["manifest"],
        samples_qc="results/qc/samples.tsv",
        sheet=config["samples"],
        config=config,
        h5ad_out="results/counts/populations.h5ad",
        tsv_out="results/counts/populations.tsv",
        ratios_out="results/counts/ratios.tsv",
        mfi_out="results/counts/mfi.tsv",
        **_population_options(config),
    )


def _qc(config: dict, tables: dict[str, list[str]]) -> pd.DataFrame:
    return run_qc_table(
        counts=tables["counts"],
        mfi=tables["mfi"],
        qc=tables["qc"],
        manifests=tables["manifest"],
        sheet=config["samples"],
        qc_out="results/qc/samples.tsv",
        **_population_options(config),
    )


@pytest.fixture(scope="module")
def gated(tmp_path_factory):
    """The small trial gated in batches, with its QC table and populations.h5ad."""
    root = tmp_path_factory.mktemp("integrity")
    with contextlib.chdir(root):
        config = _trial(root)
        tables = _gate_all(root, config)
        qc = _qc(config, tables)
        adata = _aggregate(config, tables)
    return root, config, tables, qc, adata


def test_the_sha256_of_every_file_is_recorded(gated):
    root, _, tables, qc, adata = gated
    sheet = pd.read_csv(root / "data/samples.tsv", sep="\t", dtype=str).set_index("sample_id")
    truth = {sid: sha256(root / "data" / fcs) for sid, fcs in sheet["fcs"].items()}
    assert len(truth) >= 8 and len(tables["qc"]) >= 2
    assert dict(zip(qc["sample_id"], qc["sha256"])) == truth
    assert list(qc.columns[:8]) == [
        "sample_id", "patient_id", "arm", "visit", "compartment", "panel", "batch", "sha256",
    ]  # fmt: skip
    assert adata.obs["sha256"].to_dict() == {sid: truth[sid] for sid in adata.obs_names}
    recorded = adata.uns["provenance"]["fcs_sha256"]
    assert dict(zip(recorded["sample_id"], recorded["sha256"])) == truth
    assert adata.uns["provenance"]["sample_sheet_sha256"] == sha256(root / "data/samples.tsv")
    # the tidy populations table stays one file-free row per sample and population
    populations = pd.read_csv(root / "results/counts/populations.tsv", sep="\t")
    assert "sha256" not in populations.columns


def test_provenance_holds_no_absolute_path(gated):
    root, _, _, _, adata = gated
    provenance = adata.uns["provenance"]

    def strings(value):
        if isinstance(value, dict):
            return [s for v in value.values() for s in strings(v)]
        if isinstance(value, list):
            return [s for v in value for s in strings(v)]
        return [value] if isinstance(value, str) else []

    config = json.loads(provenance["config_json"])
    assert config["strategies"]["blood"]["strategy"].endswith("resources/gating/blood.xml")
    assert not [value for value in strings(config) if os.path.isabs(value)]
    assert str(root) not in provenance["config_json"]
    assert not any(os.path.isabs(p) for p in provenance["strategy_path"].values())
    assert all(not os.path.isabs(p) for p in adata.obs["fcs"])


@pytest.mark.parametrize(
    "damage",
    ["drop_last_row", "cut_mid_line", "empty", "edit_value", "drop_middle_row"],
)
@pytest.mark.parametrize("kind", ["counts", "mfi", "qc"])
def test_a_damaged_batch_table_is_refused_by_name(gated, tmp_path, kind, damage):
    root, config, tables, _, _ = gated
    work = tmp_path / "w"
    shutil.copytree(root, work)
    path = work / tables[kind][0]
    lines = path.read_text().splitlines(keepends=True)
    assert len(lines) >= 3, path
    damaged = {
        "drop_last_row": lambda: "".join(lines[:-1]),
        "cut_mid_line": lambda: "".join(lines)[:-7],
        "empty": lambda: "",
        "edit_value": lambda: "".join(lines[:-1]) + lines[-1].replace("\t", "\t9", 1),
        "drop_middle_row": lambda: "".join(lines[:1] + lines[2:]),
    }[damage]()
    path.write_text(damaged)
    for run in (_qc, _aggregate):
        with contextlib.chdir(work), pytest.raises(CytotrialError) as caught:
            run(config, tables)
        message = str(caught.value)
        assert "\n" not in message
        assert message.startswith(tables[kind][0]), message
        assert f"delete {tables[kind][0]} and run the same command again" in message
        assert str(work) not in message


def test_a_damaged_manifest_is_refused_by_name(gated, tmp_path):
    root, config, tables, _, _ = gated
    work = tmp_path / "w"
    shutil.copytree(root, work)
    manifest = work / tables["manifest"][0]
    manifest.write_text(manifest.read_text().splitlines()[0] + "\n")  # its rows lost
    with contextlib.chdir(work), pytest.raises(CytotrialError) as caught:
        _aggregate(config, tables)
    assert "is not listed in its gating manifest" in str(caught.value)
    manifest.write_text("garbage")
    with contextlib.chdir(work), pytest.raises(CytotrialError, match="is damaged: delete"):
        _aggregate(config, tables)


def test_when_every_sample_is_excluded_the_qc_table_says_why(tmp_path):
    with contextlib.chdir(tmp_path):
        config = _trial(tmp_path, broken=True)
        tables = _gate_all(tmp_path, config)
        qc = _qc(config, tables)
        assert len(qc) >= 8 and (qc["status"] == "excluded").all()
        assert qc["message"].str.len().gt(0).all() and not qc["message"].eq("not gated").any()
        assert set(qc["sha256"]) == {hashlib.sha256(b"not an FCS file").hexdigest()}
        with pytest.raises(CytotrialError) as caught:
            _aggregate(config, tables)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"no sample could be gated: all {len(qc)} samples were excluded")
    assert message.endswith("results/qc/samples.tsv gives each sample's reason")
    assert (tmp_path / "results/qc/samples.tsv").is_file()


# ---------------------------------------------------------------------------------------------
# a full disk, a folder without write permission


def test_a_full_disk_names_the_file(tmp_path, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(pd.DataFrame, "to_csv", full)
    with pytest.raises(WriteError) as caught, contextlib.chdir(tmp_path):
        write_tsv(pd.DataFrame({"a": [1]}), "results/qc/samples.tsv")
    assert str(caught.value) == (
        "cannot write results/qc/samples.tsv: no space left on the device; free some space, "
        "then run the same command again"
    )


def _unprivileged(function) -> tuple[int, str]:
    """Run ``function`` where permissions apply (as nobody when run as root); exit code, output."""
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through the pipe
        os.close(read)
        code, text = 0, ""
        try:
            if os.geteuid() == 0:
                os.setgid(65534)
                os.setuid(65534)
            function()
        except BaseException as error:  # noqa: BLE001 - everything goes back to the parent
            code, text = 1, f"{type(error).__name__}: {error}"
        os.write(write, text.encode())
        os._exit(code)
    os.close(write)
    with os.fdopen(read) as pipe:
        text = pipe.read()
    _, status = os.waitpid(child, 0)
    return os.waitstatus_to_exitcode(status), text


def test_a_read_only_folder_names_the_file():
    base = Path(tempfile.mkdtemp())  # reachable by an unprivileged user, unlike pytest's folders
    try:
        base.chmod(0o755)
        (base / "results/qc").mkdir(parents=True)
        (base / "results/qc").chmod(0o555)
        code, text = _unprivileged(
            lambda: write_tsv(pd.DataFrame({"a": [1]}), base / "results/qc/samples.tsv")
        )
    finally:
        (base / "results/qc").chmod(0o755)
        shutil.rmtree(base)
    assert code == 1
    assert text.startswith("WriteError: cannot write "), text
    assert "qc/samples.tsv: permission denied; make the folder writable" in text


def test_a_rule_ends_with_one_line_on_a_full_disk(tmp_path, capfd, monkeypatch):
    """A write cut short with no file name (the error a write() gives) names the job's output."""
    monkeypatch.setattr(sys, "stdout", sys.stdout)  # rule_log redirects them: restored after
    monkeypatch.setattr(sys, "stderr", sys.stderr)
    sys.path.insert(0, str(ROOT / "workflow/scripts"))
    try:
        import _log
        from _log import rule_log
    finally:
        sys.path.remove(str(ROOT / "workflow/scripts"))
    monkeypatch.setattr(_log, "limit_threads", lambda threads: None)  # not this process's
    job = SimpleNamespace(
        log=[str(tmp_path / "job.log")], output=["results/counts/mfi.tsv"], threads=1
    )
    with pytest.raises(SystemExit) as stopped, rule_log(job):
        raise OSError(errno.ENOSPC, "No space left on device")
    assert stopped.value.code == 1
    line = "cytotrial: cannot write results/counts/mfi.tsv: no space left on the device"
    err = capfd.readouterr().err
    assert err.startswith(line) and err.count("\n") == 1
    assert (tmp_path / "job.log").read_text().startswith(line)
    # an unrelated OSError is a bug: it is not hidden
    with pytest.raises(OSError, match="Bad file descriptor"), rule_log(job):
        raise OSError(errno.EBADF, "Bad file descriptor")


_THREADS_PROBE = """
import json
import sys
from types import SimpleNamespace
sys.path.insert(0, {scripts!r})
if {numpy_first}:
    import numpy
from _log import rule_log
job = SimpleNamespace(log=[{log!r}], output=[], threads={threads})
with rule_log(job):
    import numpy
    from threadpoolctl import threadpool_info
    blas = [info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"]
    sys.__stdout__.write(json.dumps(blas))
"""


@pytest.mark.parametrize("numpy_first", [False, True])
@pytest.mark.parametrize("threads", [1, 2])
def test_a_rule_script_gives_numerical_libraries_its_threads(tmp_path, threads, numpy_first):
    """A one-thread job's BLAS runs one thread (its default is one per core), loaded before or after."""
    code = _THREADS_PROBE.format(
        scripts=str(ROOT / "workflow/scripts"),
        numpy_first=numpy_first,
        log=str(tmp_path / "job.log"),
        threads=threads,
    )
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    blas = json.loads(done.stdout)
    assert blas and set(blas) == {threads}, done.stdout


# ---------------------------------------------------------------------------------------------
# end to end: a file replaced with its old timestamp is gated again


def _small_project(project: Path, *, batch_size: int) -> Path:
    """A project folder (the workflow, a 2 + 2 patient trial in data/) as a user lays it out."""
    project.mkdir(parents=True)
    shutil.copy(ROOT / "Snakefile", project / "Snakefile")
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for folder in ("workflow", "profiles", "config", "resources/gating"):
        shutil.copytree(ROOT / folder, project / folder, ignore=skip)
    arguments = ["--patients-per-arm", "2", "--events", "2000", "--tumor-events", "1000"]
    assert main(["simulate", "--out", str(project / "data"), *arguments, "--seed", "7"]) == 0
    config = yaml.safe_load((project / "config/config.yaml").read_text())
    config.pop("demo")
    config["samples"] = "data/samples.tsv"
    config["patients"] = "data/patients.tsv"
    config["gating"]["batch_size"] = batch_size
    (project / "config/config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return project


@pytest.mark.e2e
def test_a_file_replaced_with_its_old_timestamp_is_gated_again(tmp_path):
    project = _small_project(tmp_path / "trial", batch_size=4)
    target = "results/qc/samples.tsv"
    run_snakemake(project, target, in_place=True)
    assert planned_jobs(project, target, in_place=True) == {}

    # another file of the same panel and size over one sample's file, its timestamps kept (cp -p)
    sheet = pd.read_csv(project / "data/samples.tsv", sep="\t", dtype=str)
    blood = sheet[sheet["panel"] == "blood"]
    victim, donor = (project / "data" / f for f in blood["fcs"].iloc[:2])
    assert victim.stat().st_size == donor.stat().st_size
    before = sha256(victim)
    replace_keeping_mtime(victim, donor.read_bytes())
    jobs = planned_jobs(project, target, in_place=True)
    assert jobs == {"gate": 1, "qc_table": 1}, jobs
    run_snakemake(project, target, in_place=True)
    qc = pd.read_csv(project / target, sep="\t", dtype=str).set_index("sample_id")
    victim_id = blood["sample_id"].iloc[0]
    assert qc.at[victim_id, "sha256"] == sha256(victim) != before
    assert planned_jobs(project, target, in_place=True) == {}


# ---------------------------------------------------------------------------------------------
# an interrupted run


def test_a_stale_lock_is_one_line_saying_what_to_do(tmp_path):
    assert stale_lock_note(tmp_path) is None
    (tmp_path / ".snakemake/locks").mkdir(parents=True)
    assert stale_lock_note(tmp_path) is None
    (tmp_path / ".snakemake/locks/0.output.lock").write_text("results/qc/samples.tsv\n")
    note = stale_lock_note(tmp_path)
    assert "\n" not in note and "`snakemake --unlock`" in note and ".snakemake/locks" in note


@pytest.mark.e2e
def test_a_killed_run_resumes_with_the_readmes_commands(tmp_path):
    """A run killed outright during gating is resumed as the README says.

    The next run says in one line what to do; after `snakemake --unlock` the same command finishes
    only what was left, and every batch table it aggregates checks out against its manifest.
    """
    project = _small_project(tmp_path / "trial", batch_size=3)
    target = "results/counts/populations.h5ad"
    command = [sys.executable, "-m", "snakemake", target]
    run = subprocess.Popen(
        command, cwd=project, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 300
    while not list((project / "results/gating").glob("batch_*.manifest.tsv")):
        assert run.poll() is None and time.monotonic() < deadline, "gating never started"
        time.sleep(0.2)
    os.killpg(run.pid, signal.SIGKILL)  # the run and its jobs, as a power loss would
    run.wait()
    gated = len(list((project / "results/gating").glob("batch_*.manifest.tsv")))
    members = len(list((project / "results/gating/batches").glob("batch_*.tsv")))
    assert 1 <= gated < members, (gated, members)

    stopped = run_snakemake(project, target, check=False, in_place=True)
    assert stopped.returncode != 0
    ours = [line for line in stopped.stderr.splitlines() if line.startswith("cytotrial:")]
    assert len(ours) == 1 and "`snakemake --unlock`" in ours[0], stopped.stderr[-2000:]

    run_snakemake(project, "--unlock", in_place=True)
    resumed = run_snakemake(project, target, in_place=True)
    assert "cytotrial:" not in resumed.stderr
    jobs = re.findall(r"^gate\s+(\d+)$", resumed.stdout + resumed.stderr, flags=re.M)
    assert jobs and int(jobs[0]) <= members - gated + 2, jobs  # and the (two) jobs killed
    assert planned_jobs(project, target, in_place=True) == {}


@pytest.mark.e2e
@pytest.mark.parametrize(
    "args",
    [(), ("--cores", "1", "--workflow-profile", "none")],
    ids=["default-profile", "one-core-stopping-at-the-first-failure"],
)
def test_a_run_in_which_every_sample_is_excluded_keeps_its_qc_table(tmp_path, args):
    """The QC table is written first (on one core, without keep-going, too)."""
    project = _small_project(tmp_path / "trial", batch_size=8)
    files = sorted((project / "data").rglob("*.fcs"))
    for path in files:
        path.write_bytes(b"FCS3.1" + b" " * 52)  # a HEADER, then nothing
    result = run_snakemake(project, *args, check=False, in_place=True)
    assert result.returncode != 0
    ours = [line for line in result.stderr.splitlines() if line.startswith("cytotrial:")]
    assert len(ours) == 1, result.stderr[-3000:]
    assert ours[0].startswith(f"cytotrial: no sample could be gated: all {len(files)} samples")
    assert ours[0].endswith("results/qc/samples.tsv gives each sample's reason")
    qc = pd.read_csv(project / "results/qc/samples.tsv", sep="\t", dtype=str)
    assert len(qc) == len(files) and (qc["status"] == "excluded").all()
    assert qc["message"].notna().all() and not qc["message"].eq("not gated").any()
    assert not (project / "results/counts/populations.h5ad").exists()
