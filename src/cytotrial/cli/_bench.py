"""``cytotrial bench``: how fast and how lean the workflow is at a given trial size.

It simulates a trial (drifting like the demo where its config says so), runs the workflow's gating
and aggregation on it with Snakemake and prints files, events, wall time, events/s, per-rule times
from Snakemake's ``benchmark:`` files and peak memory; then, on one simulated drifting file of
1,000,000 events, static gating (read + gate with the template) beside adaptive gating (read +
acquisition QC + the demo's adaptive gates) and their ratio; then, on one simulated file of
``--flowkit-events`` events, the side-by-side of cytotrial's gating against FlowKit's own
``Session`` analysis with the same strategy (ratio and whether the counts are identical).
``--scales 1 4 16`` repeats the workflow run at multiples of the trial size.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import yaml

from ..errors import CytotrialError

__all__ = [
    "adaptive_side_by_side",
    "machine_description",
    "run_benchmark",
    "run_workflow",
    "workflow_root",
]


def workflow_root(value: str | Path | None = None) -> Path:
    """The folder holding the workflow (``Snakefile``, ``config/``, ``resources/``) to benchmark.

    ``value`` when given; else the working directory when it holds a Snakefile; else the source
    checkout this package runs from (an editable install).
    """
    candidates = [Path(value)] if value else [Path.cwd(), Path(__file__).resolve().parents[3]]
    for folder in candidates:
        if (folder / "Snakefile").is_file() and (folder / "config" / "config.yaml").is_file():
            return folder.resolve()
    where = value or "the working directory"
    raise CytotrialError(
        f"bench: no cytotrial workflow (Snakefile and config/config.yaml) in {where}; "
        "run it from the project folder or pass --workflow DIR"
    )


def machine_description() -> str:
    """One line naming the machine: CPU model, cores, memory."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    memory = ""
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        memory = f", {pages / 2**30:.0f} GiB"
    except (ValueError, OSError, AttributeError):
        pass
    return f"{model}, {os.cpu_count()} cores{memory}, Python {platform.python_version()}"


def _bench_config(root: Path, sheet: Path, *, batch_size: int | None) -> dict:
    with open(root / "config" / "config.yaml", encoding="utf-8") as handle:
        config = yaml.safe_load(handle)
    config["samples"] = str(sheet.resolve())
    config["patients"] = ""
    for spec in config["strategies"].values():
        spec["strategy"] = str((root / spec["strategy"]).resolve())
    if batch_size:
        config["gating"]["batch_size"] = batch_size
    return config


def run_workflow(
    trial: Path,
    *,
    root: Path,
    cores: int,
    batch_size: int | None = None,
    targets: tuple[str, ...] = ("results/counts/populations.h5ad",),
) -> dict:
    """Run the workflow's gating and aggregation on a simulated trial; wall time, peak memory, rule times."""
    workdir = trial / "run"
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    config_path = workdir / "config.yaml"
    config = _bench_config(root, trial / "samples.tsv", batch_size=batch_size)
    config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    command = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(root / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(config_path),
        "--cores",
        str(cores),
        *targets,
        "--quiet",
        "all",
    ]
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - start
    peak_children_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    if result.returncode != 0:
        tail = " | ".join((result.stderr or result.stdout).strip().splitlines()[-5:])
        raise CytotrialError(f"the workflow failed on {trial} (see {workdir}/logs): {tail}")
    rules = []
    for path in sorted((workdir / "benchmarks").rglob("*.tsv")):
        frame = pd.read_csv(path, sep="\t")
        rule = path.parent.name if path.parent.name != "benchmarks" else path.stem
        rules.append(
            {
                "rule": rule,
                "seconds": float(frame["s"].iloc[0]),
                "max_rss_mb": float(frame["max_rss"].iloc[0]),
            }
        )
    rule_table = pd.DataFrame(rules, columns=["rule", "seconds", "max_rss_mb"])
    per_rule = (
        rule_table.groupby("rule")
        .agg(
            jobs=("seconds", "size"),
            total_s=("seconds", "sum"),
            mean_s=("seconds", "mean"),
            max_rss_mb=("max_rss_mb", "max"),
        )
        .reset_index()
    )
    return {
        "wall_s": wall,
        "peak_rss_mb": max(per_rule["max_rss_mb"].max() if len(per_rule) else 0.0, 0.0),
        # the largest process so far (ru_maxrss of children is a running maximum over this run and before)
        "peak_process_mb": peak_children_mb,
        "per_rule": per_rule,
    }


