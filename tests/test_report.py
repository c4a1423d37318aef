"""The HTML report: where each result sits, the pages of key tables and of the run, the captions.

And the demo's report opened in headless Chromium.

Unit tests build the pages from small tables of their own; the end-to-end test builds the demo's
report as a user does (`snakemake --report results/report.html`) and looks at it in a browser.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
import re
import shutil
import struct
import subprocess
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from docutils.core import publish_parts
from docutils.writers import html4css1
from PIL import Image

from conftest import run_snakemake
from cytotrial.rules import (
    REPORT_CATEGORIES,
    REPORT_OVERVIEW,
    REPORT_TABLES,
    report_entry,
    run_report_overview,
    run_report_tables,
)
from cytotrial.rules._report import _ENTRIES

ROOT = Path(__file__).resolve().parents[1]
REPORT_DIR = ROOT / "workflow" / "report"
# What docutils writes into a page or on stderr when a caption has a problem.
DOCUTILS_PROBLEMS = re.compile(r"System Message|\b(WARNING|ERROR|SEVERE)\b|Docutils")


# ---------------------------------------------------------------------------------------------
# Where each result sits


def test_categories_are_numbered_in_reading_order_and_entries_labelled_in_order():
    by_category: dict[str, list[dict]] = {}
    for path in _ENTRIES:
        entry = report_entry(path)
        by_category.setdefault(entry["category"], []).append(entry["labels"])
        assert entry["labels"]["file"] == Path(path).name
    # Snakemake sorts categories by name: the numbers keep the reading order
    assert sorted(by_category) == [f"{i}. {c}" for i, c in enumerate(REPORT_CATEGORIES, 1)]
    for labels in by_category.values():
        assert [lab["#"] for lab in labels] == [f"{i:02d}" for i in range(1, len(labels) + 1)]
        # labels after the first all differ: Snakemake never makes one a two-value toggle
        for key in ("result", "file"):
            assert len({lab[key] for lab in labels}) == len(labels), labels
    assert report_entry(REPORT_OVERVIEW)["category"] == "1. Overview"
    assert report_entry(REPORT_OVERVIEW)["labels"]["#"] == "01"


def test_a_panels_result_takes_the_place_of_its_pattern_named_by_the_panel():
    """``results/review/blood.pdf`` sits where ``results/review/{panel}.pdf`` does."""
    entry = report_entry("results/review/blood.pdf")
    pattern = report_entry("results/review/{panel}.pdf")
    assert entry["category"] == pattern["category"] == "2. Quality control"
    assert entry["labels"]["#"] == pattern["labels"]["#"]
    assert entry["labels"]["result"] == "Gating review of panel blood, by sample"
    assert entry["labels"]["file"] == "blood.pdf"
    with pytest.raises(KeyError, match="has no place in the report"):
        report_entry("results/review/blood/extra.pdf")


def test_a_result_without_a_place_is_refused():
    with pytest.raises(KeyError, match=r"results/figures/new\.png has no place in the report"):
        report_entry("results/figures/new.png")


def test_every_report_flag_of_the_workflow_takes_its_place_from_the_registry():
    rule_files = sorted((ROOT / "workflow" / "rules").glob("*.smk"))
    text = "\n".join(path.read_text() for path in rule_files)
    assert "report(" in text
    assert "category=" not in text, "a report() flag with its own category: use report_entry"
    literal = re.findall(r'report_entry\("([^"{]+)"\)', text)
    assert literal and all(path in _ENTRIES for path in literal)


def _snakemake_links() -> str:
    """The link targets Snakemake appends to every caption (snakemake.report.auto_report)."""
    lines = [
        "",
        ".. _Workflow: javascript:show_panel('workflow')",
        ".. _Statistics: javascript:show_panel('statistics')",
    ]
    for number, category in enumerate(REPORT_CATEGORIES, 1):
        lines.append(f".. _{number}. {category}: javascript:app.showCategory('{category}')")
    for path in {Path(p).name: p for p in _ENTRIES}.values():
        lines.append(f".. _{Path(path).name}: javascript:app.showResultInfo('{path}')")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("caption", sorted(p.name for p in REPORT_DIR.glob("*.rst")))
def test_every_caption_renders_without_a_docutils_message(caption):
    source = (REPORT_DIR / caption).read_text() + _snakemake_links()
    warnings = io.StringIO()
    parts = publish_parts(
        source, writer=html4css1.Writer(), settings_overrides={"warning_stream": warnings}
    )
    assert warnings.getvalue() == ""
    assert not DOCUTILS_PROBLEMS.search(parts["html_body"])


def test_the_report_pages_have_their_captions():
    for name in REPORT_TABLES:
        assert (REPORT_DIR / f"{name}.rst").is_file()
    assert (REPORT_DIR / "overview.rst").is_file()


# ---------------------------------------------------------------------------------------------
# The pages of key tables

ARMS = ["COMBO", "MONO"]


def _qc_table() -> pd.DataFrame:
    rows = [
        ("S1", "P1", "COMBO", "C1D1", "blood", "B1", "ok", 20000, "", ""),
        (
            "S2",
            "P1",
            "COMBO",
            "C1D8",
            "blood",
            "B1",
            "flagged",
            20000,
            "too_few_events:cd8<200",
            "",
        ),
        ("S3", "P2", "MONO", "C1D1", "blood", "B1", "ok", 20000, "", ""),
        ("S4", "P2", "MONO", "C1D8", "blood", "B2", "excluded", 0, "", "truncated <file>"),
        ("S5", "P3", "MONO", "C1D8", "blood", "B2", "ok", 18000, "", ""),
    ]
    columns = [
        "sample_id", "patient_id", "arm", "visit", "compartment", "batch", "status",
        "events_in", "qc_flags", "message",
    ]  # fmt: skip
    table = pd.DataFrame(rows, columns=columns)
    table["sha256"] = "ab" * 32
    table["n_cd8"] = [100, 50, 120, None, 90]
    return table


def _write(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, sep="\t", index=False)
    return path


def _cells(page: str) -> list[list[str]]:
    """The text of every data row's cells of the page's tables."""
    rows = re.findall(r"<tr(?: class=\"\w*\")?>(.*?)</tr>", page, flags=re.S)
    return [
        [html.unescape(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", r)]
        for r in rows
        if "<td" in r
    ]


def _summary_table() -> pd.DataFrame:
    rows = []
    for arm, shift in (("MONO", 0.0), ("COMBO", 1.0)):
        for visit, fold in (("C1D1", 0.0), ("C1D8", shift)):
            ci = (fold, fold) if visit == "C1D1" else (fold - 0.25, fold + 0.25)
            rows.append(
                dict(population="cd8", compartment="blood", arm=arm, visit=visit, cycle=1,
                     day=1 if visit == "C1D1" else 8, measure="per_ul", unit="cells/µL",
                     n_patients=10, median=250.0 * 2**fold, q1=200.0, q3=1234.5, n_log2fc=10,
                     mean_log2fc=fold, ci_low=ci[0], ci_high=ci[1])
            )  # fmt: skip
    return pd.DataFrame(rows)


def _mmrm_table() -> pd.DataFrame:
    base = dict(compartment="blood", measure="per_ul", se=0.1, df=18.0, n_patients=20, n_obs=40,
                covariance="unstructured", note="")  # fmt: skip
    return pd.DataFrame(
        [
            dict(base, population="cd8", visit="C1D8", contrast="COMBO - MONO", estimate=1.0,
                 ci_low=0.8, ci_high=1.2, p_value=1e-6, q_value=2e-6, family="primary:blood"),
            dict(base, population="cd8:Ki67", visit="C1D8", contrast="COMBO - MONO", estimate=0.2,
                 ci_low=-0.1, ci_high=0.5, p_value=0.2, q_value=0.2, family="primary:blood"),
            dict(base, population="nk", visit="C1D8", contrast="COMBO - MONO", estimate=3.0,
                 ci_low=2.0, ci_high=4.0, p_value=1e-9, q_value=1e-9, family="secondary:mmrm:blood"),
            dict(base, population="cd8", visit="C1D8", contrast="MONO adjusted mean", estimate=0.1,
                 ci_low=-0.1, ci_high=0.3, p_value=0.3, q_value=np.nan, family="estimate"),
        ]
    )  # fmt: skip


def _response_table() -> pd.DataFrame:
    return pd.DataFrame(
        [
            dict(analysis="objective_response_rate", arm="COMBO", n=10, n_responders=4,
                 estimate=0.4, ci_low=0.122, ci_high=0.738, family="estimate", note=""),
            dict(analysis="early_change", arm="COMBO", compartment="blood", population="cd4_cd8",
                 visit="C1D8", n=10, n_responders=4, n_non_responders=6,
                 median_log2fc_responders=1.5, median_log2fc_non_responders=0.5, estimate=1.0,
                 ci_low=0.2, ci_high=1.8, p_value=0.02, q_value=0.04, family="secondary:response",
                 note=""),
        ]
    )  # fmt: skip


@pytest.fixture
def pages(tmp_path):
    """The four table pages written from the small tables above."""
    outputs = {name: tmp_path / "tables" / f"{name}.html" for name in REPORT_TABLES}
    written = run_report_tables(
        qc=_write(_qc_table(), tmp_path / "samples.tsv"),
        summary=_write(_summary_table(), tmp_path / "summary.tsv"),
        mmrm=_write(_mmrm_table(), tmp_path / "mmrm.tsv"),
        response=_write(_response_table(), tmp_path / "response.tsv"),
        outputs=outputs,
        arms=ARMS,
        labels={"cd8": "CD8+ T cells", "cd4": "CD4+ T cells"},
        ratios={"cd4_cd8": ["cd4", "cd8"]},
        alpha=0.05,
        correction="holm",
    )
    assert written == list(outputs.values())
    return {name: path.read_text() for name, path in outputs.items()}


def test_qc_page_lists_problems_first_escaped_without_population_counts(pages):
    page = pages["qc_samples"]
    rows = _cells(page)
    assert [row[0] for row in rows] == ["S4", "S2", "S1", "S3", "S5"]
    assert rows[0][1] == "excluded" and "truncated <file>" in rows[0]
    assert "&lt;file&gt;" in page and "<file>" not in page
    assert "too_few_events:cd8<200" in rows[1]
    assert "n_cd8" not in page and "sha256" not in page
    assert '<tr class="excluded">' in page and '<tr class="flagged">' in page
    assert "5 samples: 3 ok, 1 flagged, 1 excluded" in page
    assert "20,000" in page  # events, readable


def test_summary_page_puts_the_arms_side_by_side_in_config_order(pages):
    page = pages["summary"]
    assert page.index(">COMBO<") < page.index(">MONO<")  # arms: config order, not the table's
    rows = _cells(page)
    assert rows[0][:3] == ["CD8+ T cells", "cells/µL", "C1D1"]
    # baseline: the median with its IQR; a change of exactly 0 without an interval
    assert rows[0][3:6] == ["10", "250 (200 to 1,234)", "0"]
    assert rows[1][3:6] == ["10", "500 (200 to 1,234)", "1 (0.75 to 1.25)"]  # COMBO at C1D8
    assert rows[1][6:9] == ["10", "250 (200 to 1,234)", "0 (-0.25 to 0.25)"]  # MONO at C1D8


def test_primary_page_shows_only_the_primary_family_and_marks_q_below_alpha(pages):
    page = pages["primary"]
    rows = _cells(page)
    assert [row[0] for row in rows] == ["CD8+ T cells", "Ki67 MFI of CD8+ T cells"]
    assert rows[0][1:9] == [
        "blood", "C1D8", "1 (0.8 to 1.2)", "2", "<0.0001", "<0.0001", "yes", "COMBO - MONO",
    ]  # fmt: skip
    assert rows[1][3:8] == ["0.2 (-0.1 to 0.5)", "1.15", "0.2", "0.2", ""]
    assert page.count('<tr class="significant">') == 1
    assert "corrected by Holm" in page
    assert "adjusted mean" not in page and "secondary" not in page


def test_response_page_gives_the_rate_in_percent_and_the_early_change(pages):
    page = pages["response"]
    rows = _cells(page)
    assert rows[0] == ["COMBO", "10", "4", "40% (12% to 74%)"]
    assert rows[1][:6] == ["blood", "cd4 / cd8", "COMBO", "C1D8", "4", "6"]
    assert rows[1][8:11] == ["1 (0.2 to 1.8)", "0.02", "0.04"]


def test_response_page_without_a_patients_table_says_so(tmp_path):
    outputs = {name: tmp_path / f"{name}.html" for name in REPORT_TABLES}
    empty = _response_table().iloc[:0]
    run_report_tables(
        qc=_write(_qc_table(), tmp_path / "samples.tsv"),
        summary=_write(_summary_table(), tmp_path / "summary.tsv"),
        mmrm=_write(_mmrm_table().iloc[2:], tmp_path / "mmrm.tsv"),
        response=_write(empty, tmp_path / "response.tsv"),
        outputs=outputs,
        arms=ARMS,
        labels={},
        ratios={},
        alpha=0.05,
        correction="bh",
    )
    assert "No patients table was given" in outputs["response"].read_text()
    assert "no primary comparison in this run" in outputs["primary"].read_text()


# ---------------------------------------------------------------------------------------------
# The run overview


def test_overview_counts_samples_patients_and_records_the_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sheet = _qc_table()[["sample_id", "patient_id", "arm", "visit", "compartment"]].assign(
        cycle=1, day=lambda t: np.where(t["visit"] == "C1D1", 1, 8)
    )
    # the sheet lists C1D8 first: the overview orders visits clinically
    sheet = sheet.iloc[::-1]
    config = {
        "samples": str(tmp_path / "sheet.tsv"),  # absolute: shown relative to the working folder
        "arms": {"COMBO": "#C8102E", "MONO": "#1F77B4"},
        "analysis": {"alpha": 0.05},
    }
    adata = ad.AnnData(np.zeros((1, 1)))
    adata.uns["provenance"] = {
        "sample_sheet_sha256": "cd" * 32,
        "strategy_sha256": {"blood": "ef" * 32},
        "strategy_path": {"blood": "resources/gating/blood.xml"},
        "versions": {"python": "3.11.7", "cytotrial": "9.9.9"},
        "config_json": json.dumps(config),
    }
    adata.write_h5ad(tmp_path / "populations.h5ad")
    out = run_report_overview(
        qc=_write(_qc_table(), tmp_path / "samples.tsv"),
        sheet=_write(sheet, tmp_path / "sheet.tsv"),
        h5ad=tmp_path / "populations.h5ad",
        out=tmp_path / "report" / "overview.html",
        arms=ARMS,
    )
    page = out.read_text()
    rows = _cells(page)
    assert "5 samples in the sample sheet, of 3 patients: 3 ok, 1 flagged, 1 excluded." in page
    assert ["ok", "3", "3"] in rows and ["flagged", "1", "1"] in rows
    assert ["excluded", "1", "1"] in rows
    assert ["S4", "P2", "MONO", "C1D8", "blood", "B2", "truncated <file>"] in rows
    assert ["too_few_events:cd8<200", "1"] in rows
    # patients per arm and visit, visits in clinical order
    header = re.search(
        r'<h3>blood</h3>\s*<div class="table">\s*<table>\s*<thead><tr>(.*?)</tr>', page, re.S
    ).group(1)
    assert re.findall(r"<th>(.*?)</th>", header) == ["arm", "C1D1", "C1D8", "patients"]
    assert ["COMBO", "1", "1", "1"] in rows
    assert ["MONO", "1", "1 + 1 excluded", "2"] in rows
    assert ["python", "3.11.7"] in rows and ["cytotrial", "9.9.9"] in rows
    assert ["gating strategy of panel blood", "resources/gating/blood.xml", "ef" * 32] in rows
    assert "samples: sheet.tsv" in page and str(tmp_path) not in page
    assert "alpha: 0.05" in page


# ---------------------------------------------------------------------------------------------
# The demo's report in a browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
WINDOW = (1400, 900)

# Runs in the report once Snakemake's app is up: visits the workflow page, every category and every
# result's description, shows the page of the tallest figure and measures its frame, and writes what
# it saw as JSON into <pre id="cytotrial-walk">.
WALK = """
(async function () {
  const pause = (ms) => new Promise((done) => setTimeout(done, ms));
  const text = () => document.getElementById("app").innerText;
  while (typeof app === "undefined" || !app) await pause(50);
  await pause(500);
  const seen = {workflow: text(), menu: [], categories: {}, captions: {}, frame: null};
  seen.menu = Array.from(document.querySelectorAll("#app li")).map((li) => li.innerText.trim());
  for (const category of Object.keys(categories)) {
    app.setView({navbarMode: "menu"});  // as a user goes back: a category's list is built anew
    await pause(200);
    app.showCategory(category);
    await pause(300);
    seen.categories[category] = text();
  }
  for (const path of Object.keys(results)) {
    app.showResultInfo(path);
    await pause(150);
    seen.captions[path] = text();
  }
  const tall = TALL;
  app.setView({content: "html", contentPath: results[tall].data_uri, resultPath: tall});
  await pause(1000);
  const box = document.querySelector(".justify-center.overflow-auto");
  const frame = box.querySelector("iframe").getBoundingClientRect();
  seen.frame = {top: frame.top, height: frame.height,
                box_top: box.getBoundingClientRect().top, box_height: box.clientHeight};
  const pre = document.createElement("pre");
  pre.id = "cytotrial-walk";
  pre.textContent = JSON.stringify(seen);
  document.body.appendChild(pre);
})();
"""

# Runs in a figure's page: where the figure lies and how far the page scrolls.
MEASURE = """
(function () {
  const image = document.querySelector("img.figure").getBoundingClientRect();
  const pre = document.createElement("pre");
  pre.id = "cytotrial-figure";
  pre.textContent = JSON.stringify({top: image.top + window.scrollY, height: image.height,
    window: window.innerHeight, scroll: document.scrollingElement.scrollHeight});
  document.body.appendChild(pre);
})();
"""

# How wide a table page is drawn: the page's own width and each table's box.
WIDTHS = """
(function () {
  const boxes = Array.from(document.querySelectorAll("div.table")).map((box) => ({
    overflow: getComputedStyle(box).overflowX, scroll: box.scrollWidth, client: box.clientWidth,
    tables: box.querySelectorAll("table").length}));
  const pre = document.createElement("pre");
  pre.id = "cytotrial-widths";
  pre.textContent = JSON.stringify({page: document.scrollingElement.scrollWidth,
    window: window.innerWidth, boxes: boxes, tables: document.querySelectorAll("table").length});
  document.body.appendChild(pre);
})();
"""

# Shows one result in the report, its category open in the menu (for a screenshot).
SHOW = """
(async function () {
  const pause = (ms) => new Promise((done) => setTimeout(done, ms));
  while (typeof app === "undefined" || !app) await pause(50);
  await pause(300);
  app.showCategory(CATEGORY);
  await pause(300);
  app.setView({content: "html", contentPath: results[PATH].data_uri, resultPath: PATH});
})();
"""


def _with_script(report: Path, script: str, out: Path) -> Path:
    """A copy of the report that runs ``script`` after Snakemake's own scripts."""
    text = report.read_text(encoding="utf-8")
    end = text.rindex("</body>")
    out.write_text(f"{text[:end]}<script>{script}</script>\n{text[end:]}", encoding="utf-8")
    return out


