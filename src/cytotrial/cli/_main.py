"""The ``cytotrial`` command: simulate a trial, inspect FCS files, gate files, benchmark, config docs.

Every user mistake ends in a one-line ``cytotrial: ...`` message and a non-zero exit, never a
traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .. import __version__
from ..errors import CytotrialError

if TYPE_CHECKING:
    import pandas as pd

    from ..gating import PanelGating

__all__ = ["main"]

_FCS_SUFFIXES = {".fcs", ".lmd"}


def _expand(paths: list[str]) -> list[Path]:
    """Files as given; folders become the FCS files inside them (sorted)."""
    files: list[Path] = []
    for value in paths:
        path = Path(value)
        if path.is_dir():
            files += sorted(
                p for p in path.rglob("*") if p.suffix.lower() in _FCS_SUFFIXES and p.is_file()
            )
        else:
            files.append(path)
    return files


def _cmd_simulate(args: argparse.Namespace) -> int:
    from ..sim import simulate_trial

    per_arm = args.patients_per_arm
    summary = simulate_trial(
        args.out,
        patients_per_arm=per_arm[0] if len(per_arm) == 1 else tuple(per_arm),
        events=args.events,
        tumor_events=args.tumor_events,
        seed=args.seed,
        jobs=args.jobs,
        drift=_drift_sizes(args.drift),
    )
    seconds = max(float(summary.seconds), 1e-9)
    print(
        f"wrote {summary.n_files} FCS files ({summary.n_events:,} events) to {args.out} in {seconds:.1f} s: "
        f"{summary.n_files / seconds:.1f} files/s, {summary.n_events / seconds:,.0f} events/s"
    )
    return 0


def _drift_sizes(value: bool | str) -> bool | dict:
    """``--drift``/``--clean`` as ``simulate_trial`` takes it: a bool, or the sizes' mapping."""
    if isinstance(value, bool):
        return value
    import yaml

    try:
        sizes = yaml.safe_load(value)
    except yaml.YAMLError:
        sizes = None
    if not isinstance(sizes, dict):
        raise CytotrialError(
            f"simulate: --drift takes a mapping of sizes, e.g. '{{scatter_gain: 0.2}}', not {value!r}"
        )
    return sizes


def _cmd_inspect(args: argparse.Namespace) -> int:
    import pandas as pd

    from ..io import inspect_fcs

    files = _expand(args.paths)
    if not files:
        raise CytotrialError("inspect: no FCS files found in " + ", ".join(args.paths))
    rows = [inspect_fcs(path) for path in files]
    table = pd.DataFrame(
        rows, columns=["file", "events", "channels", "markers", "spillover", "status", "message"]
    )
    table.to_csv(sys.stdout, sep="\t", index=False, lineterminator="\n")
    return 1 if (table["status"] == "error").any() else 0


def _gate_config(path: str) -> dict:
    """A workflow config read and checked as the workflow checks it (defaults filled in)."""
    import yaml

    from ..config import check_config

    try:
        with open(path, encoding="utf-8") as handle:
            raw = yaml.safe_load(handle)
    except OSError:
        raise CytotrialError(f"gate: config file {path} not found") from None
    except yaml.YAMLError as error:
        raise CytotrialError(f"{path}: not valid YAML ({' '.join(str(error).split())})") from None
    if not isinstance(raw, dict):
        raise CytotrialError(f"{path}: a config must be a mapping of keys")
    return check_config(raw)


def _same_file(a: str | Path, b: str | Path) -> bool:
    return Path(a).resolve() == Path(b).resolve()


def _gate_panel(config: dict, args: argparse.Namespace) -> str:
    """The config panel to gate with: ``--panel``, the only panel, or the one of ``--strategy``."""
    strategies = config["strategies"]
    if args.panel is not None:
        if args.panel not in strategies:
            raise CytotrialError(
                f"gate: --panel {args.panel} is not a panel of the config ({', '.join(strategies)})"
            )
        panel = args.panel
    elif len(strategies) == 1:
        panel = next(iter(strategies))
    else:
        same = [
            p
            for p, s in strategies.items()
            if args.strategy and _same_file(s["strategy"], args.strategy)
        ]
        if len(same) != 1:
            raise CytotrialError(
                f"gate: the config has panels {', '.join(strategies)}; choose one with --panel"
            )
        panel = same[0]
    if args.strategy and not _same_file(strategies[panel]["strategy"], args.strategy):
        raise CytotrialError(
            f"gate: --strategy {args.strategy} is not the strategy of panel {panel} in the config "
            f"({strategies[panel]['strategy']}); leave --strategy out or choose the panel with --panel"
        )
    return panel


