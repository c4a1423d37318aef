"""The bodies of the workflow's rules: one function per step, reading and writing files."""

from ._aggregate import package_versions, read_samples_for_outputs, run_aggregate, run_qc_table
from ._batches import (
    BATCH_COLUMNS,
    ROOT_BATCH,
    assign_batches,
    form_batches,
    read_batch,
    write_batch,
)
from ._checksums import CHECKSUM_CACHE, file_checksums, verify_checksums
from ._crosscheck import run_event_crosscheck
from ._gate import run_gate_batch
from ._paths import fcs_for_workdir, fcs_relative_to_sheet, resolve_sheet_fcs, sheet_fcs
from ._recovery import stale_lock_note
from ._report import (
    REPORT_CATEGORIES,
    REPORT_OVERVIEW,
    REPORT_TABLES,
    figure_page,
    report_entry,
    run_report_figures,
    run_report_overview,
    run_report_tables,
)
from ._review import (
    REVIEW_PAGE_COLUMNS,
    REVIEW_PAGES,
    ReviewRun,
    page_fingerprint,
    review_selection,
    run_review_pages,
)
from ._review_report import REVIEW_PDF, review_report_entry, run_gating_review
from ._tables import MANIFEST_COLUMNS, read_tsvs, write_error, write_manifest, write_tsv, writing

__all__ = [
    "BATCH_COLUMNS",
    "CHECKSUM_CACHE",
    "MANIFEST_COLUMNS",
    "REPORT_CATEGORIES",
    "REPORT_OVERVIEW",
    "REPORT_TABLES",
    "REVIEW_PAGES",
    "REVIEW_PAGE_COLUMNS",
    "REVIEW_PDF",
    "ROOT_BATCH",
    "ReviewRun",
    "assign_batches",
    "fcs_for_workdir",
    "fcs_relative_to_sheet",
    "figure_page",
    "file_checksums",
    "form_batches",
    "package_versions",
    "page_fingerprint",
    "read_batch",
    "read_samples_for_outputs",
    "read_tsvs",
    "report_entry",
    "resolve_sheet_fcs",
    "review_report_entry",
    "review_selection",
    "run_aggregate",
    "run_event_crosscheck",
    "run_gate_batch",
    "run_gating_review",
    "run_qc_table",
    "run_report_figures",
    "run_report_overview",
    "run_report_tables",
    "run_review_pages",
    "sheet_fcs",
    "stale_lock_note",
    "verify_checksums",
    "write_batch",
    "write_error",
    "write_manifest",
    "write_tsv",
    "writing",
]
