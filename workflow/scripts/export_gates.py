import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))
import pandas as pd
from _log import rule_log

from cytotrial.config import population_model
from cytotrial.gating import (
    compensation_matrix,
    export_panel_gates,
    load_panel_gating,
    read_gate_positions,
    read_removed_stretches,
)

with rule_log(snakemake) as log:
    p = snakemake.params
    qc = pd.read_csv(snakemake.input.qc, sep="\t", dtype={"sample_id": str}, keep_default_na=False)
    gated = set(qc.loc[qc["status"].isin(["ok", "flagged"]), "sample_id"])
    samples = {sid: fcs for sid, fcs in p.fcs.items() if sid in gated}
    model = population_model({"populations": p.populations, "strategies": {p.panel: p.spec}})
    gating = load_panel_gating(p.panel, p.spec, model=model, panels=p.panels)
    notes = export_panel_gates(
        gating,
        samples,
        read_gate_positions(snakemake.input.gates),
        workspace=snakemake.output.workspace,
        gatingml_dir=snakemake.output.gatingml,
        panels=p.panels,
        compensation=compensation_matrix(p.compensation),
        unreadable_compensation=p.unreadable_compensation,
        acquisition=p.acquisition,
        removed=read_removed_stretches(snakemake.input.removed),
        flags=dict(zip(qc["sample_id"], qc["qc_flags"])),
    )
    log.write(f"exported the gates of {len(samples)} samples of panel {p.panel}\n")
    for note in notes:
        log.write(f"{note}\n")