def _chromium(
    url: str, *options: str, budget_ms: int = 60000, window: tuple[int, int] = WINDOW
) -> subprocess.CompletedProcess:
    """Headless Chromium on ``url`` (virtual time: the report's scripts and timers all run)."""
    command = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
        f"--window-size={window[0]},{window[1]}", f"--virtual-time-budget={budget_ms}",
        *options, url,
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def _dom_text(dom: str) -> str:
    """Visible text of a dumped DOM (scripts and styles dropped)."""
    dom = re.sub(r"<(script|style)\b.*?</\1>", " ", dom, flags=re.S | re.I)
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", dom)))


def _png_size(path: Path) -> tuple[int, int]:
    width, height = struct.unpack(">II", path.read_bytes()[16:24])
    return width, height


def _report_results(report: Path) -> dict:
    text = report.read_text(encoding="utf-8")
    found = re.search(r'<script id="results">\s*var results = (.*?);\s*</script>', text, re.S)
    return json.loads(found.group(1))


def _decoded(data_uri: str) -> str:
    return base64.b64decode(data_uri.split(",", 1)[1]).decode("utf-8")


@pytest.fixture(scope="module")
def demo_report(default_demo):
    """The demo run end to end, then its report built as a user builds it."""
    if CHROMIUM is None:
        pytest.skip("headless Chromium is not installed (Debian package `chromium`)")
    workdir = default_demo
    built = run_snakemake(workdir, "--report", "results/report.html")
    return workdir, built.stdout + built.stderr


