"""``cytotrial bench-pipeline``: the whole workflow timed beside FlowKit, an edit, and phase 3 size.

Five figures, measured on this machine in one run (compare their ratios, not their absolute
values, across machines):

1. **Whole demo**: the demo's workflow copied to a working folder, its trial simulated (not
   timed), then ``snakemake --cores N`` timed from start to finish: every rule, the report
   pages included, Snakemake's own start-up included.
2. **FlowKit on the same files**: FlowKit's ``Session`` loading and gating every gated file of
   the demo with its panel's GatingML strategy (``analyze_samples`` with its own multiprocessing),
   and the ratio whole demo / FlowKit.
3. **One-gate edit**: one gate of the blood strategy moved (a polygon's vertices shifted by 1%),
   then the time until the counts and the gating review pages are up to date, and until the
   whole pipeline is.
4. **The floor of the whole demo**: the jobs the whole demo ran (read from Snakemake's records
   of the run), each replaced by a job that only starts Python and loads the libraries its rule
   uses, with the same dependencies between them, run by Snakemake on the same cores; and
   Snakemake's own start-up with nothing to do. However fast the jobs' work, the whole demo
   cannot run in less; only fewer jobs, or jobs loading less, lower the floor.
5. **Phase 3** (``--phase3``): a trial of 391 + 392 patients simulated, the whole pipeline run on
   it as a user's config (sheet, patients table, the demo's strategies and settings); wall time
   and the peak memory of every process, Snakemake's own included.

Memory is sampled from the process tree every 0.1 s (``psutil``): the peak resident memory of
each process, named by its rule (the script it runs) or ``snakemake`` for the main process.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import importlib.util
import json
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import yaml

from ..errors import CytotrialError
from ._bench import machine_description, workflow_root

__all__ = [
    "RULE_LIBRARIES",
    "executed_jobs",
    "floor_workflow",
    "run_bench_pipeline",
    "shift_polygon",
    "timed_snakemake",
]

#: What is copied of the workflow folder to run it elsewhere (never results or the simulated demo).
_WORKFLOW_PARTS = ("Snakefile", "workflow", "config", "profiles", "resources/gating")
#: Outputs that are up to date once an edited gate's counts and review pages are.
EDIT_TARGETS = ("results/counts/populations.tsv", "results/qc/samples.tsv")


#: The libraries each rule's script loads (the modules in ``sys.modules`` when its job ends, on the
#: demo), as the floor's jobs import them. A rule not listed loads none.
RULE_LIBRARIES: dict[str, tuple[str, ...]] = {
    "gate": ("pandas", "scipy.stats", "flowkit"),
    "qc_table": ("pandas", "scipy.stats", "anndata"),
    "aggregate": ("pandas", "scipy.stats", "anndata", "matplotlib"),
    "export_gates": ("pandas", "scipy.stats", "flowkit"),
    "stats": ("pandas", "anndata", "statsmodels.api", "lifelines", "formulaic"),
    "figures": ("pandas", "seaborn.objects", "matplotlib.pyplot", "statsmodels.api"),
    "gate_positions": ("pandas", "seaborn.objects", "matplotlib.pyplot", "statsmodels.api"),
    "qc_figures": ("anndata", "seaborn.objects", "matplotlib.pyplot", "statsmodels.api"),
    "patient_figures": ("anndata", "seaborn.objects", "matplotlib.pyplot", "statsmodels.api"),
    "km_figures": ("anndata", "seaborn.objects", "statsmodels.api", "lifelines", "formulaic"),
    "events": ("scanpy", "flowkit", "seaborn.objects", "statsmodels.api", "umap", "leidenalg"),
    "review_pages": ("pandas", "flowio", "matplotlib.pyplot"),
    "gating_review": ("pandas", "PIL.Image"),
    "report_overview": ("pandas", "anndata"),
    "report_tables": ("pandas",),
    "report_figures": ("pandas",),
}


class _Monitor(threading.Thread):
    """Peak resident memory of every process of a tree, sampled until stopped."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.peaks: dict[str, float] = {}
        self._done = threading.Event()

    @staticmethod
    def _label(cmdline: Sequence[str]) -> str:
        for part in cmdline:
            name = Path(part).name
            if part.endswith(".py") and ".snakemake" in part:
                # Snakemake runs a rule's script as .snakemake/scripts/tmpXXXX.<script>.py
                return name.split(".", 1)[1].removesuffix(".py")
        return "snakemake" if any("snakemake" in p for p in cmdline) else Path(cmdline[0]).name

    def run(self) -> None:
        import psutil

        try:
            root = psutil.Process(self.pid)
        except psutil.NoSuchProcess:
            return
        while not self._done.is_set():
            try:
                processes = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                break
            for process in processes:
                try:
                    rss = process.memory_info().rss / 2**20
                    label = self._label(process.cmdline() or [process.name()])
                except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                    continue
                self.peaks[label] = max(self.peaks.get(label, 0.0), rss)
            self._done.wait(self.interval)

    def stop(self) -> dict[str, float]:
        self._done.set()
        self.join()
        return self.peaks


