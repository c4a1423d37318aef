"""The report's own HTML pages: the key tables and the run overview, small, self-contained, readable.

Each page is one HTML file with its style inline (Snakemake shows it in a frame of the report); cells
are escaped, numbers rounded for reading (the TSVs keep every digit) and right-aligned.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
from collections.abc import Mapping, Sequence

import pandas as pd

__all__ = [
    "figure_html",
    "overview_page",
    "primary_page",
    "qc_samples_page",
    "response_page",
    "summary_page",
]


_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1f2933;
       background: #fff; margin: 1.2rem 1.5rem; line-height: 1.4; }
h1 { font-size: 1.35rem; margin: 0 0 .4rem; }
h2 { font-size: 1.1rem; margin: 1.6rem 0 .4rem; }
h3 { font-size: .95rem; margin: 1rem 0 .2rem; }
p.note { color: #52606d; font-size: .85rem; max-width: 62rem; margin: .2rem 0 .6rem; }
div.table { overflow-x: auto; max-width: 100%; margin: .4rem 0 1rem; }
table { border-collapse: collapse; font-size: .82rem; }
th, td { border-bottom: 1px solid #d9dee3; padding: .22rem .55rem; text-align: left;
         vertical-align: top; white-space: nowrap; }
th { background: #eef2f6; }
th.group { text-align: center; border-left: 2px solid #fff; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.text { white-space: normal; min-width: 14rem; max-width: 32rem; }
tr.excluded td { background: #fde8e6; }
tr.flagged td { background: #fff4db; }
tr.significant td { background: #e3f2e6; }
pre { background: #f5f7f9; padding: .8rem; font-size: .8rem; overflow: auto; }
"""

# Columns of free text: wrapped, not kept on one line.
_TEXT_COLUMNS = {"message", "note", "notes", "flags", "qc_flags", "flag"}


def _page(title: str, body: str, *, css: str = "") -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_CSS}{css}</style>\n</head>\n<body>\n"
        f"<h1>{html.escape(title)}</h1>\n{body}</body>\n</html>\n"
    )


def _note(text: str) -> str:
    return f'<p class="note">{html.escape(text)}</p>\n'


def _missing(value: object) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _number(value: object, digits: int = 3) -> str:
    """A number for reading: whole above 100 (with thousands separators), else ``digits`` significant."""
    if _missing(value):
        return ""
    value = float(value)
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def _cell(value: object) -> tuple[str, bool]:
    """A table cell's text and whether it is a number (right-aligned)."""
    if _missing(value):
        return "", False
    if isinstance(value, bool):
        return str(value), False
    if isinstance(value, int):
        return f"{value:,}", True
    if isinstance(value, float):
        return (f"{value:,.0f}" if value.is_integer() else _number(value)), True
    return str(value), False


def _header(columns: Sequence) -> str:
    """One header row; two when columns are (group, name) pairs (groups spanning their columns)."""
    names = [c[1] if isinstance(c, tuple) else c for c in columns]
    row = "".join(f"<th>{html.escape(str(n))}</th>" for n in names)
    if not any(isinstance(c, tuple) for c in columns):
        return f"<tr>{row}</tr>"
    groups: list[list] = []
    for column in columns:
        group = column[0] if isinstance(column, tuple) else ""
        if groups and groups[-1][0] == group:
            groups[-1][1] += 1
        else:
            groups.append([group, 1])
    top = "".join(
        f'<th class="group" colspan="{span}">{html.escape(str(group))}</th>'
        for group, span in groups
    )
    return f"<tr>{top}</tr>\n<tr>{row}</tr>"


def _table(
    frame: pd.DataFrame, *, row_classes: Sequence[str] | None = None, empty: str = "none"
) -> str:
    """An HTML table of ``frame``: its columns as headers, cells escaped, numbers right-aligned."""
    if frame.empty:
        return _note(f"({empty})")
    text = [(c[1] if isinstance(c, tuple) else c) in _TEXT_COLUMNS for c in frame.columns]
    rows = []
    for i, values in enumerate(frame.itertuples(index=False, name=None)):
        cells = []
        for value, wrap in zip(values, text, strict=True):
            shown, numeric = _cell(value)
            css = ' class="num"' if numeric else (' class="text"' if wrap and shown else "")
            cells.append(f"<td{css}>{html.escape(shown)}</td>")
        css = f' class="{row_classes[i]}"' if row_classes is not None and row_classes[i] else ""
        rows.append(f"<tr{css}>{''.join(cells)}</tr>")
    body = "\n".join(rows)
    head = _header(list(frame.columns))
    # a table wider than the pane scrolls within its own box: no column is cut at the edge
    table = f"<table>\n<thead>{head}</thead>\n<tbody>\n{body}\n</tbody>\n</table>"
    return f'<div class="table">\n{table}\n</div>\n'


