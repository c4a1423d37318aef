"""The ``gating_review`` rule: the review's pages assembled, a PDF per panel, the flagged ones apart.

The table of pages (``review_pages``, :func:`run_review_pages`; one or more) names each drawn
sample's cached page; here they become

* ``results/review/<panel>.pdf``: a page per drawn sample of the panel, in the sample sheet's
  order (a panel without any drawn sample gets one page saying so);
* ``results/review/flagged/<sample_id>.png``: the page of each drawn sample QC flagged;
* the report's page of the review (:func:`cytotrial.rules.figure_page` ``gating_review``): what was
  drawn and where, then the flagged samples' pages one below the other.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from ..errors import CytotrialError
from ._report import report_entry
from ._report_html import _FIGURE_CSS, _note, _page
from ._tables import writing

__all__ = ["REVIEW_PDF", "review_report_entry", "run_gating_review"]

#: The review's PDF of a panel.
REVIEW_PDF = "results/review/{panel}.pdf"


def review_report_entry(panel: str) -> dict:
    """Where a panel's review PDF sits in the report (:func:`report_entry`, named by the panel)."""
    return report_entry(REVIEW_PDF.format(panel=panel))


def _choice_text(choice: str | Sequence[str], per_batch: int) -> str:
    if isinstance(choice, str):
        what = {"all": "every sample", "flagged": "the samples QC flagged"}.get(choice, choice)
    else:
        what = f"{len(choice)} listed sample(s)"
    if per_batch:
        what += f" and {per_batch} per panel and acquisition batch"
    return what


def _pages_table(tables: Sequence[str | Path], order: Sequence[str]) -> pd.DataFrame:
    """The tables of pages as one, in the sample sheet's order."""
    frames = [pd.read_csv(t, sep="\t", dtype=str, keep_default_na=False) for t in tables]
    pages = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if pages.empty:
        return pd.DataFrame(columns=["sample_id", "panel", "status", "pdf", "png"])
    rank = {sid: i for i, sid in enumerate(order)}
    pages["_rank"] = pages["sample_id"].map(rank).fillna(len(rank))
    return pages.sort_values(["_rank", "sample_id"], kind="stable").drop(columns="_rank")


def _missing_page(path: str) -> CytotrialError:
    return CytotrialError(
        f"{path}: a cached review page is missing; draw the pages again with "
        "`snakemake --forcerun review_pages`"
    )


def _placeholder(panel: str, what: str, path: Path) -> None:
    """A one-page PDF saying that no sample of the panel was drawn."""
    from ..pl import ReviewHeader, message_page

    header = ReviewHeader(sample_id="(no sample)", panel=panel, batch="-", status="-")
    fig = message_page(header, f"No sample of panel {panel} is drawn: the review draws {what}.")
    fig.savefig(path, metadata={"CreationDate": None, "ModDate": None})