def timed_snakemake(
    workdir: Path, *, cores: int, args: Sequence[str] = (), snakefile: Path | None = None
) -> dict:
    """Run Snakemake in ``workdir``: wall seconds, jobs run, peak MB per process label.

    Raises
    ------
    CytotrialError
        The run failed (its last lines are named).
    """
    command = [sys.executable, "-m", "snakemake", "--cores", str(cores), "--quiet=rules"]
    if snakefile is not None:
        command += ["--snakefile", str(snakefile)]
    command += list(args)
    start = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    monitor = _Monitor(process.pid)
    monitor.start()
    output, _ = process.communicate()
    wall = time.perf_counter() - start
    peaks = monitor.stop()
    if process.returncode != 0:
        tail = " | ".join(output.strip().splitlines()[-5:])
        raise CytotrialError(f"bench-pipeline: the workflow failed in {workdir}: {tail}")
    return {"wall_s": wall, "peaks_mb": peaks, "output": output}


def shift_polygon(strategy: Path, gate_id: str, factor: float = 1.01) -> None:
    """Move a GatingML polygon gate: every vertex's first coordinate times ``factor``."""
    from lxml import etree

    tree = etree.parse(str(strategy))
    ns = {"gating": "http://www.isac-net.org/std/Gating-ML/v2.0/gating"}
    gates = tree.xpath(f"//gating:PolygonGate[@gating:id='{gate_id}']", namespaces=ns)
    if not gates:
        raise CytotrialError(f"bench-pipeline: {strategy.name} has no polygon gate {gate_id!r}")
    for vertex in gates[0].iterfind("gating:vertex", ns):
        coordinate = vertex.find("gating:coordinate", ns)
        key = next(k for k in coordinate.attrib if k.endswith("value"))
        coordinate.set(key, repr(float(coordinate.get(key)) * factor))
    tree.write(str(strategy), xml_declaration=True, encoding="UTF-8")


def _copy_workflow(root: Path, dest: Path) -> None:
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for part in _WORKFLOW_PARTS:
        source = root / part
        if source.is_dir():
            shutil.copytree(source, dest / part)
        elif source.is_file():
            (dest / part).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / part)


def flowkit_gating_time(workdir: Path, *, cores: int) -> dict:
    """FlowKit's ``Session`` loads and gates every gated file of the run in ``workdir``.

    Each panel's files are one Session with the panel's GatingML strategy, analysed with
    FlowKit's own multiprocessing when ``cores`` > 1. Returns seconds and files.
    """
    import warnings

    import flowkit as fk

    with open(workdir / "config" / "config.yaml", encoding="utf-8") as handle:
        config = yaml.safe_load(handle)
    sheet_path = workdir / config["samples"]
    sheet = pd.read_csv(sheet_path, sep="\t")
    qc = pd.read_csv(workdir / "results" / "qc" / "samples.tsv", sep="\t")
    gated = set(qc.loc[qc["status"] != "excluded", "sample_id"])
    sheet = sheet[sheet["sample_id"].isin(gated)]
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for panel, rows in sheet.groupby("panel", sort=True):
            files = [str(sheet_path.parent / f) for f in rows["fcs"]]
            strategy = workdir / config["strategies"][panel]["strategy"]
            session = fk.Session(gating_strategy=str(strategy), fcs_samples=files)
            session.analyze_samples(use_mp=cores > 1)
    return {"seconds": time.perf_counter() - start, "files": len(sheet)}