def _interval(estimate: object, low: object, high: object) -> str:
    """``estimate (low to high)``: an estimate and its interval, or a median and its quartiles.

    The estimate alone without an interval, or when the interval is that one point.
    """
    if _missing(estimate):
        return ""
    if _missing(low) or _missing(high) or low == high == estimate:
        return _number(estimate)
    return f"{_number(estimate)} ({_number(low)} to {_number(high)})"


def _percent_interval(estimate: object, low: object, high: object) -> str:
    """A proportion and its interval in percent: ``25% (5.5% to 57%)``."""

    def percent(value: object) -> str:
        value = 100 * float(value)
        return f"{value:.0f}%" if abs(value) >= 10 else f"{value:.2g}%"

    if _missing(estimate):
        return ""
    if _missing(low) or _missing(high):
        return percent(estimate)
    return f"{percent(estimate)} ({percent(low)} to {percent(high)})"


def _p(value: object) -> str:
    """A p- or q-value: two significant digits, ``<0.0001`` below it."""
    if _missing(value):
        return ""
    return "<0.0001" if float(value) < 1e-4 else f"{float(value):.2g}"


def _shown_path(value: str) -> str:
    """A file path as pages show it: relative to the working folder (no path of the machine)."""
    if not value or not os.path.isabs(value):
        return value
    try:
        return os.path.relpath(value)
    except ValueError:  # another drive
        return os.path.basename(value)


def _feature(feature: str, labels: Mapping[str, str], ratios: Mapping[str, Sequence[str]]) -> str:
    """A feature's readable name, as the figures label it (population label, ratio, MFI)."""
    if feature in labels:
        return str(labels[feature])
    if feature in ratios:
        numerator, denominator = ratios[feature]
        return f"{numerator} / {denominator}"
    population, colon, marker = feature.partition(":")
    return f"{marker} MFI of {labels.get(population, population)}" if colon else feature


# ---------------------------------------------------------------------------------------------
# Figures

_FIGURE_CSS = """
img.figure { display: block; max-width: 100%; height: auto; cursor: zoom-in; }
img.figure.full { max-width: none; cursor: zoom-out; }
"""


def figure_html(png: bytes, *, title: str, source: str) -> str:
    """A page of one figure: at the window's width (a tall one scrolls), full size on a click."""
    data = base64.b64encode(png).decode("ascii")
    body = _note(f"{source} (and the PDF beside it). Click the figure for its full size.")
    body += (
        f'<img class="figure" alt="{html.escape(title)}" src="data:image/png;base64,{data}" '
        "onclick=\"this.classList.toggle('full')\">\n"
    )
    return _page(title, body, css=_FIGURE_CSS)


# ---------------------------------------------------------------------------------------------
# Key tables


def _status_order(qc: pd.DataFrame) -> pd.DataFrame:
    """Excluded samples first, then flagged, then ok; each by sample id."""
    rank = qc["status"].map({"excluded": 0, "flagged": 1, "ok": 2}).fillna(3)
    return qc.assign(_rank=rank).sort_values(["_rank", "sample_id"], kind="stable")


# Columns of the sample QC page shown first: what happened to each sample and why.
_QC_FIRST = ["sample_id", "status", "qc_flags", "flags", "message", "notes"]