def _write_pdf(panel: str, pdfs: Sequence[str], what: str, path: str | Path) -> None:
    target = Path(path)
    with writing(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        if not pdfs:
            _placeholder(panel, what, target)
            return
        target.write_bytes(_merged(pdfs))


_PDF_ID = re.compile(rb"/ID\s*\[\s*<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>\s*\]")


def _merged(pdfs: Sequence[str]) -> bytes:
    """The pages of ``pdfs`` as one PDF, joined by PDFium; the same pages give the same bytes.

    PDFium copies each page with what it uses (a few hundred times faster than pypdf, which parses
    and rewrites every object: 674 pages at phase 3 size took some 17 s). It gives the document a
    random ``/ID``; the ID written is a digest of the content instead, of the same length, so no
    offset moves.
    """
    import pypdfium2

    for pdf in pdfs:
        if not Path(pdf).is_file():
            raise _missing_page(pdf)
    # the first page's document takes the others' pages (a new PDFium document would be dated)
    merged = pypdfium2.PdfDocument(str(pdfs[0]))
    sources = []
    buffer = io.BytesIO()
    try:
        for pdf in pdfs[1:]:
            sources.append(pypdfium2.PdfDocument(str(pdf)))
            merged.import_pages(sources[-1])
        merged.save(buffer)
    finally:
        for source in sources:
            source.close()
        merged.close()
    data = buffer.getvalue()
    found = list(_PDF_ID.finditer(data))
    blank = bytearray(data)
    for match in found:
        for group in (1, 2):
            blank[match.start(group) : match.end(group)] = b"0" * len(match.group(group))
    digest = hashlib.sha256(bytes(blank)).hexdigest().upper().encode("ascii")
    for match in found:
        for group in (1, 2):
            width = match.end(group) - match.start(group)
            blank[match.start(group) : match.end(group)] = (digest * 2)[:width]
    return bytes(blank)


def _review_html(pages: pd.DataFrame, pngs: Mapping[str, list[Path]], *, what: str) -> str:
    """The report's page: what the review drew, and each flagged sample's page."""
    counts = pages.groupby("panel", sort=False).size()
    body = _note(
        f"One page per sample: {what}; "
        + ", ".join(f"{n} of panel {p} in results/review/{p}.pdf" for p, n in counts.items())
        + ". Each panel shows a gate on its parent's events as gated (compensated, transformed, "
        "after acquisition QC), the gate where it was placed for that sample (the template's "
        "position dashed grey; a boundary that kept the template in orange) and the percentage "
        "of the parent inside; a panel framed in red holds a gate a flag names."
        if len(pages)
        else f"No sample is drawn: the review draws {what}."
    )
    flagged = [sid for sid in pages["sample_id"] if pngs.get(sid)]
    body += _note(
        f"{len(flagged)} flagged sample(s) below (PNG files in results/review/flagged/)."
        " Click a page for its full size."
    )
    for sid in flagged:
        body += f"<h3>{html.escape(sid)}</h3>\n"
        for png in pngs[sid]:
            data = base64.b64encode(png.read_bytes()).decode("ascii")
            body += (
                f'<img class="figure" alt="{html.escape(sid)}" src="data:image/png;base64,{data}" '
                "onclick=\"this.classList.toggle('full')\">\n"
            )
    return _page("Gating review", body, css=_FIGURE_CSS)


def run_gating_review(
    *,
    sheet: str | Path,
    tables: Sequence[str | Path],
    panels: Sequence[str],
    choice: str | Sequence[str],
    per_batch: int,
    pdfs: Mapping[str, str | Path],
    flagged: str | Path,
    page: str | Path,
) -> pd.DataFrame:
    """Assemble the review: each panel's PDF, the flagged samples' PNGs, the report's page.

    Parameters
    ----------
    sheet
        The sample sheet (the order of the pages).
    tables
        The tables of pages (:func:`run_review_pages`).
    panels
        The config's panels (a PDF each, a placeholder page for one without drawn samples).
    choice, per_batch
        The config's ``figures.gating_review`` and ``figures.gating_review_per_batch`` (said on
        the report's page and a placeholder).
    pdfs
        Panel -> its PDF.
    flagged
        The folder of the flagged samples' PNGs (``<sample_id>.png``; ``.2.png``, ... for a
        strategy of more than one page).
    page
        The report's page of the review.

    Returns
    -------
    pandas.DataFrame
        The pages assembled (``sample_id``, ``panel``, ``status``, ``pdf``, ``png``).

    Raises
    ------
    CytotrialError
        A cached page named by a table is missing (removed since it was drawn).
    """
    from ..io import read_sample_sheet

    order = list(read_sample_sheet(sheet, check_files=False)["sample_id"])
    pages = _pages_table(tables, order)
    what = _choice_text(choice, per_batch)
    for panel in panels:
        _write_pdf(panel, list(pages.loc[pages["panel"] == panel, "pdf"]), what, pdfs[panel])
    folder = Path(flagged)
    with writing(folder):
        folder.mkdir(parents=True, exist_ok=True)
    copied: dict[str, list[Path]] = {}
    for row in pages.itertuples(index=False):
        for i, source in enumerate(p for p in str(row.png).split(";") if p):
            if not Path(source).is_file():
                raise _missing_page(source)
            target = folder / (f"{row.sample_id}.png" if i == 0 else f"{row.sample_id}.{i + 1}.png")
            with writing(target):
                shutil.copyfile(source, target)
            copied.setdefault(row.sample_id, []).append(target)
    text = _review_html(pages, copied, what=what)
    with writing(page):
        Path(page).parent.mkdir(parents=True, exist_ok=True)
        Path(page).write_text(text, encoding="utf-8")
    return pages