@pytest.mark.e2e
def test_report_builds_without_a_docutils_message(demo_report):
    workdir, log = demo_report
    assert "Report created." in log
    problems = [line for line in log.splitlines() if DOCUTILS_PROBLEMS.search(line)]
    assert not problems, problems
    results = _report_results(workdir / "results" / "report.html")
    for path, result in results.items():
        assert not DOCUTILS_PROBLEMS.search(result["caption"]), path
        assert result["labels"] == report_entry(path)["labels"]


@pytest.mark.e2e
def test_report_in_chromium_renders_labelled_pages_in_reading_order(demo_report, tmp_path):
    workdir, _ = demo_report
    report = workdir / "results" / "report.html"
    results = _report_results(report)
    figures = {p: workdir / "results/figures" / f"{Path(p).stem}.png" for p in results}
    figures = {p: png for p, png in figures.items() if "/report/figures/" in p and png.is_file()}
    tallest = max(figures, key=lambda p: _png_size(figures[p])[1] / _png_size(figures[p])[0])
    page = _with_script(report, WALK.replace("TALL", json.dumps(tallest)), tmp_path / "walk.html")
    dom = _chromium(page.as_uri(), "--dump-dom").stdout
    found = re.search(r'<pre id="cytotrial-walk">(.*?)</pre>', dom, re.S)
    assert found, "the report's app did not start in Chromium"
    seen = json.loads(html.unescape(found.group(1)))

    # every page the walk saw: no docutils message, no warning
    texts = [seen["workflow"], *seen["categories"].values(), *seen["captions"].values()]
    assert all(not DOCUTILS_PROBLEMS.search(text) for text in texts)
    assert "cytotrial" in seen["workflow"]
    # the menu lists the categories in reading order
    numbered = [item for item in seen["menu"] if re.match(r"^\d+\. ", item)]
    assert numbered == [f"{i}. {c}" for i, c in enumerate(REPORT_CATEGORIES, 1)]
    # each category lists its entries by label, in order
    for category, text in seen["categories"].items():
        entries = [
            report_entry(p)["labels"] for p in results if report_entry(p)["category"] == category
        ]
        positions = [
            text.find(labels["result"]) for labels in sorted(entries, key=lambda e: e["#"])
        ]
        assert -1 not in positions and positions == sorted(positions), (category, text)
    # every result's description is shown
    for path, text in seen["captions"].items():
        assert results[path]["name"] in text

    # the tallest figure's page fills the content box, none of it above the box's top ...
    frame = seen["frame"]
    assert frame["top"] >= frame["box_top"] - 1 and frame["height"] <= frame["box_height"] + 1
    # ... and within the page the figure starts on screen and scrolls to its bottom
    figure_page = tmp_path / "figure.html"
    figure_page.write_text(_decoded(results[tallest]["data_uri"]), encoding="utf-8")
    measured = _with_script(figure_page, MEASURE, tmp_path / "measured.html")
    dom = _chromium(measured.as_uri(), "--dump-dom", budget_ms=5000).stdout
    figure = json.loads(
        html.unescape(re.search(r'id="cytotrial-figure">(.*?)</pre>', dom).group(1))
    )
    assert 0 <= figure["top"] < figure["window"], figure
    assert figure["scroll"] >= figure["top"] + figure["height"] - 1, figure
    print(f"tallest figure {tallest}: {figure}")