def qc_samples_page(qc: pd.DataFrame) -> str:
    """The sample QC table: problems first, counts per population left to the TSV."""
    shown = _status_order(qc)
    filled = shown.notna() & (shown.astype(str).apply(lambda col: col.str.strip()) != "")
    first = [c for c in _QC_FIRST if c in qc.columns]
    ordered = first + [c for c in qc.columns if c not in first]
    columns = [c for c in ordered if not c.startswith("n_") and c != "sha256" and filled[c].any()]
    counts = qc["status"].value_counts()
    body = _note(
        f"{len(qc)} samples: "
        + ", ".join(f"{counts.get(s, 0)} {s}" for s in ("ok", "flagged", "excluded"))
        + ". Excluded samples (not counted) come first, then flagged ones (counted, see their "
        "flags). The event count of each population is in results/qc/samples.tsv."
    )
    body += _table(shown[columns], row_classes=list(shown["status"]))
    return _page("Sample quality control", body)


_SUMMARY_COLUMNS = ["n", "median (IQR)", "mean log2 FC (CI)"]


def _summary_cells(row: object) -> list:
    """One arm's cells of a summary row: patients, median (IQR), mean log2 FC (CI)."""
    spread = _interval(row.median, row.q1, row.q3)
    return [int(row.n_patients), spread, _interval(row.mean_log2fc, row.ci_low, row.ci_high)]


def summary_page(
    summary: pd.DataFrame,
    *,
    arms: Sequence[str],
    labels: Mapping[str, str],
    ratios: Mapping[str, Sequence[str]],
) -> str:
    """Per compartment, each feature and visit with the arms side by side."""
    body = _note(
        "For each arm: patients with a value, the median value with its interquartile range "
        "(unit as given) and the mean log2 fold change from baseline with its confidence interval "
        "(0 = no change, 1 = doubled). Tests are in the arm comparison and MMRM."
    )
    if summary.empty:
        return _page("Summary by arm and visit", body + _note("(no rows)"))
    present = [a for a in arms if a in set(summary["arm"])]
    present += sorted(set(summary["arm"]) - set(present))
    columns = ["feature", "unit", "visit"]
    columns += [(arm, name) for arm in present for name in _SUMMARY_COLUMNS]
    for compartment, rows in summary.groupby("compartment", sort=False):
        by_key = {(r.population, r.visit, r.arm): r for r in rows.itertuples(index=False)}
        table = []
        for feature, visit in dict.fromkeys(zip(rows["population"], rows["visit"], strict=True)):
            found = [by_key.get((feature, visit, arm)) for arm in present]
            unit = next(r.unit for r in found if r is not None)
            line = [_feature(feature, labels, ratios), unit, visit]
            for r in found:
                line += ["", "", ""] if r is None else _summary_cells(r)
            table.append(line)
        frame = pd.DataFrame(table, columns=pd.Index(columns, tupleize_cols=False))
        body += f"<h2>{html.escape(str(compartment))}</h2>\n" + _table(frame)
    return _page("Summary by arm and visit", body)


_CORRECTIONS = {"holm": "Holm", "bonferroni": "Bonferroni", "bh": "Benjamini-Hochberg"}


def primary_page(
    mmrm: pd.DataFrame,
    *,
    labels: Mapping[str, str],
    ratios: Mapping[str, Sequence[str]],
    alpha: float,
    correction: str,
) -> str:
    """The declared primary family: the MMRM arm differences, with their q-values."""
    rows = mmrm[mmrm["family"].astype(str).str.startswith("primary:")]
    body = _note(
        "The declared primary question: the MMRM difference between arms in log2 fold change "
        f"from baseline at each on-treatment visit, q-values corrected by "
        f"{_CORRECTIONS.get(correction, correction)} within "
        f"each compartment's family. Rows with q < {alpha:g} are highlighted. A fold change of 2 "
        "means the feature rose twice as much (in ratio) under the arm as under the reference."
    )
    if rows.empty:
        return _page("Primary statistics", body + _note("(no primary comparison in this run)"))
    significant = rows["q_value"] < alpha
    table = pd.DataFrame(
        {
            "feature": [_feature(f, labels, ratios) for f in rows["population"]],
            "compartment": rows["compartment"],
            "visit": rows["visit"],
            "log2 difference (CI)": [
                _interval(e, lo, hi)
                for e, lo, hi in zip(rows["estimate"], rows["ci_low"], rows["ci_high"], strict=True)
            ],
            "fold change": [_number(2.0**e) for e in rows["estimate"]],
            "p": [_p(v) for v in rows["p_value"]],
            "q": [_p(v) for v in rows["q_value"]],
            f"q < {alpha:g}": ["yes" if s else "" for s in significant],
            "contrast": rows["contrast"],
            "patients": rows["n_patients"],
            "family": rows["family"],
            "covariance": rows["covariance"],
            "note": rows["note"],
        }
    )
    classes = ["significant" if s else "" for s in significant]
    return _page(
        "Primary statistics: MMRM arm difference", body + _table(table, row_classes=classes)
    )


