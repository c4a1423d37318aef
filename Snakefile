# cytotrial: FCS files of an immunotherapy trial -> gated immune populations -> what treatment did.
from snakemake.utils import min_version

min_version("9.0")


# The demo's config applies only when no --configfile is given: a user's config is the whole
# config (Snakemake would otherwise merge the user's config over the demo's).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/demo.smk"
include: "workflow/rules/gate.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/stats.smk"
include: "workflow/rules/plots.smk"
include: "workflow/rules/review.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/export.smk"
include: "workflow/rules/run_end.smk"


rule all:
    """Everything: counts, QC, statistics and figures of the trial."""
    default_target: True
    input:
        final_outputs(),
