"""The ``review_pages`` rule: every batch's review pages, drawn again only where they changed.

Each chosen sample's page (:mod:`cytotrial.pl` ``draw_sample_review``) is kept under
``results/gating/review/pages/<sample_id>/<fingerprint>.pdf`` (and ``.png`` for a flagged sample).
The fingerprint is the SHA-256 of everything the page shows: the FCS file's SHA-256, the sample's
gates as placed (each adaptive gate's geometry from the gate positions table), the strategy file's
SHA-256, the reading options (compensation, acquisition QC, unreadable spillover, channel names),
the heading (sample, panel, batch, status, flags, message) and :data:`DRAWING_VERSION`. A page
whose fingerprint has a file already is not read nor drawn again, so a changed gate redraws only
the samples it moved; the others' pages are the files they were. The cached pages are not outputs
of the rule (Snakemake removes a job's outputs before it runs it); the rule's output is the table
of pages (:data:`REVIEW_PAGE_COLUMNS`), which the ``gating_review`` rule assembles. One job draws
the pages of every batch, in parallel, one process per thread of the job: a job per batch would
start Python and load the plotting stack once per batch, seconds each, for pages drawn in
parallel anyway.

The job re-runs whenever the QC table is written again, whichever batch's gating changed. A batch
for which nothing it reads has changed for its own samples (membership and file checksums, gate
positions, strategies, reading options, the QC rows of its chosen samples, the package's code),
and whose pages are all there, gets the table of its last run without loading a strategy
(``results/gating/review/pages/.tables/``).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .._stamp import code_stamp, read_keyed, write_keyed
from ..errors import ConfigError, CytotrialError
from ..io._files import file_sha256
from ._batches import read_batch
from ._tables import write_tsv, writing

if TYPE_CHECKING:
    from ..gating import PanelGating
    from ..pl import ReviewHeader

__all__ = [
    "REVIEW_PAGES",
    "REVIEW_PAGE_COLUMNS",
    "ReviewRun",
    "page_fingerprint",
    "review_selection",
    "run_review_pages",
]

#: Folder of the cached pages: ``<sample_id>/<fingerprint>.pdf`` (and ``.png``).
REVIEW_PAGES = "results/gating/review/pages"
#: Columns of the table of pages. ``png``: the flagged sample's PNG files (``;``-separated,
#: one per page), empty for a sample that is not flagged.
REVIEW_PAGE_COLUMNS = ["sample_id", "panel", "status", "fingerprint", "pdf", "png"]
_PNG_DPI = 100


@dataclass
class ReviewRun:
    """What a ``review_pages`` job did: pages drawn, pages kept from earlier runs, seconds drawing."""

    drawn: list[str]
    kept: list[str]
    seconds: float


def _flags(value: Any) -> tuple[str, ...]:
    return tuple(f for f in str(value or "").split(",") if f)


def review_selection(
    qc: pd.DataFrame, choice: str | Sequence[str], *, per_batch: int = 0
) -> list[str]:
    """The samples the review draws, in the order of ``qc``.

    Parameters
    ----------
    qc
        ``results/qc/samples.tsv``: ``sample_id``, ``panel``, ``batch``, ``status``.
    choice
        The config's ``figures.gating_review``: ``all`` (every sample, an excluded one as a page
        saying why), ``flagged`` (samples whose status is ``flagged``) or a list of sample ids.
    per_batch
        ``figures.gating_review_per_batch``: so many more samples of each panel and acquisition
        batch, the first by sample id that are ``ok`` (else ``flagged``), as references.

    Raises
    ------
    ConfigError
        A listed sample is not in the QC table (the sample sheet).
    """
    ids = qc["sample_id"].astype(str)
    if isinstance(choice, str):
        if choice not in ("all", "flagged"):
            raise ConfigError(
                f"config figures.gating_review: {choice!r} is neither all, flagged nor a list of "
                "sample ids"
            )
        chosen = set(ids) if choice == "all" else set(ids[qc["status"] == "flagged"])
    else:
        unknown = [str(s) for s in choice if str(s) not in set(ids)]
        if unknown:
            raise ConfigError(
                f"config figures.gating_review: sample {unknown[0]!r} is not in the sample sheet"
            )
        chosen = {str(s) for s in choice}
    if per_batch > 0:
        gated = qc[qc["status"].isin(["ok", "flagged"])].assign(
            _rank=lambda t: (t["status"] != "ok").astype(int), sample_id=ids
        )
        gated = gated.sort_values(["_rank", "sample_id"], kind="stable")
        picks = gated.groupby(["panel", "batch"], sort=False).head(per_batch)["sample_id"]
        chosen |= set(picks)
    return [sid for sid in ids if sid in chosen]


def _plain(value: Any) -> Any:
    """Geometry as JSON: arrays and tuples as lists, floats as they are (repr round-trips)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def page_fingerprint(
    *,
    file_sha256: str,
    header: ReviewHeader,
    strategy_sha256: str,
    placements: Mapping[str, Any] | None,
    fallbacks: Sequence[str] = (),
    reading: Mapping[str, Any] | None = None,
    png: bool = False,
) -> str:
    """The SHA-256 (hex) of everything a sample's review page shows.

    Parameters
    ----------
    file_sha256
        The FCS file's SHA-256 (the batch membership file holds it).
    header
        The page's heading (sample, panel, batch, status, flags, message).
    strategy_sha256
        The strategy file's SHA-256 (the template gates).
    placements
        Gate path -> the sample's placed geometry (:func:`cytotrial.gating.sample_placements`).
    fallbacks
        Gates with a boundary that kept the template's position.
    reading
        The reading options (compensation and its matrix's SHA-256, ``unreadable_compensation``,
        ``acquisition``, the config's ``panels:``).
    png
        Whether a PNG is written beside the PDF.
    """
    from ..pl import DRAWING_VERSION

    payload = {
        "drawing": DRAWING_VERSION,
        "file": file_sha256,
        "header": asdict(header),
        "strategy": strategy_sha256,
        "placements": _plain(placements or {}),
        "fallbacks": sorted(fallbacks),
        "reading": _plain(reading or {}),
        "png": bool(png),
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class _Task:
    """One page to draw (in a worker process)."""

    sample_id: str
    panel: str
    fcs: str
    header: ReviewHeader
    positions: pd.DataFrame
    pdf: str
    png: str | None


# What every worker reads: set before the pool forks, inherited by its processes.
_SHARED: dict[str, Any] = {}


def _write_pages(figures: list, pdf: str, png: str | None) -> list[str]:
    """Write a sample's pages: one PDF (a page per figure), its PNGs; each file whole or not at all.

    The PNGs are the PDF's pages rasterised (PDFium): the same page as the PDF, drawn once by
    matplotlib instead of once per format.
    """
    from matplotlib.backends.backend_pdf import PdfPages

    from ..pl import save_review_page

    metadata = {"CreationDate": None, "ModDate": None}
    target = Path(pdf)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    with writing(target):
        with PdfPages(partial, metadata=metadata) as document:
            for fig in figures:
                save_review_page(document, fig)
        os.replace(partial, target)
    if png is None:
        return []
    written = []
    for i, image in enumerate(_rasterised(target)):
        path = Path(png) if i == 0 else Path(png).with_suffix(f".{i + 1}.png")
        part = path.with_name(f".{path.name}.{os.getpid()}.partial.png")
        with writing(path):
            image.save(part, format="PNG", compress_level=3)  # half the time of 6, 11% larger
            os.replace(part, path)
        written.append(str(path))
    return written


def _rasterised(pdf: Path) -> Iterator[Any]:
    """Each page of a PDF as an image of 256 colours at :data:`_PNG_DPI` (PDFium, then Pillow).

    A third of the size of a true-colour PNG and alike to the eye (flat colours, text and a
    viridis density), so the report's page of the flagged samples stays small.
    """
    import pypdfium2
    from PIL import Image

    document = pypdfium2.PdfDocument(str(pdf))
    try:
        for page in document:
            bitmap = page.render(scale=_PNG_DPI / 72)
            image = bitmap.to_pil().convert("RGB")
            yield image.quantize(colors=256, method=Image.Quantize.FASTOCTREE)
            bitmap.close()
            page.close()
    finally:
        document.close()


def _draw(task: _Task) -> tuple[str, list[str], float]:
    """Draw one sample's pages and write them: ``(sample_id, PNG files, seconds)``.

    The pages are drawn on this process's canvas (its figures are reused, page after page) and
    written before the next sample's are drawn.
    """
    from ..pl import ReviewCanvas, draw_sample_review, message_page

    start = time.perf_counter()
    if task.header.status == "excluded":
        reason = task.header.message or "excluded by QC"
        figures = [message_page(task.header, f"Not gated: {reason}")]
    else:
        figures = draw_sample_review(
            task.fcs,
            _SHARED["gatings"][task.panel],
            task.header,
            positions=task.positions,
            panels=_SHARED["panels"],
            compensation=_SHARED["compensation"],
            reading=_SHARED["reading"],
            canvas=_SHARED.setdefault("canvas", ReviewCanvas()),
        )
    pngs = _write_pages(figures, task.pdf, task.png)
    return task.sample_id, pngs, time.perf_counter() - start


def _one_blas_thread() -> None:
    """A drawing process computes on one core: its pool has one process per core already.

    BLAS (the compensation's matrix product) would otherwise run as many threads in each process
    as the job has cores, which wait by spinning and take the other processes' cores.
    """
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)


