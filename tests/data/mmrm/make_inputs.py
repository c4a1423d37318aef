"""Write the MMRM inputs of tests/test_mmrm.py (run once; the TSVs are committed).

    python tests/data/mmrm/make_inputs.py                      # the planted data sets
    python tests/data/mmrm/make_inputs.py results/stats/log2fc.tsv   # and the demo's (demo_*)

The demo's data sets are features of the demo trial's change table (``results/stats/log2fc.tsv``
of a demo run): its real pattern of missing samples (dropout at progression, missed biopsies),
a ratio, an MFI and a compartment with a single on-treatment visit.

Each input is one row per patient and post-baseline visit: ``patient_id, arm, visit,
visit_index, baseline, change``; ``NIVO`` is the reference arm. R's fits of them
(tests/r/mmrm_reference.R) are ``<name>_r.tsv`` beside them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).parent
VISITS = ["C1D8", "C2D1", "C3D1", "C5D1"]
SD = np.array([0.9, 0.6, 0.5, 0.45])
# not Toeplitz: the on-treatment visit correlates less with the later ones than they do together
CORR = np.array(
    [
        [1.0, 0.35, 0.25, 0.2],
        [0.35, 1.0, 0.7, 0.55],
        [0.25, 0.7, 1.0, 0.75],
        [0.2, 0.55, 0.75, 1.0],
    ]
)
MEANS = {
    "NIVO": [-0.1, 0.1, 0.0, 0.1],
    "BEMPEG+NIVO": [0.9, 0.5, 0.3, 0.2],
    "BEMPEG": [0.5, 0.3, 0.2, 0.0],
}
SLOPE = np.array([-0.35, -0.2, -0.1, -0.1])


def planted(
    seed: int,
    arms: dict[str, int],
    n_visits: int,
    *,
    dropout: float = 0.0,
    intermittent: float = 0.0,
) -> pd.DataFrame:
    """One planted trial: correlated changes, baseline slopes, dropout and missed samples."""
    rng = np.random.default_rng(seed)
    cov = (CORR * np.outer(SD, SD))[:n_visits, :n_visits]
    rows = []
    k = 0
    for arm, n in arms.items():
        for _ in range(n):
            k += 1
            baseline = rng.normal(5.0, 1.0)
            change = (
                np.array(MEANS[arm][:n_visits])
                + SLOPE[:n_visits] * (baseline - 5.0)
                + rng.multivariate_normal(np.zeros(n_visits), cov)
            )
            for i in range(n_visits):
                if i > 0 and rng.random() < dropout:
                    break
                if n_visits > 1 and rng.random() < intermittent:
                    continue
                rows.append(
                    dict(
                        patient_id=f"P{k:03d}",
                        arm=arm,
                        visit=VISITS[i],
                        visit_index=i + 1,
                        baseline=round(baseline, 6),
                        change=round(float(change[i]), 6),
                    )
                )
    return pd.DataFrame(rows)


DATASETS = {
    "balanced_12": dict(seed=11, arms={"NIVO": 12, "BEMPEG+NIVO": 12}, n_visits=3),
    "missing_12": dict(
        seed=12, arms={"NIVO": 12, "BEMPEG+NIVO": 12}, n_visits=4, dropout=0.12, intermittent=0.1
    ),
    "unbalanced": dict(
        seed=13, arms={"NIVO": 8, "BEMPEG+NIVO": 16}, n_visits=3, dropout=0.1, intermittent=0.05
    ),
    "balanced_24": dict(seed=14, arms={"NIVO": 24, "BEMPEG+NIVO": 24}, n_visits=4),
    "missing_24": dict(
        seed=15, arms={"NIVO": 24, "BEMPEG+NIVO": 24}, n_visits=4, dropout=0.1, intermittent=0.08
    ),
    "three_arms": dict(
        seed=16,
        arms={"NIVO": 10, "BEMPEG": 10, "BEMPEG+NIVO": 10},
        n_visits=3,
        dropout=0.1,
        intermittent=0.05,
    ),
    "one_visit": dict(seed=17, arms={"NIVO": 12, "BEMPEG+NIVO": 12}, n_visits=1),
}


#: The demo's data sets: name -> (population, compartment) of its change table.
DEMO = {
    "demo_cd8_blood": ("cd8", "blood"),
    "demo_treg_blood": ("treg", "blood"),
    "demo_cd8_treg_blood": ("cd8_treg", "blood"),
    "demo_cd8_ki67_mfi_blood": ("cd8:Ki67", "blood"),
    "demo_nk_tumor": ("nk", "tumor"),
}


def demo(log2fc: pd.DataFrame, population: str, compartment: str) -> pd.DataFrame:
    """One feature of the demo's change table, as the MMRM reads it (post-baseline rows)."""
    rows = log2fc[(log2fc["population"] == population) & (log2fc["compartment"] == compartment)]
    rows = rows[rows["sample_id"] != rows["baseline_sample_id"]]
    rows = rows.dropna(subset=["baseline_log2_value", "log2fc"])
    order = rows[["cycle", "day", "visit"]].drop_duplicates().sort_values(["cycle", "day"])
    index = {visit: i + 1 for i, visit in enumerate(order["visit"])}
    table = pd.DataFrame(
        {
            "patient_id": rows["patient_id"],
            "arm": rows["arm"],
            "visit": rows["visit"],
            "visit_index": rows["visit"].map(index),
            "baseline": rows["baseline_log2_value"].round(6),
            "change": rows["log2fc"].round(6),
        }
    )
    return table.sort_values(["patient_id", "visit_index"], ignore_index=True)


def main(argv: list[str]) -> None:
    """Write ``<name>.tsv`` for every planted data set (and the demo's, given its log2fc.tsv)."""
    for name, spec in DATASETS.items():
        spec = dict(spec)
        table = planted(spec.pop("seed"), spec.pop("arms"), spec.pop("n_visits"), **spec)
        table.to_csv(HERE / f"{name}.tsv", sep="\t", index=False)
    if argv:
        log2fc = pd.read_csv(argv[0], sep="\t", keep_default_na=False, na_values=["NA", ""])
        for name, (population, compartment) in DEMO.items():
            table = demo(log2fc, population, compartment)
            table.to_csv(HERE / f"{name}.tsv", sep="\t", index=False)


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
