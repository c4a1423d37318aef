# Shared set-up: the config checked once, the sample sheet, and the batching of samples into gating
# jobs (each batch's membership is a file, written only when it changes).
import sys
from pathlib import Path

from cytotrial.config import check_config
from cytotrial.errors import CytotrialError
from cytotrial.preflight import check_before_run, check_inputs
from cytotrial.io import read_sample_sheet
from cytotrial.rules import (
    fcs_for_workdir,
    form_batches,
    sheet_fcs,
    stale_lock_note,
)


def _fail(message):
    """Stop with a one-line message per problem (no traceback for a user's mistake)."""
    sys.stderr.write(
        "".join(f"cytotrial: {line}\n" for line in str(message).splitlines())
    )
    sys.exit(1)


# The one check of the whole config, and of everything it names that is knowable before any job
# (strategies, gate names, compensation matrix, a user's sample sheet and patients table): every
# problem at once, then every default filled in, so rules and library functions take resolved
# values. Jobs on a cluster re-read this file; they fill the defaults only. What the strategies'
# checks found is kept between runs while nothing they read changes (loading the strategies is
# most of the seconds before the first job).
PREFLIGHT_CACHE = ".snakemake/cytotrial/preflight.json"
# What the set-up reads once: the checked sample sheet (kept by the check), the FCS files, batches.
_cache = {}
try:
    if workflow.is_main_process:
        config.update(
            check_before_run(
                config, inputs="demo" not in config, cache=PREFLIGHT_CACHE, keep=_cache
            )
        )
    else:
        config.update(check_config(config))
except CytotrialError as error:
    _fail(error)

# The demo's config (the one with a `demo:` section) simulates its trial where `samples` points.
DEMO = "demo" in config
DEMO_DIR = Path(config["samples"]).parent
PATIENTS = config["patients"]
BATCH_FILE = "results/gating/batches/batch_{batch}.tsv"


def samples():
    """The checked sample sheet (after the demo is simulated, in demo mode)."""
    if "samples" not in _cache:
        if DEMO:
            checkpoints.simulate_demo.get()
        try:
            if DEMO and workflow.is_main_process:
                # the demo's sheet and patients, once simulated
                check_inputs(config, keep=_cache)
            if "samples" not in _cache:
                _cache["samples"] = read_sample_sheet(
                    config["samples"],
                    arms=list(config["arms"]),
                    panels=list(config["strategies"]),
                )
        except CytotrialError as error:
            _fail(error)
    return _cache["samples"]


def fcs_inputs():
    """Sample id -> its FCS file relative to the working directory (with `..` when outside it)."""
    if "fcs" not in _cache:
        samples()
        _cache["fcs"] = {
            sid: fcs_for_workdir(value, config["samples"])
            for sid, value in sheet_fcs(config["samples"]).items()
        }
    return _cache["fcs"]


def sample_fcs_files(wildcards=None):
    """The FCS files of every sample, relative to the working directory (an input function)."""
    return list(fcs_inputs().values())


def batches():
    """Batch name -> its samples (sample_id, panel, fcs, sha256); each batch's membership file is
    written here, and only when its content changes, so an unchanged batch keeps its file's
    timestamp and a file whose content changed re-gates its batch, whatever its timestamp. A file
    its batch has not gated yet is hashed by the gating job, not here (an empty sha256).
    """
    if "batches" not in _cache:
        table = samples()[["sample_id", "panel"]].copy()
        table["fcs"] = table["sample_id"].map(fcs_inputs())
        try:
            _cache["batches"] = form_batches(
                table,
                batch_size=config["gating"]["batch_size"],
                pattern=BATCH_FILE,
                gated="results/gating/batch_{batch}.qc.tsv",
            )
        except CytotrialError as error:
            _fail(error)
    return _cache["batches"]


def batch_file(wildcards):
    """The membership file of one batch (written when the batches are formed)."""
    batches()
    return BATCH_FILE.format(batch=wildcards.batch)


def batch_fcs(wildcards):
    """The FCS files of one batch, relative to the working directory."""
    return list(batches()[wildcards.batch]["fcs"])


def batch_strategies(wildcards):
    """Strategy config of the batch's panel (so other panels' edits leave it alone)."""
    panels = sorted(set(batches()[wildcards.batch]["panel"]))
    return {panel: config["strategies"][panel] for panel in panels}


def batch_strategy_files(wildcards):
    """The strategy file of the batch's panel."""
    return [spec["strategy"] for spec in batch_strategies(wildcards).values()]


def gated_batches(kind):
    """A table of every batch: ``counts``, ``mfi``, ``qc``, ``gates``, ``acquisition``, ``manifest``."""
    return expand(
        "results/gating/batch_{batch}.{kind}.tsv", batch=sorted(batches()), kind=kind
    )


def compensation_files():
    """The compensation matrix file, when the config names one."""
    value = config["gating"]["compensation"]
    return [] if value.lower() == "fcs" else [value]


# Check a user's own sheet and form its batches at once, before any work (the demo's sheet once it
# is simulated).
if not DEMO:
    batches()

# A run killed outright leaves its lock, and Snakemake then refuses to start: say so in one line
# with what to do (not while unlocking, nor in the jobs of a cluster run).
if workflow.is_main_process and "--unlock" not in sys.argv:
    if (note := stale_lock_note()) is not None:
        sys.stderr.write(f"cytotrial: {note}\n")


def final_outputs():
    """Everything `snakemake` builds by default."""
    outputs = [
        "results/counts/populations.h5ad",
        "results/counts/populations.tsv",
        "results/counts/ratios.tsv",
        "results/counts/mfi.tsv",
        "results/qc/samples.tsv",
        "results/qc/cluster_vs_gate.tsv",
    ]
    outputs += [f"results/figures/{name}.png" for name in EVENT_FIGURES]
    outputs += [f"results/stats/{name}.tsv" for name in STAT_TABLES]
    outputs += [
        f"results/figures/{name}.{ext}"
        for name in FIGURES + KM_FIGURES + PATIENT_FIGURES + QC_FIGURES
        for ext in ("png", "pdf")
    ]
    outputs += REPORT_PAGES
    outputs += REVIEW_OUTPUTS
    outputs += [
        f"results/gates/{panel}{end}"
        for panel in config["strategies"]
        for end in (".wsp", "")
    ]
    return outputs