def _gate_setup(
    args: argparse.Namespace,
) -> tuple[PanelGating, dict | None, pd.DataFrame | None, int, dict]:
    """The panel gating, channel names, compensation, MFI minimum and how files are read.

    How files are read (``unreadable_compensation``, ``acquisition``) is the config's, as in the
    workflow; without ``--config`` the defaults: a file whose own spillover cannot be used is
    excluded, and acquisition QC runs with its default settings.
    """
    from ..config import defaults, population_model
    from ..gating import compensation_matrix, gate_population_model, load_panel_gating, panel_gating
    from ..io import load_strategy
    from ..preflight import check_before_run

    if args.config is None:
        if args.panel is not None:
            raise CytotrialError("gate: --panel chooses a panel of --config; give the config too")
        if args.strategy is None:
            raise CytotrialError("gate: give --strategy (or --config, whose strategy is used)")
        strategy = load_strategy(
            args.strategy, sample_group=args.sample_group, sample_id=args.sample_id
        )
        reading = {
            "unreadable_compensation": "exclude",
            "acquisition": defaults("qc")["acquisition"],
        }
        return panel_gating("", strategy, gate_population_model(strategy)), None, None, 0, reading
    if args.sample_group is not None or args.sample_id is not None:
        raise CytotrialError(
            "gate: with --config, the FlowJo sample group or sample is the config's "
            "(strategies.<panel>.sample_group / sample_id)"
        )
    config = _gate_config(args.config)
    panel = _gate_panel(config, args)
    check_before_run(config, inputs=False, panels=[panel])  # its strategy and matrix: every problem
    gating = load_panel_gating(
        panel,
        config["strategies"][panel],
        model=population_model(config),
        mfi_markers=config["mfi"]["markers"],
    )
    compensation = compensation_matrix(config["gating"]["compensation"])
    min_events = int(config["mfi"]["min_events"])
    reading = {
        "unreadable_compensation": config["gating"]["unreadable_compensation"],
        "acquisition": config["qc"]["acquisition"],
    }
    return gating, config["panels"], compensation, min_events, reading


def _write_table(table: pd.DataFrame, path: str | None) -> None:
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(path, sep="\t", index=False, lineterminator="\n")
    else:
        table.to_csv(sys.stdout, sep="\t", index=False, lineterminator="\n")


def _cmd_gate(args: argparse.Namespace) -> int:
    import pandas as pd

    from ..gating import gate_samples

    gating, panels, compensation, min_events, reading = _gate_setup(args)
    files = [str(path) for path in _expand(args.fcs)]
    ids = [f"{i:09d}" for i in range(len(files))]  # gate_samples gates in id order: file order
    samples = pd.DataFrame({"sample_id": ids, "panel": gating.panel, "fcs": files})
    result = gate_samples(
        samples,
        {gating.panel: gating},
        panels=panels,
        compensation=compensation,
        mfi_min_events=min_events,
        **reading,
    )
    for message in result.qc.loc[result.qc["status"] != "ok", "message"]:
        print(f"cytotrial: {message}", file=sys.stderr)
    names = dict(zip(ids, files))
    counts = result.counts.rename(columns={"sample_id": "file"})
    counts["file"] = counts["file"].map(names)
    _write_table(counts, args.out)
    if args.mfi_out:
        mfi = result.mfi.rename(columns={"sample_id": "file"})
        mfi["file"] = mfi["file"].map(names)
        _write_table(mfi, args.mfi_out)
    return 1 if (result.qc["status"] != "ok").any() else 0


def _cmd_config_docs(args: argparse.Namespace) -> int:
    from ..config import config_reference

    sys.stdout.write(config_reference())
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from ._bench import run_benchmark

    return run_benchmark(args)