def _demo_config(root: Path) -> dict:
    with open(root / "config" / "config.yaml", encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def _simulate(
    out: Path, *, per_arm, events: int, tumor_events: int, seed: int, jobs: int, drift=None
):
    from ..sim import simulate_trial

    if out.exists():
        shutil.rmtree(out)
    return simulate_trial(
        out,
        patients_per_arm=per_arm,
        events=events,
        tumor_events=tumor_events,
        seed=seed,
        jobs=jobs,
        **({"drift": drift} if drift else {}),
    )


def _best_of(function, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def adaptive_side_by_side(
    workdir: Path, *, root: Path, events: int = 1_000_000, repeats: int = 3
) -> dict:
    """Static gating beside adaptive gating (with acquisition QC) on one drifting blood file.

    Static: read the file and gate it with the demo's blood template. Adaptive: read it, remove
    the events acquisition QC finds anomalous (the config's ``qc.acquisition``) and gate it with
    the demo's adaptive gates (``strategies.blood.adaptive``). Each is timed as the best of
    ``repeats`` runs in this process.

    Returns
    -------
    dict
        ``events``, ``boundaries`` (adaptive boundaries declared), ``static_s``, ``adaptive_s``,
        ``ratio`` (adaptive_s / static_s), ``acquisition_s`` (its share of adaptive_s) and
        ``fallbacks`` (boundaries that kept the template in this file).
    """
    from dataclasses import replace

    from ..config import resolve_config
    from ..gating import (
        acquisition_qc,
        adaptive_plan,
        count_events,
        gate_population_model,
        gate_samples,
        panel_gating,
    )
    from ..io import load_strategy, read_fcs
    from ..sim import simulate_sample, write_fcs

    config = resolve_config(_demo_config(root))
    spec = config["strategies"]["blood"]
    strategy = load_strategy(root / spec["strategy"])
    plan = adaptive_plan("blood", strategy, spec.get("adaptive"), panels=config["panels"])
    settings = config["qc"]["acquisition"]
    path = workdir / "adaptive_file" / "blood.fcs"
    write_fcs(simulate_sample(panel="blood", n_events=events, drift=True, seed=17), path)

    def static() -> None:
        count_events(read_fcs(path), strategy)

    def acquisition_only() -> None:
        acquisition_qc(read_fcs(path), settings)

    def adaptive() -> object:
        data = read_fcs(path)
        if settings["enabled"]:
            data = replace(data, events=data.events[acquisition_qc(data, settings).keep])
        return count_events(data, strategy, adaptive=plan or None)

    static_s = _best_of(static, repeats)
    adaptive_s = _best_of(adaptive, repeats)
    gated = gate_samples(
        pd.DataFrame({"sample_id": ["blood"], "panel": ["blood"], "fcs": [str(path)]}),
        {
            "blood": panel_gating(
                "blood",
                strategy,
                gate_population_model(strategy),
                adaptive=spec.get("adaptive"),
                panels=config["panels"],
            )
        },
        acquisition=settings,
    )
    return {
        "events": events,
        "boundaries": sum(len(b) for b in plan.boundaries.values()),
        "static_s": static_s,
        "adaptive_s": adaptive_s,
        "ratio": adaptive_s / static_s,
        "acquisition_s": _best_of(acquisition_only, repeats),
        "fallbacks": int((gated.gates["status"] == "fallback").sum()),
    }


def _flowkit_side_by_side(workdir: Path, *, root: Path, events: int) -> dict:
    from ..gating import benchmark_gating
    from ..io import load_strategy
    from ..sim import simulate_trial

    out = workdir / "flowkit_file"
    if out.exists():
        shutil.rmtree(out)
    simulate_trial(out, patients_per_arm=1, events=events, tumor_events=1000, seed=7, jobs=1)
    sheet = pd.read_csv(out / "samples.tsv", sep="\t")
    first = sheet[sheet["compartment"] == "blood"].iloc[0]
    strategy = load_strategy(root / "resources" / "gating" / "blood.xml")
    return benchmark_gating(out / first["fcs"], strategy, repeats=3)


def run_benchmark(args: argparse.Namespace) -> int:
    """Body of ``cytotrial bench`` (see the module docstring); prints a report, returns the exit code."""
    root = workflow_root(args.workflow)
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    per_arm = args.patients_per_arm
    tumor_events = args.tumor_events or args.events
    print(f"machine: {machine_description()}")
    rows = []
    for scale in args.scales or [1.0]:
        arms = [max(1, round(n * scale)) for n in per_arm]
        trial = workdir / f"trial_x{scale:g}"
        sim = _simulate(
            trial,
            per_arm=arms[0] if len(arms) == 1 else tuple(arms),
            events=args.events,
            tumor_events=tumor_events,
            seed=11,
            jobs=args.cores,
            drift=(_demo_config(root).get("demo") or {}).get("drift"),
        )
        print(
            f"\n[x{scale:g}] simulated {sim.n_files} files, {sim.n_events:,} events in {sim.seconds:.1f} s "
            f"({sim.n_files / sim.seconds:.1f} files/s, {sim.n_events / sim.seconds:,.0f} events/s)"
        )
        run = run_workflow(trial, root=root, cores=args.cores, batch_size=args.batch_size)
        print(
            f"[x{scale:g}] workflow (gating + aggregation): {run['wall_s']:.1f} s wall, "
            f"{sim.n_events / run['wall_s']:,.0f} events/s, {sim.n_files / run['wall_s']:.1f} files/s, "
            f"peak job memory {run['peak_rss_mb']:.0f} MB, peak of any process (Snakemake included) "
            f"{run['peak_process_mb']:.0f} MB"
        )
        print(run["per_rule"].to_string(index=False, float_format=lambda v: f"{v:.2f}"))
        rows.append(
            {
                "scale": scale,
                "patients": arms[0] * 2 if len(arms) == 1 else sum(arms),
                "files": sim.n_files,
                "events": sim.n_events,
                "wall_s": run["wall_s"],
                "events_per_s": sim.n_events / run["wall_s"],
                "s_per_million_events": run["wall_s"] / (sim.n_events / 1e6),
                "peak_job_mb": run["peak_rss_mb"],
                "peak_process_mb": run["peak_process_mb"],
            }
        )
        if not args.keep:
            shutil.rmtree(trial, ignore_errors=True)
    table = pd.DataFrame(rows)
    print("\nscaling:")
    print(table.to_string(index=False, float_format=lambda v: f"{v:,.2f}"))

    if not getattr(args, "skip_adaptive", False):
        side = adaptive_side_by_side(workdir, root=root)
        print(
            f"\nstatic vs adaptive gating on one {side['events']:,}-event drifting blood file "
            f"({side['boundaries']} adaptive boundaries of the demo, acquisition QC included):"
        )
        print(
            f"  static (read + gate): {side['static_s']:.3f} s   adaptive (read + acquisition QC "
            f"+ adaptive gates): {side['adaptive_s']:.3f} s   ratio {side['ratio']:.2f}  "
            f"(acquisition QC alone {side['acquisition_s']:.3f} s; {side['fallbacks']} fallbacks)"
        )
        if not args.keep:
            shutil.rmtree(workdir / "adaptive_file", ignore_errors=True)

    if not args.skip_flowkit:
        result = _flowkit_side_by_side(workdir, root=root, events=args.flowkit_events)
        print(f"\nside by side on one {args.flowkit_events:,}-event file, default blood strategy:")
        for key, value in result.items():
            print(f"  {key}: {value:.4f}" if isinstance(value, float) else f"  {key}: {value}")
        if not args.keep:
            shutil.rmtree(workdir / "flowkit_file", ignore_errors=True)
    return 0
