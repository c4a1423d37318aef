"""The ``cytotrial`` command: simulate a trial, inspect FCS files, gate files, benchmark, config docs.

Every user mistake ends in a one-line ``cytotrial: ...`` message and a non-zero exit, never a
traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import __version__
from ..errors import CytotrialError

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
    )
    seconds = max(float(summary.seconds), 1e-9)
    print(
        f"wrote {summary.n_files} FCS files ({summary.n_events:,} events) to {args.out} in {seconds:.1f} s: "
        f"{summary.n_files / seconds:.1f} files/s, {summary.n_events / seconds:,.0f} events/s"
    )
    return 0


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


def _cmd_gate(args: argparse.Namespace) -> int:
    import pandas as pd
    import yaml

    from ..gating import PanelGating, count_events, read_for_gating
    from ..io import load_strategy

    strategy = load_strategy(
        args.strategy, sample_group=args.sample_group, sample_id=args.sample_id
    )
    gating = PanelGating(panel="", strategy=strategy, populations={})
    panels = None
    if args.config:
        with open(args.config, encoding="utf-8") as handle:
            panels = (yaml.safe_load(handle) or {}).get("panels")
    frames, failed = [], 0
    for path in _expand(args.fcs):
        try:
            data, channel_map = read_for_gating(path, gating, panels=panels)
            table = count_events(data, strategy, channel_map=channel_map)
        except CytotrialError as error:
            failed += 1
            print(f"cytotrial: {' '.join(str(error).split())}", file=sys.stderr)
            continue
        table.insert(0, "file", str(path))
        frames.append(table.rename(columns={"gate_name": "population"}))
    columns = ["file", "gate_path", "population", "count", "parent_count"]
    out = pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        out.to_csv(args.out, sep="\t", index=False, lineterminator="\n")
    else:
        out.to_csv(sys.stdout, sep="\t", index=False, lineterminator="\n")
    return 1 if failed else 0


def _cmd_config_docs(args: argparse.Namespace) -> int:
    from ..config import config_reference

    sys.stdout.write(config_reference())
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from ._bench import run_benchmark

    return run_benchmark(args)


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

    gate = sub.add_parser("gate", help="gate FCS files with a GatingML 2.0 or FlowJo strategy")
    gate.add_argument("fcs", nargs="+", help="FCS files or folders")
    gate.add_argument(
        "--strategy", required=True, help="GatingML 2.0 (.xml) or FlowJo workspace (.wsp)"
    )
    gate.add_argument("--sample-group", default=None, help="FlowJo sample group whose gates to use")
    gate.add_argument("--sample-id", default=None, help="FlowJo sample whose gates to use")
    gate.add_argument(
        "--config", default=None, help="workflow config whose panels: harmonise channel names"
    )
    gate.add_argument("--out", default=None, help="TSV to write (default: standard output)")
    gate.set_defaults(func=_cmd_gate)

    docs = sub.add_parser(
        "config-docs",
        help="print config/README.md: every config key and sheet column, from the schemas",
    )
    docs.set_defaults(func=_cmd_config_docs)

    _add_bench(sub, demo)
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
