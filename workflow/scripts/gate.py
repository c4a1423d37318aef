import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))
from _log import rule_log

from cytotrial.rules import CHECKSUM_CACHE, read_batch, run_gate_batch

with rule_log(snakemake) as log:
    result = run_gate_batch(
        read_batch(snakemake.input.batch).to_dict("records"),
        strategies=snakemake.params.strategies,
        panels=snakemake.params.panels,
        compensation=snakemake.params.compensation,
        unreadable_compensation=snakemake.params.unreadable_compensation,
        populations=snakemake.params.populations,
        mfi=snakemake.params.mfi,
        acquisition=snakemake.params.acquisition,
        counts_out=snakemake.output.counts,
        qc_out=snakemake.output.qc,
        mfi_out=snakemake.output.mfi,
        gates_out=snakemake.output.gates,
        acquisition_out=snakemake.output.acquisition,
        manifest_out=snakemake.output.manifest,
        checksum_cache=CHECKSUM_CACHE,
    )
    qc = result.qc
    excluded = qc[qc["status"] != "ok"]
    log.write(f"gated {len(qc) - len(excluded)} of {len(qc)} samples\n")
    for row in excluded.itertuples():
        log.write(f"excluded {row.sample_id}: {row.message}\n")
    for row in qc[qc["status"] == "ok"].itertuples():
        if getattr(row, "flags", ""):
            log.write(f"flagged {row.sample_id}: {row.flags}\n")
