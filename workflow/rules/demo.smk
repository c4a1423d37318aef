# The embedded demo: a simulated two-arm trial with ground truth, written when it is missing.
import json
import shlex

if DEMO:

    def demo_drift_option(drift):
        """`cytotrial simulate`'s option for the config's demo.drift: clean, drift or sizes."""
        if drift is True:
            return "--drift"
        if drift is False:
            return "--clean"
        return "--drift " + shlex.quote(json.dumps(drift, sort_keys=True))

    checkpoint simulate_demo:
        """Simulate the embedded demo trial (FCS files, sample sheet, patients table and ground
        truth) when it is missing.
        """
        output:
            sheet=config["samples"],
            patients=DEMO_DIR / "patients.tsv",
            truth=DEMO_DIR / "truth" / "populations.tsv",
            effects=DEMO_DIR / "truth" / "effects.tsv",
        log:
            "logs/demo/simulate.log",
        conda:
            "../envs/cytotrial.yaml"
        threads: 2
        params:
            out=lambda w, output: Path(output.sheet).parent,
            patients_per_arm=config["demo"]["patients_per_arm"],
            events=config["demo"]["events"],
            tumor_events=config["demo"]["tumor_events"],
            seed=config["demo"]["seed"],
            drift=demo_drift_option(config["demo"]["drift"]),
        shell:
            "cytotrial simulate --out {params.out} --patients-per-arm {params.patients_per_arm}"
            " --events {params.events} --tumor-events {params.tumor_events}"
            " --seed {params.seed} {params.drift} --jobs {threads} > {log} 2>&1"