def _cmd_bench_pipeline(args: argparse.Namespace) -> int:
    from ._bench_pipeline import run_bench_pipeline

    return run_bench_pipeline(args)


def _add_bench_pipeline(sub: argparse._SubParsersAction) -> None:
    bench = sub.add_parser(
        "bench-pipeline",
        help="the whole demo timed beside FlowKit gating its files, a one-gate edit, and the "
        "whole pipeline at phase 3 size with the peak memory of every process",
    )
    bench.add_argument("--cores", type=int, default=2)
    bench.add_argument("--workdir", default="results/bench", help="where the runs are written")
    bench.add_argument(
        "--skip-flowkit", action="store_true", help="leave out FlowKit gating the demo's files"
    )
    bench.add_argument(
        "--phase3",
        action="store_true",
        help="also simulate a 783-patient trial and run the whole pipeline on it (about 27 GB of "
        "disk at 100,000 events per file, deleted afterwards unless --keep)",
    )
    bench.add_argument(
        "--phase3-events", type=int, default=100_000, help="events per file of the phase 3 trial"
    )
    bench.add_argument("--keep", action="store_true", help="keep the runs' folders")
    bench.add_argument(
        "--workflow",
        default=None,
        help="folder of the workflow to run (default: the working directory, if it has a Snakefile)",
    )
    bench.set_defaults(func=_cmd_bench_pipeline)


def _cmd_bench_stats(args: argparse.Namespace) -> int:
    from ._bench_stats import run_bench_stats

    return run_bench_stats(args)


def _add_bench_stats(sub: argparse._SubParsersAction) -> None:
    bench = sub.add_parser(
        "bench-stats",
        help="calibration of the statistics tables on simulated trials: type I error, CI "
        "coverage, family-wise error, power",
    )
    bench.add_argument("--trials", type=int, default=200, help="trials per scenario and size")
    bench.add_argument(
        "--per-arm", type=int, nargs="+", default=[12, 24], metavar="N", help="patients per arm"
    )
    bench.add_argument("--seed", type=int, default=0, help="random seed")
    bench.add_argument(
        "--effects",
        type=float,
        nargs="+",
        default=[1.5, 2.0],
        metavar="X",
        help="fold changes of the planted arm effect (1.0 is skipped)",
    )
    bench.add_argument(
        "--scenarios",
        nargs="+",
        choices=["null", "variable", "effect", "dropout"],
        default=["null", "variable", "effect", "dropout"],
        help="scenarios to run (default all)",
    )
    bench.add_argument(
        "--dropout-effect",
        type=float,
        default=2.0,
        metavar="X",
        help="fold change of the planted arm effect in the dropout scenario",
    )
    bench.add_argument("--jobs", type=int, default=1, help="processes running trials at once")
    bench.set_defaults(func=_cmd_bench_stats)


def _add_simulate(sub: argparse._SubParsersAction, demo: dict) -> None:
    sim = sub.add_parser(
        "simulate", help="write a simulated trial (FCS files, sample sheet, truth)"
    )
    sim.add_argument("--out", required=True, help="output folder")
    sim.add_argument(
        "--patients-per-arm",
        type=int,
        nargs="+",
        default=[demo["patients_per_arm"]],
        metavar="N",
        help="patients per arm (one number, or one per arm: 391 392)",
    )
    sim.add_argument("--events", type=int, default=demo["events"], help="events per blood file")
    sim.add_argument(
        "--tumor-events", type=int, default=demo["tumor_events"], help="events per tumor file"
    )
    sim.add_argument("--seed", type=int, default=demo["seed"], help="random seed")
    sim.add_argument("--jobs", type=int, default=1, help="worker processes")
    mode = sim.add_mutually_exclusive_group()
    mode.add_argument(
        "--drift",
        nargs="?",
        const=True,
        default=False,
        metavar="SIZES",
        help="the drift of a multi-site trial (instruments, reagent lots, continuous markers, "
        "acquisition anomalies); optional sizes as YAML, e.g. '{scatter_gain: 0.2}' (keys as "
        "the config's demo.drift)",
    )
    mode.add_argument(
        "--clean",
        dest="drift",
        action="store_const",
        const=False,
        help="the clean mode: separated populations, a few percent of batch shift (default)",
    )
    sim.set_defaults(func=_cmd_simulate)