def response_page(
    response: pd.DataFrame,
    *,
    labels: Mapping[str, str],
    ratios: Mapping[str, Sequence[str]],
) -> str:
    """Objective response rate per arm, and the early change of responders and non-responders."""
    title = "Response rate and early change"
    if response.empty:
        return _page(title, _note("No patients table was given: no outcome analysis."))
    rate = response[response["analysis"] == "objective_response_rate"]
    body = "<h2>Objective response rate</h2>\n" + _table(
        pd.DataFrame(
            {
                "arm": rate["arm"],
                "patients": rate["n"],
                "responders (CR or PR)": rate["n_responders"],
                "rate (CI)": [
                    _percent_interval(e, lo, hi)
                    for e, lo, hi in zip(
                        rate["estimate"], rate["ci_low"], rate["ci_high"], strict=True
                    )
                ],
            }
        )
    )
    early = response[response["analysis"] == "early_change"]
    body += "<h2>Early change: responders against non-responders, within each arm</h2>\n"
    body += _note(
        "Hodges-Lehmann shift of the log2 fold change from baseline at the response visit, "
        "responders minus non-responders, with its confidence interval; q-values within the "
        "secondary family. An association, not a cause."
    )
    body += _table(
        pd.DataFrame(
            {
                "compartment": early["compartment"],
                "feature": [_feature(f, labels, ratios) for f in early["population"]],
                "arm": early["arm"],
                "visit": early["visit"],
                "responders": early["n_responders"],
                "non-responders": early["n_non_responders"],
                "median responders": [_number(v) for v in early["median_log2fc_responders"]],
                "median non-responders": [
                    _number(v) for v in early["median_log2fc_non_responders"]
                ],
                "shift (CI)": [
                    _interval(e, lo, hi)
                    for e, lo, hi in zip(
                        early["estimate"], early["ci_low"], early["ci_high"], strict=True
                    )
                ],
                "p": [_p(v) for v in early["p_value"]],
                "q": [_p(v) for v in early["q_value"]],
                "note": early["note"],
            }
        )
    )
    return _page(title, body)


# ---------------------------------------------------------------------------------------------
# The run overview


def _flag_counts(values: pd.Series, *, limit: int = 40) -> pd.DataFrame:
    """Samples per flag (comma-separated flags of each sample), most frequent first."""
    flags = values.fillna("").astype(str).str.split(",").explode().str.strip()
    flags = flags[flags != ""]
    counts = flags.groupby(flags).size().sort_values(ascending=False, kind="stable")
    table = pd.DataFrame({"flag": counts.index, "samples": counts.to_numpy()})
    if len(table) > limit:
        rest = len(table) - limit
        table = table.head(limit)
        table.loc[len(table)] = [f"... and {rest} other flags (results/qc/samples.tsv)", None]
    return table


def _samples_section(qc: pd.DataFrame) -> str:
    counts = qc["status"].value_counts()
    body = "<h2>Samples</h2>\n" + _note(
        f"{len(qc)} samples in the sample sheet, of {qc['patient_id'].nunique()} patients: "
        + ", ".join(f"{counts.get(s, 0)} {s}" for s in ("ok", "flagged", "excluded"))
        + "."
    )
    status = qc.groupby("status").agg(
        samples=("sample_id", "size"), patients=("patient_id", "nunique")
    )
    status = status.reindex([s for s in ("ok", "flagged", "excluded") if s in status.index])
    body += _table(status.reset_index())
    excluded = qc[qc["status"] == "excluded"]
    body += "<h2>Excluded samples (not counted), with the reason</h2>\n"
    columns = ["sample_id", "patient_id", "arm", "visit", "compartment", "batch", "message"]
    body += _table(excluded[[c for c in columns if c in qc]], empty="no sample was excluded")
    body += "<h2>Flags of counted samples</h2>\n"
    body += _note(
        "Each flag with the number of samples carrying it (the flags are explained with the "
        "sample QC table)."
    )
    flagged = qc[qc["status"] != "excluded"]
    flag_columns = [c for c in ("flags", "qc_flags") if c in qc]
    joined = flagged[flag_columns].fillna("").astype(str).agg(",".join, axis=1)
    return body + _table(_flag_counts(joined), empty="no flag")


