# Shared set-up: config and sample sheet validation, batching of samples into gating jobs.
import sys
from pathlib import Path

from snakemake.utils import validate

from cytotrial.config import config_problems
from cytotrial.errors import CytotrialError
from cytotrial.rules import assign_batches
from cytotrial.io import read_sample_sheet, schema_path


def _fail(message):
    """Stop with a one-line message per problem (no traceback for a user's mistake)."""
    sys.stderr.write(
        "".join(f"cytotrial: {line}\n" for line in str(message).splitlines())
    )
    sys.exit(1)


_problems = config_problems(config)
if _problems:
    _fail("\n".join(_problems))
validate(config, schema=str(schema_path("config")), set_default=True)

DEMO_SHEET = Path("resources/demo/samples.tsv")
DEMO = Path(config["samples"]) == DEMO_SHEET
PATIENTS = config.get("patients") or ""

_cache = {}


def samples():
    """The checked sample sheet (after the demo is simulated, in demo mode)."""
    if "samples" not in _cache:
        if DEMO:
            checkpoints.simulate_demo.get()
        try:
            _cache["samples"] = read_sample_sheet(
                config["samples"],
                arms=list(config["arms"]),
                panels=list(config["strategies"]),
            )
        except CytotrialError as error:
            _fail(error)
    return _cache["samples"]


def batches():
    """Gating batch of every sample (stable under edits of other rows)."""
    if "batches" not in _cache:
        table = samples()
        _cache["batches"] = assign_batches(
            list(table.index), batch_size=config["gating"]["batch_size"]
        )
    return _cache["batches"]


def batch_ids():
    return sorted(set(batches().values()))


def batch_rows(wildcards):
    """The sample_id, panel and fcs of the samples of one batch (a rule parameter)."""
    table = samples()
    members = [sid for sid, b in batches().items() if b == int(wildcards.batch)]
    return table.loc[sorted(members), ["sample_id", "panel", "fcs"]].to_dict("records")


def batch_fcs(wildcards):
    return [row["fcs"] for row in batch_rows(wildcards)]


def batch_strategies(wildcards):
    """Strategy config of the panels present in one batch (so other panels' edits leave it alone)."""
    panels = sorted({row["panel"] for row in batch_rows(wildcards)})
    return {panel: config["strategies"][panel] for panel in panels}


def batch_strategy_files(wildcards):
    return [spec["strategy"] for spec in batch_strategies(wildcards).values()]


def gated_batches(kind):
    return expand(
        "results/gating/batch_{batch}.{kind}.tsv", batch=batch_ids(), kind=kind
    )


def compensation_files():
    value = config["gating"]["compensation"]
    return [] if value.lower() == "fcs" else [value]


# Check a user's own sheet at once, before any work (the demo sheet is checked once simulated).
if not DEMO:
    samples()


def final_outputs():
    """Everything `snakemake` builds by default."""
    outputs = [
        "results/counts/populations.h5ad",
        "results/counts/populations.tsv",
        "results/qc/samples.tsv",
        "results/qc/cluster_vs_gate.tsv",
        "results/figures/gating_qc.png",
        "results/figures/umap_population.png",
        "results/figures/umap_arm.png",
    ]
    outputs += [f"results/stats/{name}.tsv" for name in STAT_TABLES]
    outputs += [
        f"results/figures/{name}.{ext}" for name in FIGURES for ext in ("png", "pdf")
    ]
    return outputs