def _add_bench(sub: argparse._SubParsersAction, demo: dict) -> None:
    bench = sub.add_parser(
        "bench", help="simulate a trial, run the workflow on it, print speed and memory"
    )
    bench.add_argument(
        "--patients-per-arm", type=int, nargs="+", default=[demo["patients_per_arm"]], metavar="N"
    )
    bench.add_argument("--events", type=int, default=demo["events"], help="events per blood file")
    bench.add_argument(
        "--tumor-events", type=int, default=None, help="events per tumor file (default: --events)"
    )
    bench.add_argument(
        "--scales",
        type=float,
        nargs="*",
        default=None,
        help="also run at these multiples of the size (e.g. 1 4 16)",
    )
    bench.add_argument("--cores", type=int, default=2)
    bench.add_argument("--batch-size", type=int, default=None, help="files per gating job")
    bench.add_argument(
        "--workdir", default="results/bench", help="where the benchmark trials are written"
    )
    bench.add_argument(
        "--flowkit-events",
        type=int,
        default=1_000_000,
        help="events of the file for the FlowKit side-by-side",
    )
    bench.add_argument(
        "--skip-flowkit", action="store_true", help="leave out the FlowKit side-by-side"
    )
    bench.add_argument(
        "--skip-adaptive",
        action="store_true",
        help="leave out static beside adaptive gating on one large file",
    )
    bench.add_argument("--keep", action="store_true", help="keep the simulated trials")
    bench.add_argument(
        "--workflow",
        default=None,
        help="folder of the workflow to run (default: the working directory, if it has a Snakefile)",
    )
    bench.set_defaults(func=_cmd_bench)


def _parser() -> argparse.ArgumentParser:
    from ..config import defaults

    parser = argparse.ArgumentParser(
        prog="cytotrial",
        description="Flow cytometry of immunotherapy trials: FCS files to gated immune populations.",
    )
    parser.add_argument("--version", action="version", version=f"cytotrial {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = defaults("demo")

    _add_simulate(sub, demo)

    ins = sub.add_parser(
        "inspect", help="one TSV row per FCS file: events, channels, spillover, status"
    )
    ins.add_argument("paths", nargs="+", help="FCS files or folders")
    ins.set_defaults(func=_cmd_inspect)

    gate = sub.add_parser(
        "gate",
        help="gate FCS files with a GatingML 2.0 or FlowJo strategy, or exactly as the workflow does",
    )
    gate.add_argument("fcs", nargs="+", help="FCS files or folders")
    gate.add_argument(
        "--strategy",
        default=None,
        help="GatingML 2.0 (.xml) or FlowJo workspace (.wsp); every gate is reported under its "
        "name (with --config: optional, picks the panel whose strategy it is)",
    )
    gate.add_argument("--sample-group", default=None, help="FlowJo sample group whose gates to use")
    gate.add_argument("--sample-id", default=None, help="FlowJo sample whose gates to use")
    gate.add_argument(
        "--config",
        default=None,
        help="workflow config: gate as the workflow does (its compensation, panels: channel names, "
        "populations, Boolean populations and parents)",
    )
    gate.add_argument(
        "--panel", default=None, help="panel of --config to gate with (default: the only one)"
    )
    gate.add_argument("--out", default=None, help="TSV to write (default: standard output)")
    gate.add_argument(
        "--mfi-out",
        default=None,
        help="TSV of the config's mfi.markers intensities (with --config)",
    )
    gate.set_defaults(func=_cmd_gate)

    docs = sub.add_parser(
        "config-docs",
        help="print config/README.md: every config key and sheet column, from the schemas",
    )
    docs.set_defaults(func=_cmd_config_docs)

    _add_bench(sub, demo)
    _add_bench_stats(sub)
    _add_bench_pipeline(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``cytotrial`` console script."""
    args = _parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CytotrialError as error:
        for line in str(error).splitlines():
            print(f"cytotrial: {line}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. piped into head
        return 0