def _clinical_order(sheet: pd.DataFrame) -> list[str]:
    """Visits by cycle, then day (as the sheet gives them)."""
    visits = sheet.drop_duplicates("visit")[["visit", "cycle", "day"]]
    return list(visits.sort_values(["cycle", "day", "visit"], kind="stable")["visit"])


def _patients_section(qc: pd.DataFrame, sheet: pd.DataFrame, arms: Sequence[str]) -> str:
    """Patients with a counted sample per compartment, arm and visit (and those excluded)."""
    body = "<h2>Patients per arm and visit</h2>\n"
    body += _note(
        "Patients with a counted sample (ok or flagged) at each visit; '+ n excluded' counts "
        "patients whose only sample there was excluded."
    )
    visits = _clinical_order(sheet)
    order = [a for a in arms if a in set(qc["arm"])] + sorted(set(qc["arm"]) - set(arms))
    counted = qc[qc["status"] != "excluded"]
    for compartment in sorted(set(qc["compartment"])):
        here = qc[qc["compartment"] == compartment]
        done = counted[counted["compartment"] == compartment]
        shown = [v for v in visits if v in set(here["visit"])]
        rows = []
        for arm in order:
            line = {"arm": arm}
            for visit in shown:
                at = here[(here["arm"] == arm) & (here["visit"] == visit)]
                n = done[(done["arm"] == arm) & (done["visit"] == visit)]["patient_id"].nunique()
                lost = at["patient_id"].nunique() - n
                line[visit] = f"{n} + {lost} excluded" if lost else n
            line["patients"] = here[here["arm"] == arm]["patient_id"].nunique()
            rows.append(line)
        body += f"<h3>{html.escape(str(compartment))}</h3>\n" + _table(pd.DataFrame(rows))
    return body


def _relative_paths(value: object) -> object:
    """``value`` (a config) with every absolute file path shown relative to the working folder."""
    if isinstance(value, dict):
        return {key: _relative_paths(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_relative_paths(item) for item in value]
    return _shown_path(value) if isinstance(value, str) else value


def _provenance_section(provenance: Mapping) -> str:
    """Inputs with their sha256, package versions and the whole configuration of the run."""
    import yaml

    config = _relative_paths(json.loads(provenance.get("config_json", "{}") or "{}"))
    body = "<h2>Inputs</h2>\n"
    sheet = provenance.get("sample_sheet_sha256", "")
    inputs = [("sample sheet", config.get("samples", ""), sheet)]
    paths = provenance.get("strategy_path", {}) or {}
    for panel, digest in (provenance.get("strategy_sha256", {}) or {}).items():
        inputs.append(
            (f"gating strategy of panel {panel}", _shown_path(paths.get(panel, "")), digest)
        )
    body += _table(pd.DataFrame(inputs, columns=["input", "file", "sha256"]))
    versions = provenance.get("versions", {}) or {}
    body += "<h2>Versions</h2>\n" + _table(
        pd.DataFrame({"package": list(versions), "version": [str(v) for v in versions.values()]})
    )
    body += "<h2>Configuration</h2>\n"
    body += _note("The whole configuration this run used, every default filled in.")
    text = yaml.safe_dump(config, sort_keys=False, allow_unicode=True, width=100)
    return body + f"<pre>{html.escape(text)}</pre>\n"


def overview_page(
    qc: pd.DataFrame, sheet: pd.DataFrame, provenance: Mapping, *, arms: Sequence[str]
) -> str:
    """The run overview: samples, patients per arm and visit, inputs, versions, configuration."""
    body = (
        _samples_section(qc) + _patients_section(qc, sheet, arms) + _provenance_section(provenance)
    )
    return _page("Run overview", body)
