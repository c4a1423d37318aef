# Figures: trajectories, per-patient lines, effect heatmap, gating QC, event-level cross-check.
FIGURES = ["trajectories", "patient_lines", "effect_heatmap"]


localrules:
    figures,
    gating_qc,


rule figures:
    input:
        h5ad="results/counts/populations.h5ad",
    output:
        **{
            f"{name}_{ext}": (
                report(
                    f"results/figures/{name}.{ext}",
                    caption=f"../report/{name}.rst",
                    category="Figures",
                )
                if ext == "png"
                else f"results/figures/{name}.{ext}"
            )
            for name in FIGURES
            for ext in ("png", "pdf")
        },
    log:
        "logs/figures.log",
    conda:
        "../envs/cytotrial.yaml"
    params:
        analysis=config["analysis"],
        arms=config["arms"],
    script:
        "../scripts/figures.py"


rule gating_qc:
    input:
        h5ad="results/counts/populations.h5ad",
        strategies=[spec["strategy"] for spec in config["strategies"].values()],
    output:
        png=report(
            "results/figures/gating_qc.png",
            caption="../report/gating_qc.rst",
            category="Quality control",
        ),
        pdf="results/figures/gating_qc.pdf",
    log:
        "logs/gating_qc.log",
    conda:
        "../envs/cytotrial.yaml"
    params:
        strategies=config["strategies"],
        panels=config["panels"],
        compensation=config["gating"]["compensation"],
        per_batch=config["figures"]["gating_qc_per_batch"],
    script:
        "../scripts/gating_qc.py"


rule events:
    input:
        h5ad="results/counts/populations.h5ad",
        strategies=[spec["strategy"] for spec in config["strategies"].values()],
    output:
        h5ad="results/events/events.h5ad",
        table=report(
            "results/qc/cluster_vs_gate.tsv",
            caption="../report/cluster_vs_gate.rst",
            category="Quality control",
        ),
        umap_population_png=report(
            "results/figures/umap_population.png",
            caption="../report/umap_population.rst",
            category="Quality control",
        ),
        umap_population_pdf="results/figures/umap_population.pdf",
        umap_arm_png=report(
            "results/figures/umap_arm.png",
            caption="../report/umap_arm.rst",
            category="Quality control",
        ),
        umap_arm_pdf="results/figures/umap_arm.pdf",
    log:
        "logs/events.log",
    benchmark:
        "benchmarks/events.tsv"
    conda:
        "../envs/cytotrial.yaml"
    params:
        strategies=config["strategies"],
        panels=config["panels"],
        compensation=config["gating"]["compensation"],
        events=config["events"],
        arms=config["arms"],
    script:
        "../scripts/events.py"