def executed_jobs(workdir: Path, *, since: float) -> list[dict]:
    """The jobs Snakemake ran in ``workdir`` that started at or after ``since`` (epoch seconds).

    From Snakemake's records of every output (``.snakemake/metadata``): each job's rule, outputs
    and inputs, in the order they started.
    """
    root = workdir / ".snakemake" / "metadata"
    jobs: dict[str, dict] = {}
    for record in sorted(p for p in root.rglob("*") if p.is_file()):
        # a record is named by its output's path, base64-encoded (long names split into folders)
        output = base64.urlsafe_b64decode("".join(record.relative_to(root).parts)).decode()
        data = json.loads(record.read_text(encoding="utf-8"))
        if data.get("starttime") is None or data["starttime"] < since:
            continue
        job = jobs.setdefault(
            data["job_hash"],
            {"rule": data["rule"], "start": data["starttime"], "outputs": [], "inputs": set()},
        )
        job["outputs"].append(output)
        job["inputs"].update(data.get("input") or [])
    for job in jobs.values():
        job["inputs"] = sorted(job["inputs"])
    return sorted(jobs.values(), key=lambda job: (job["start"], job["rule"], job["outputs"]))


def floor_workflow(jobs: Sequence[dict], dest: Path) -> Path:
    """A workflow of ``jobs`` that do no work: each only imports its rule's libraries.

    A job depends on another when it read one of the other's outputs, as in the run recorded.
    Returns the folder (its ``Snakefile`` beside one script per rule).
    """
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    producer = {output: i for i, job in enumerate(jobs) for output in job["outputs"]}
    rules = []
    for rule in sorted({job["rule"] for job in jobs}):
        lines = [f"import {library}\n" for library in RULE_LIBRARIES.get(rule, ())]
        lines.append("open(snakemake.output[0], 'w').close()\n")
        (dest / f"floor_{rule}.py").write_text("".join(lines), encoding="utf-8")
    for i, job in enumerate(jobs):
        needs = sorted({producer[path] for path in job["inputs"] if path in producer} - {i})
        rules.append(
            f"rule job{i}:\n"
            f"    input: {[f'done/job{k}' for k in needs]!r}\n"
            f"    output: 'done/job{i}'\n"
            f"    script: 'floor_{job['rule']}.py'\n"
        )
    everything = ", ".join(f"'done/job{i}'" for i in range(len(jobs)))
    (dest / "Snakefile").write_text(
        f"rule all:\n    input: [{everything}]\n\n" + "\n".join(rules), encoding="utf-8"
    )
    return dest


def slurm_plugin_wait(timeout: float = 15.0) -> float | None:
    """Seconds every Snakemake start waits on this machine for SLURM's ``scontrol``, if long.

    The SLURM executor plugin, when installed, runs ``scontrol show config`` as Snakemake loads
    its plugins; with SLURM's client installed and no controller reachable that takes seconds.
    None when the plugin or ``scontrol`` is absent, or it answers within a second.
    """
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        return None
    scontrol = shutil.which("scontrol")
    if scontrol is None:
        return None
    start = time.perf_counter()
    with contextlib.suppress(subprocess.TimeoutExpired):
        subprocess.run([scontrol, "show", "config"], capture_output=True, timeout=timeout)
    seconds = time.perf_counter() - start
    return seconds if seconds > 1.0 else None


def _peak_line(peaks: dict[str, float]) -> str:
    top = sorted(peaks.items(), key=lambda item: -item[1])
    return ", ".join(f"{label} {mb:.0f} MB" for label, mb in top[:6])


def _whole_demo(root: Path, workdir: Path, cores: int) -> tuple[Path, dict]:
    demo = workdir / "demo"
    _copy_workflow(root, demo)
    with open(demo / "config" / "config.yaml", encoding="utf-8") as handle:
        sheet = yaml.safe_load(handle)["samples"]
    timed_snakemake(demo, cores=cores, args=[sheet])  # the simulated demo, not timed
    since = time.time()
    run = timed_snakemake(demo, cores=cores)
    run["jobs"] = executed_jobs(demo, since=since)
    return demo, run


