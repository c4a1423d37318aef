"""No identifying keyword value and no absolute path of the analyst's machine in any output.

A canary is planted in every TEXT keyword of a small trial's FCS files: appended to every keyword a
file can carry without becoming unreadable (and as a keyword name of its own) in every file, and as
the malformed value of a technical keyword (`$TOT`, `$SPILLOVER`, `$PnE`, `$PnN`, `$PnS`, ...) in
one file each. The whole workflow runs, the report is built, and the canary is looked for in
results/, logs/, the report (its embedded files decoded) and Snakemake's records; then the project
folder is moved and run again, and neither of its absolute locations is found.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import re
import shutil
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import raw_keywords, run_snakemake
from cytotrial.cli import main

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "PHIQX"
#: Keywords that say how to read the DATA segment or which channel is which: a canary there makes
#: the file malformed, so each goes into one file of its own.
STRUCTURAL = re.compile(
    r"\$(BEGIN|END)(ANALYSIS|DATA|STEXT)|\$(BYTEORD|DATATYPE|MODE|NEXTDATA|PAR|TOT|TIMESTEP)"
    r"|\$?SPILL(OVER)?|\$P\d+[BENRGS]",
    re.IGNORECASE,
)
#: One file each: the keyword whose value becomes the canary.
MALFORMED = [
    "$TOT", "$PAR", "$SPILLOVER", "$DATATYPE", "$BYTEORD", "$MODE", "$TIMESTEP", "$NEXTDATA",
    "$BEGINDATA", "$P4E", "$P4B", "$P4R", "$P4G", "$P4N", "$P4S", "$P2N",
]  # fmt: skip
pytestmark = pytest.mark.e2e


# ---------------------------------------------------------------------------------------------
# FCS TEXT rewriting (straight on the bytes: HEADER, TEXT, then the DATA segment as it was)


def rewrite_text(path: Path, change: Callable[[dict[str, str]], dict[str, str]]) -> None:
    """Rewrite an FCS file's TEXT segment as ``change`` returns it; DATA is kept byte for byte.

    The new file is HEADER, TEXT, DATA (no ANALYSIS); the offsets in HEADER and ``$BEGINDATA``/
    ``$ENDDATA`` follow, unless ``change`` gives ``$BEGINDATA`` or ``$ENDDATA`` a value itself.
    """
    raw = path.read_bytes()
    begin, end = int(raw[26:34]), int(raw[34:42])
    data = raw[begin : end + 1]
    given = raw_keywords(path)
    keywords = change(dict(given))
    fixed = {
        key: keywords[key] != given.get(key)
        for key in ("$BEGINDATA", "$ENDDATA")
        if key in keywords
    }
    delimiter = "/"
    start = 58
    data_start = 0
    for _ in range(10):  # the offsets' own digits move DATA: settle them
        if not fixed.get("$BEGINDATA"):
            keywords["$BEGINDATA"] = str(data_start)
        if not fixed.get("$ENDDATA"):
            keywords["$ENDDATA"] = str(data_start + len(data) - 1)
        text = delimiter + "".join(
            f"{k.replace(delimiter, delimiter * 2)}{delimiter}"
            f"{v.replace(delimiter, delimiter * 2)}{delimiter}"
            for k, v in keywords.items()
        )
        encoded = text.encode("latin-1")
        if start + len(encoded) == data_start:
            break
        data_start = start + len(encoded)
    header = raw[:10] + b"".join(
        f"{n:>8}".encode()
        for n in (start, data_start - 1, data_start, data_start + len(data) - 1, 0, 0)
    )
    path.write_bytes(header + encoded + data)


def plant_readable(keywords: dict[str, str]) -> dict[str, str]:
    """The canary in every keyword a reader does not need, and as a keyword name of its own."""
    planted = {
        key: value if STRUCTURAL.fullmatch(key) else f"{value} {TOKEN}-{key.strip('$')}"
        for key, value in keywords.items()
    }
    planted[f"{TOKEN} SITE NOTE"] = f"{TOKEN} taken by nurse"
    return planted


def plant_malformed(keyword: str) -> Callable[[dict[str, str]], dict[str, str]]:
    def change(keywords: dict[str, str]) -> dict[str, str]:
        assert keyword in keywords, keyword
        return {**plant_readable(keywords), keyword: f"{TOKEN}-{keyword.strip('$')}"}

    return change


# ---------------------------------------------------------------------------------------------
# looking for a string in every output, embedded files decoded

_BASE64 = re.compile(rb"[A-Za-z0-9+/]{24,}={0,2}")
_PDF_STREAM = re.compile(rb"stream\r?\n(.*?)\r?\nendstream", re.DOTALL)


def _decoded(content: bytes) -> Iterator[bytes]:
    """The bytes, and what is encoded inside them.

    Base64 runs (the report's data URIs, Snakemake's records; one level of base64 in base64) and
    the compressed streams of a PDF, decoded.
    """
    yield content
    for match in _BASE64.finditer(content):
        try:
            inner = base64.b64decode(match.group(0), validate=True)
        except (binascii.Error, ValueError):
            continue
        yield inner
        for deeper in _BASE64.finditer(inner):
            try:
                yield base64.b64decode(deeper.group(0), validate=True)
            except (binascii.Error, ValueError):
                continue
    if content.startswith(b"%PDF"):
        for match in _PDF_STREAM.finditer(content):
            try:
                yield zlib.decompress(match.group(1))
            except zlib.error:
                continue
        yield _pdf_text(content)


def _pdf_text(content: bytes) -> bytes:
    """The text a PDF reader finds on every page (PDFium).

    An embedded font's glyph codes are not the characters: a PDF's bytes alone can hide a text
    drawn on its pages.
    """
    import pypdfium2

    document = pypdfium2.PdfDocument(content)
    try:
        return "\n".join(page.get_textpage().get_text_range() for page in document).encode()
    finally:
        document.close()


def files_under(project: Path, folders: Iterable[str]) -> Iterator[Path]:
    for folder in folders:
        for path in sorted((project / folder).rglob("*")):
            if path.is_file():
                yield path


def leaks(project: Path, needles: Iterable[str], folders: Iterable[str]) -> list[str]:
    """``file: needle`` for every needle found (case-insensitive) in a file or a file's name."""
    needles = [n.encode().lower() for n in needles]
    found = []
    for path in files_under(project, folders):
        names = [str(path.relative_to(project)).encode()]
        if ".snakemake/metadata" in path.as_posix():  # named by the base64 of an output's path
            with contextlib.suppress(binascii.Error, ValueError):
                names.append(base64.urlsafe_b64decode(path.name.encode()))
        for content in [*names, *_decoded(path.read_bytes())]:
            hit = next((n for n in needles if n in content.lower()), None)
            if hit is not None:
                found.append(f"{path.relative_to(project)}: {hit.decode()}")
                break
    return found