def _run_tasks(tasks: list[_Task], threads: int) -> dict[str, tuple[list[str], float]]:
    """Draw the pages, in ``threads`` processes when there are several.

    The processes are forked: they inherit the loaded strategies instead of loading them again.
    Meanwhile a thread of this process reads the files of the next pages from disk
    (:class:`cytotrial.io.ReadAhead`), so a process drawing a page seldom waits for its file.
    """
    import contextlib
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from ..io import ReadAhead

    workers = max(1, min(int(threads), len(tasks)))
    done: dict[str, tuple[list[str], float]] = {}
    with contextlib.ExitStack() as stack:
        if workers == 1 or "fork" not in multiprocessing.get_all_start_methods():
            drawn = map(_draw, tasks)
        else:
            pool = stack.enter_context(
                ProcessPoolExecutor(
                    max_workers=workers,
                    mp_context=multiprocessing.get_context("fork"),
                    initializer=_one_blas_thread,
                )
            )
            drawn = pool.map(_draw, tasks, chunksize=1)  # the processes start (fork) here
        ahead = stack.enter_context(ReadAhead([task.fcs for task in tasks], ahead=2 * workers + 2))
        for sample_id, pngs, seconds in drawn:
            done[sample_id] = (pngs, seconds)
            ahead.used()
    return done


