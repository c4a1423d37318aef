"""A rule's job imports only what its rule calls: the packages' names are imported when first used."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

HEAVY = ("scipy.stats", "matplotlib", "seaborn", "flowkit", "scanpy", "statsmodels", "lifelines")


def _loaded_after(statement: str) -> set[str]:
    """The heavy modules a fresh interpreter has loaded after ``statement``."""
    probe = f"import sys\n{statement}\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(done.stdout.split())


@pytest.mark.parametrize(
    "statement",
    [
        "from cytotrial.rules import run_gate_batch",
        "from cytotrial.rules import run_qc_table",
        "from cytotrial.rules import run_review_pages",
        "from cytotrial.rules import REVIEW_PDF, figure_page, report_entry, review_report_entry",
        "from cytotrial.rules import REPORT_OVERVIEW, REPORT_TABLES, run_report_overview",
    ],
)
def test_a_rules_job_loads_no_library_it_does_not_call(statement):
    assert _loaded_after(statement) == set()


def test_the_review_draws_without_loading_the_trial_figures_libraries():
    loaded = _loaded_after("from cytotrial.pl import ReviewHeader, draw_sample_review")
    assert loaded == {"matplotlib"}  # neither seaborn nor SciPy's statistics


def test_the_probe_sees_a_library_a_job_does_load():
    assert "matplotlib" in _loaded_after("from cytotrial.pl import FIGURES")
    assert "scipy.stats" in _loaded_after("from cytotrial.tl import mmrm")


@pytest.mark.parametrize("package", ["cytotrial.rules", "cytotrial.tl", "cytotrial.pl"])
def test_every_public_name_resolves_and_an_unknown_one_is_an_attribute_error(package):
    module = importlib.import_module(package)
    for name in module.__all__:
        assert getattr(module, name) is not None, name
    assert sorted(dir(module)) == sorted(module.__all__)
    with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
        module.not_a_name  # noqa: B018
