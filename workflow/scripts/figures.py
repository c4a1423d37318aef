import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))
from _log import rule_log

from cytotrial.pl import write_figures

with rule_log(snakemake) as log:
    outputs = {
        name[: -len("_png")]: path
        for name, path in snakemake.output.items()
        if name.endswith("_png")
    }
    written = write_figures(
        dict(snakemake.input.items()),
        outputs=outputs,
        analysis=snakemake.params.analysis,
        arm_colors=snakemake.params.arms,
        labels=snakemake.params.labels,
        ratios=snakemake.params.ratios,
    )
    log.write(f"wrote {len(written)} files\n")