def _header(row: Any) -> ReviewHeader:
    from ..pl import ReviewHeader

    return ReviewHeader(
        sample_id=str(row.sample_id),
        panel=str(row.panel),
        batch=str(row.batch),
        status=str(row.status),
        flags=_flags(row.qc_flags),
        message=" ".join(str(row.message or "").split()),
    )


def _reading_key(
    *, panels: Any, compensation: str, reading: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The reading options as the fingerprint holds them (a matrix file by its content)."""
    matrix = "fcs" if str(compensation).lower() == "fcs" else file_sha256(compensation)
    return {"panels": panels or {}, "compensation": matrix, **dict(reading or {})}


def _cached_pngs(first: Path) -> list[str]:
    """A cached page's PNG files in page order (``<fingerprint>.png``, ``.2.png``, ...)."""
    if not first.is_file():
        return []
    found, page = [str(first)], 2
    while (path := first.with_suffix(f".{page}.png")).is_file():
        found.append(str(path))
        page += 1
    return found


def _stale(folder: Path, keep: set[str]) -> None:
    """Remove a sample's pages of other fingerprints (the sample was drawn anew)."""
    if folder.is_dir():
        for path in folder.iterdir():
            if path.name.split(".", 1)[0] not in keep:
                path.unlink()


def _placed(
    gating: PanelGating, header: ReviewHeader, fcs: str, positions: pd.DataFrame
) -> tuple[str, dict[str, Any]]:
    """The gate tree a sample's page draws, and the sample's gates as placed.

    The tree is its strategy's SHA-256 and, for a FlowJo sample group, the sample whose tree gates
    the file. A sample that was not gated, or whose tree cannot gate it, has no placed gates (its
    page says why).
    """
    from ..gating import sample_placements

    if header.status == "excluded":
        return gating.strategy.sha256, {}
    try:
        own = gating.for_file(fcs)  # a FlowJo sample group: the file's own sample's tree
    except CytotrialError as error:
        return f"{gating.strategy.sha256}:{' '.join(str(error).split())}", {}
    tree = f"{own.strategy.sha256}:{own.strategy.sample_id or ''}"
    return tree, sample_placements(own, positions, sample_id=header.sample_id)


def _plan_pages(
    members: pd.DataFrame,
    qc: pd.DataFrame,
    gatings: Mapping[str, PanelGating],
    positions: pd.DataFrame,
    *,
    reading_key: Mapping[str, Any],
    pages: Path,
) -> tuple[list[dict[str, Any]], list[_Task]]:
    """Each chosen sample's row of the table of pages, and the pages not drawn yet."""
    rows, tasks = [], []
    by_sample = dict(list(positions.groupby("sample_id", sort=False)))
    for row in qc.itertuples(index=False):
        member = members.loc[row.sample_id]
        header = _header(row)
        mine = by_sample.get(row.sample_id, positions.iloc[0:0])
        tree, placements = _placed(gatings[row.panel], header, str(member["fcs"]), mine)
        fallbacks = sorted(set(mine.loc[mine["status"] != "adapted", "gate_path"].astype(str)))
        flagged = header.status == "flagged"
        fingerprint = page_fingerprint(
            # the file as its gating found it (a membership file's digest can be empty)
            file_sha256=str(getattr(row, "sha256", "") or member["sha256"]),
            header=header,
            strategy_sha256=tree,
            placements=placements,
            fallbacks=fallbacks,
            reading=reading_key,
            png=flagged,
        )
        folder = pages / row.sample_id
        pdf = folder / f"{fingerprint}.pdf"
        png = folder / f"{fingerprint}.png" if flagged else None
        pngs = _cached_pngs(png) if png is not None else []
        cached = pdf.is_file() and (png is None or png.is_file())
        if not cached:
            tasks.append(
                _Task(row.sample_id, row.panel, str(member["fcs"]), header, mine, str(pdf),
                      None if png is None else str(png))
            )  # fmt: skip
        rows.append(
            {
                "sample_id": row.sample_id,
                "panel": row.panel,
                "status": header.status,
                "fingerprint": fingerprint,
                "pdf": str(pdf),
                "png": ";".join(pngs),
            }
        )
    return rows, tasks


_HEADER_COLUMNS = ["sample_id", "panel", "batch", "status", "qc_flags", "message"]


def _memo_key(
    *,
    batch: str | Path,
    gates: str | Path,
    strategies: Mapping[str, Mapping],
    table: pd.DataFrame,
    reading_key: Mapping[str, Any],
    code: Any,
) -> str | None:
    """The SHA-256 of everything a batch's table of pages depends on; ``None`` if unknowable.

    ``code``: the package's :func:`code_stamp`, taken once for every batch of a run.
    """
    panels = sorted(set(table["panel"]))
    try:
        payload = {
            "batch": file_sha256(batch),
            "gates": file_sha256(gates),
            "strategies": {
                panel: {
                    "spec": _plain(dict(strategies[panel])),
                    "file": file_sha256(strategies[panel]["strategy"]),
                }
                for panel in panels
            },
            "qc": table[[c for c in (*_HEADER_COLUMNS, "sha256") if c in table]]
            .astype(str)
            .values.tolist(),
            "reading": _plain(dict(reading_key)),
            "code": code,
        }
    except (OSError, KeyError):
        return None
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _memo_path(pages: Path, batch: str | Path) -> Path:
    """Where a batch's table of pages of its last run is remembered (by its membership file)."""
    return pages / ".tables" / f"{Path(batch).name}.json"


def _remembered(memo: Path, key: str | None) -> list[dict[str, Any]] | None:
    """The table of pages of the last run with ``key``, if every page it names is still there."""
    rows = read_keyed(memo, key)
    if not isinstance(rows, list):
        return None
    files = [row["pdf"] for row in rows] + [
        png for row in rows for png in str(row["png"]).split(";") if png
    ]
    return rows if all(Path(f).is_file() for f in files) else None


def run_review_pages(
    *,
    batches: Sequence[str | Path],
    gates: Sequence[str | Path],
    qc: str | Path,
    strategies: Mapping[str, Mapping],
    panels: Mapping[str, Sequence[str]] | None,
    compensation: str,
    reading: Mapping[str, Any] | None,
    choice: str | Sequence[str],
    per_batch: int,
    threads: int,
    out: str | Path,
    pages: str | Path = REVIEW_PAGES,
) -> ReviewRun:
    """Draw the review pages of the chosen samples of every gating batch that are not drawn yet.

    One job for every batch: the pages still to draw, whichever batch they are of, share one pool
    of ``threads`` processes, and the job starts once, not once per batch.

    Parameters
    ----------
    batches
        Every batch's membership file (``sample_id``, ``panel``, ``fcs``, ``sha256``).
    gates
        Every batch's gate positions table (``results/gating/batch_<batch>.gates.tsv``), in the
        order of ``batches``.
    qc
        ``results/qc/samples.tsv`` (batch, status, flags and message of every sample).
    strategies
        The config's ``strategies:``.
    panels, compensation, reading
        The config's ``panels:``, ``gating.compensation`` and the gating's other reading options
        (``unreadable_compensation``, ``acquisition``): the events drawn are those counted.
    choice, per_batch
        The config's ``figures.gating_review`` and ``figures.gating_review_per_batch``
        (:func:`review_selection`).
    threads
        Processes drawing at once.
    out
        The table of pages (:data:`REVIEW_PAGE_COLUMNS`): batch by batch, each in the order of
        ``qc``.
    pages
        Folder of the cached pages.
    """
    if len(batches) != len(gates):
        raise ValueError("run_review_pages: one gate positions table per batch")
    table = pd.read_csv(qc, sep="\t", dtype=str, keep_default_na=False)
    chosen = set(review_selection(table, choice, per_batch=per_batch))
    table = table[table["sample_id"].isin(chosen)]
    key = _reading_key(panels=panels, compensation=compensation, reading=reading)
    code = code_stamp()
    run = ReviewRun(drawn=[], kept=[], seconds=0.0)
    gatings: dict[str, PanelGating] = {}
    every: list[dict[str, Any]] = []  # the table, batch by batch
    planned: list[tuple[Path, str | None, list[dict[str, Any]]]] = []  # batches planned anew
    tasks: list[_Task] = []
    for batch, batch_gates in zip(batches, gates):
        members = read_batch(batch).set_index("sample_id", drop=False)
        mine = table[table["sample_id"].isin(members.index)]
        if not len(mine):
            continue
        memo = _memo_path(Path(pages), batch)
        memo_key = _memo_key(
            batch=batch, gates=batch_gates, strategies=strategies, table=mine, reading_key=key,
            code=code,
        )  # fmt: skip
        remembered = _remembered(memo, memo_key)
        if remembered is not None:
            every += remembered
            run.kept += [row["sample_id"] for row in remembered]
            continue
        from ..gating import load_panel_gating, read_gate_positions

        for panel in sorted(set(mine["panel"]) - set(gatings)):
            gatings[panel] = load_panel_gating(panel, strategies[panel], panels=panels)
        positions = read_gate_positions([batch_gates])
        rows, todo = _plan_pages(
            members, mine, gatings, positions, reading_key=key, pages=Path(pages)
        )
        every += rows  # the same rows, completed below once their pages are drawn
        planned.append((memo, memo_key, rows))
        tasks += todo
    done: dict[str, tuple[list[str], float]] = {}
    if tasks:
        from ..gating import compensation_matrix

        _SHARED.update(
            gatings=gatings,
            panels=panels,
            compensation=compensation_matrix(compensation),
            reading=dict(reading or {}),
        )
        try:
            done = _run_tasks(tasks, threads)
        finally:
            _SHARED.clear()
    for memo, memo_key, rows in planned:
        for row in rows:
            if row["sample_id"] in done:
                pngs, seconds = done[row["sample_id"]]
                row["png"] = ";".join(pngs)
                run.drawn.append(row["sample_id"])
                run.seconds += seconds
            else:
                run.kept.append(row["sample_id"])
            _stale(Path(row["pdf"]).parent, {row["fingerprint"]})
        write_keyed(memo, memo_key, rows)
    write_tsv(pd.DataFrame(every, columns=REVIEW_PAGE_COLUMNS), out)
    return run