def _review_targets(demo: Path) -> list[str]:
    """The gating review's outputs (redrawn for the samples an edit touches), from a dry run."""
    listed = subprocess.run(
        [sys.executable, "-m", "snakemake", "--list-target-rules"],
        cwd=demo,
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    # one rule a line, its description indented below it
    rules = [line.split()[0] for line in listed if line.strip() and not line[0].isspace()]
    return [rule for rule in rules if "review" in rule]


def _edit_one_gate(demo: Path, cores: int) -> tuple[dict, dict]:
    with open(demo / "config" / "config.yaml", encoding="utf-8") as handle:
        config = yaml.safe_load(handle)
    shift_polygon(demo / config["strategies"]["blood"]["strategy"], "singlets")
    to_counts = timed_snakemake(demo, cores=cores, args=[*EDIT_TARGETS, *_review_targets(demo)])
    rest = timed_snakemake(demo, cores=cores)
    return to_counts, rest


def _phase3(root: Path, workdir: Path, *, cores: int, events: int, tumor_events: int) -> dict:
    from ..sim import simulate_trial

    trial = workdir / "phase3"
    if trial.exists():
        shutil.rmtree(trial)
    _copy_workflow(root, trial)
    with open(trial / "config" / "config.yaml", encoding="utf-8") as handle:
        config = yaml.safe_load(handle)
    drift = (config.pop("demo", None) or {}).get("drift")
    sim = simulate_trial(
        trial / "data",
        patients_per_arm=(391, 392),
        events=events,
        tumor_events=tumor_events,
        seed=3,
        jobs=cores,
        drift=drift,
        event_truth=False,
    )
    config["samples"] = "data/samples.tsv"
    config["patients"] = "data/patients.tsv"
    (trial / "config" / "phase3.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    run = timed_snakemake(trial, cores=cores, args=["--configfile", "config/phase3.yaml"])
    run.update(files=sim.n_files, events=sim.n_events, simulate_s=sim.seconds)
    return run


def run_bench_pipeline(args: argparse.Namespace) -> int:
    """Body of ``cytotrial bench-pipeline`` (see the module docstring); prints the figures."""
    root = workflow_root(args.workflow)
    workdir = Path(args.workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    cores = args.cores
    print(f"machine: {machine_description()}; --cores {cores}")
    waits = slurm_plugin_wait()
    if waits is not None:
        print(
            f"note: every Snakemake start here waits {waits:.1f} s for SLURM's scontrol (the SLURM "
            "executor plugin is installed, SLURM's client finds no controller); the times below "
            "include it"
        )
    demo, whole = _whole_demo(root, workdir, cores)
    print(
        f"whole demo (every rule, report pages included): {whole['wall_s']:.1f} s wall, "
        f"{len(whole['jobs'])} jobs; peak memory {_peak_line(whole['peaks_mb'])}"
    )
    flowkit = None
    if not args.skip_flowkit:
        flowkit = flowkit_gating_time(demo, cores=cores)
        print(
            f"FlowKit Session gating the same {flowkit['files']} files: {flowkit['seconds']:.1f} s; "
            f"whole demo / FlowKit = {whole['wall_s'] / flowkit['seconds']:.2f}"
        )
    idle = timed_snakemake(demo, cores=cores)
    floor = timed_snakemake(floor_workflow(whole["jobs"], workdir / "floor"), cores=cores)
    ratio = f" = {floor['wall_s'] / flowkit['seconds']:.2f} x FlowKit" if flowkit else ""
    print(
        f"floor: Snakemake with nothing to do {idle['wall_s']:.1f} s; the whole demo's "
        f"{len(whole['jobs'])} jobs, each only loading its libraries, same dependencies: "
        f"{floor['wall_s']:.1f} s{ratio}"
    )
    to_counts, rest = _edit_one_gate(demo, cores)
    print(
        f"one-gate edit (blood singlets moved 1%): counts and review pages updated in "
        f"{to_counts['wall_s']:.1f} s; the rest of the pipeline after it {rest['wall_s']:.1f} s"
    )
    if args.phase3:
        run = _phase3(
            root, workdir, cores=cores, events=args.phase3_events, tumor_events=args.phase3_events
        )
        peak = max(run["peaks_mb"].values())
        print(
            f"phase 3 ({run['files']:,} files, {run['events']:,} events; simulated in "
            f"{run['simulate_s']:.0f} s, not counted): whole pipeline {run['wall_s']:.1f} s wall "
            f"({run['wall_s'] / 60:.1f} min); largest process {peak:.0f} MB; "
            f"{_peak_line(run['peaks_mb'])}"
        )
    if not args.keep:
        shutil.rmtree(workdir / "demo", ignore_errors=True)
        shutil.rmtree(workdir / "phase3", ignore_errors=True)
        shutil.rmtree(workdir / "floor", ignore_errors=True)
    return 0