#: What the workflow writes, and Snakemake's records of its jobs.
SCANNED = ["results", "logs", "benchmarks", ".snakemake/metadata"]


# ---------------------------------------------------------------------------------------------
# the run


def make_project(root: Path) -> Path:
    """A project folder: the workflow, a small simulated trial in data/, paths relative."""
    root.mkdir(parents=True)
    shutil.copy(ROOT / "Snakefile", root / "Snakefile")
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for folder in ("workflow", "profiles", "config", "resources/gating"):
        shutil.copytree(ROOT / folder, root / folder, ignore=skip)
    arguments = ["--patients-per-arm", "4", "--events", "3000", "--tumor-events", "2000"]
    assert main(["simulate", "--out", str(root / "data"), *arguments, "--seed", "11"]) == 0
    config = yaml.safe_load((root / "config/config.yaml").read_text())
    config.pop("demo", None)
    config["samples"] = "data/samples.tsv"
    config["patients"] = "data/patients.tsv"
    config["gating"]["batch_size"] = 8
    config["events"]["max_events"] = 20000
    (root / "config/config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return root


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A project whose FCS files carry the canary, run whole (report included) where it was made.

    Returns the project and, per malformed keyword, the sample whose file carries it.
    """
    project = make_project(tmp_path_factory.mktemp("phi") / "trial")
    sheet = pd.read_csv(project / "data/samples.tsv", sep="\t", dtype=str)
    blood = sheet[sheet["panel"] == "blood"].reset_index(drop=True)
    malformed = dict(zip(MALFORMED, blood["sample_id"]))
    by_sample = dict(zip(sheet["sample_id"], sheet["fcs"]))
    for sample_id, fcs in by_sample.items():
        keyword = next((k for k, s in malformed.items() if s == sample_id), None)
        change = plant_readable if keyword is None else plant_malformed(keyword)
        rewrite_text(project / "data" / fcs, change)
    result = run_snakemake(project, check=False, in_place=True)
    (project / "run.stderr").write_text(result.stdout + result.stderr)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    run_snakemake(project, "--report", "results/report.html", in_place=True)
    return project, malformed


def test_the_canary_is_in_every_keyword_of_the_files(planted):
    project, malformed = planted
    sheet = pd.read_csv(project / "data/samples.tsv", sep="\t", dtype=str)
    for sample_id, fcs in zip(sheet["sample_id"], sheet["fcs"]):
        keywords = raw_keywords(project / "data" / fcs)
        assert f"{TOKEN} SITE NOTE" in keywords
        free = [k for k in keywords if not STRUCTURAL.fullmatch(k)]
        assert len(free) > 10 and all(TOKEN in keywords[k] for k in free), sample_id
    for keyword, sample_id in malformed.items():
        fcs = sheet.set_index("sample_id").at[sample_id, "fcs"]
        assert raw_keywords(project / "data" / fcs)[keyword].startswith(TOKEN), keyword


def test_no_keyword_value_reaches_any_output(planted):
    project, _ = planted
    assert (project / "results/report.html").stat().st_size > 100_000
    assert leaks(project, [TOKEN], [*SCANNED, ".snakemake/log"]) == []
    assert TOKEN not in (project / "run.stderr").read_text()


def test_files_with_a_readable_canary_are_gated(planted):
    """The canary outside the technical keywords changes nothing: those files are counted."""
    project, malformed = planted
    qc = pd.read_csv(project / "results/qc/samples.tsv", sep="\t", dtype=str, keep_default_na=False)
    readable = qc[~qc["sample_id"].isin(set(malformed.values()))]
    assert (readable["status"] != "excluded").all(), readable.loc[
        readable["status"] == "excluded", ["sample_id", "message"]
    ].to_string()


def test_a_moved_project_leaks_no_absolute_path(planted, tmp_path):
    """Run where it was made, moved elsewhere and run again: neither location is in any output."""
    project, _ = planted
    before = [str(project), str(project.resolve())]
    moved = tmp_path / "elsewhere" / "trial"
    moved.parent.mkdir()
    shutil.copytree(project, moved, symlinks=True)  # keeps modification times
    assert leaks(moved, before, SCANNED) == []
    # the moved project is complete: nothing to redo, and its report builds where it now is
    dry = run_snakemake(moved, "-n", in_place=True)
    assert "Nothing to be done" in dry.stdout + dry.stderr, (dry.stdout + dry.stderr)[-3000:]
    (moved / "results/report.html").unlink()
    run_snakemake(moved, "--report", "results/report.html", in_place=True)
    assert leaks(moved, [*before, str(moved), str(moved.resolve())], SCANNED) == []
