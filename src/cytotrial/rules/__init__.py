"""The bodies of the workflow's rules: one function per step, reading and writing files.

Each name is imported from its module when first used (the workflow's scripts import one function
each: a rule's job does not load what the other rules need, e.g. SciPy's statistics for the gate job).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
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
    from ._recovery import cancel_pending_timers, stale_lock_note
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
    from ._tables import (
        MANIFEST_COLUMNS,
        read_tsvs,
        write_error,
        write_manifest,
        write_tsv,
        writing,
    )

#: Public name -> the module that defines it.
_EXPORTS = {
    "BATCH_COLUMNS": "._batches",
    "CHECKSUM_CACHE": "._checksums",
    "MANIFEST_COLUMNS": "._tables",
    "REPORT_CATEGORIES": "._report",
    "REPORT_OVERVIEW": "._report",
    "REPORT_TABLES": "._report",
    "REVIEW_PAGES": "._review",
    "REVIEW_PAGE_COLUMNS": "._review",
    "REVIEW_PDF": "._review_report",
    "ROOT_BATCH": "._batches",
    "ReviewRun": "._review",
    "assign_batches": "._batches",
    "cancel_pending_timers": "._recovery",
    "fcs_for_workdir": "._paths",
    "fcs_relative_to_sheet": "._paths",
    "figure_page": "._report",
    "file_checksums": "._checksums",
    "form_batches": "._batches",
    "package_versions": "._aggregate",
    "page_fingerprint": "._review",
    "read_batch": "._batches",
    "read_samples_for_outputs": "._aggregate",
    "read_tsvs": "._tables",
    "report_entry": "._report",
    "resolve_sheet_fcs": "._paths",
    "review_report_entry": "._review_report",
    "review_selection": "._review",
    "run_aggregate": "._aggregate",
    "run_event_crosscheck": "._crosscheck",
    "run_gate_batch": "._gate",
    "run_gating_review": "._review_report",
    "run_qc_table": "._aggregate",
    "run_report_figures": "._report",
    "run_report_overview": "._report",
    "run_report_tables": "._report",
    "run_review_pages": "._review",
    "sheet_fcs": "._paths",
    "stale_lock_note": "._recovery",
    "verify_checksums": "._checksums",
    "write_batch": "._batches",
    "write_error": "._tables",
    "write_manifest": "._tables",
    "write_tsv": "._tables",
    "writing": "._tables",
}

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
    "cancel_pending_timers",
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


__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS, __all__)