@pytest.mark.e2e
def test_report_tables_render_in_chromium_with_the_numbers_of_the_tsvs(demo_report, tmp_path):
    workdir, _ = demo_report
    results = _report_results(workdir / "results" / "report.html")
    qc = pd.read_csv(workdir / "results/qc/samples.tsv", sep="\t")
    mmrm = pd.read_csv(workdir / "results/stats/mmrm.tsv", sep="\t")
    primary = mmrm[mmrm["family"].str.startswith("primary:")]
    expected = {
        "qc_samples": [*qc["sample_id"], f"{len(qc)} samples"],
        "summary": ["median (IQR)", "mean log2 FC (CI)"],
        "primary": [f"{v:.3g}" for v in primary["estimate"] if abs(v) < 100],
        "response": ["Objective response rate"],
    }
    for name, path in REPORT_TABLES.items():
        assert results[path]["mime_type"] == "text/html"
        page = tmp_path / f"{name}.html"
        page.write_text(_decoded(results[path]["data_uri"]), encoding="utf-8")
        text = _dom_text(_chromium(page.as_uri(), "--dump-dom", budget_ms=5000).stdout)
        assert "<table" in page.read_text() and not DOCUTILS_PROBLEMS.search(text)
        missing = [value for value in expected[name] if value not in text]
        assert not missing, (name, missing[:5])
        # in a pane narrower than the table, the table scrolls in its box: the page never
        # overflows, so no column is cut at the edge
        measured = _with_script(page, WIDTHS, tmp_path / f"{name}_widths.html")
        dom = _chromium(measured.as_uri(), "--dump-dom", budget_ms=5000, window=(600, 800))
        widths = json.loads(
            html.unescape(re.search(r'id="cytotrial-widths">(.*?)</pre>', dom.stdout).group(1))
        )
        assert widths["page"] <= widths["window"], (name, widths)
        boxes = widths["boxes"]
        assert sum(b["tables"] for b in boxes) == widths["tables"], (name, widths)
        assert all(b["overflow"] == "auto" for b in boxes), (name, widths)
        if name == "primary":
            assert any(b["scroll"] > b["client"] for b in boxes), widths  # wider: it scrolls
    overview = _decoded(results[REPORT_OVERVIEW]["data_uri"])
    assert f"{len(qc)}" in overview and "Configuration" in overview and "Versions" in overview
    # no absolute path of the machine (a path relative to the working folder may climb out of it)
    for folder in (workdir, ROOT):
        assert not re.search(rf"(?<![\w.]){re.escape(str(folder))}", overview), folder


@pytest.mark.e2e
def test_report_screenshots_of_the_overview_and_a_table(demo_report):
    """Screenshots of the report showing the run overview and the primary statistics."""
    workdir, _ = demo_report
    report = workdir / "results" / "report.html"
    folder = Path(os.environ.get("CYTOTRIAL_SCREENSHOTS", workdir / "results/report/screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    for name, path in (("overview", REPORT_OVERVIEW), ("primary", REPORT_TABLES["primary"])):
        script = SHOW.replace("CATEGORY", json.dumps(report_entry(path)["category"]))
        script = script.replace("PATH", json.dumps(path))
        page = _with_script(report, script, workdir / f"show_{name}.html")
        shot = folder / f"{name}.png"
        _chromium(page.as_uri(), f"--screenshot={shot}")
        image = Image.open(shot).convert("RGB")
        assert image.size == WINDOW
        # the content beside the menu is drawn: many colours, not a blank or loading page
        content = image.crop((WINDOW[0] // 4, 0, WINDOW[0], WINDOW[1]))
        assert len(content.getcolors(maxcolors=WINDOW[0] * WINDOW[1])) > 50
        print(f"screenshot: {shot}")
