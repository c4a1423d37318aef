"""Shared test fixtures: the external reference data and small helpers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def _external_data_dir() -> Path:
    env = os.environ.get("CYTOTRIAL_EXTERNAL_DATA")
    if env:
        return Path(env)
    return PROJECT_ROOT.parent / "shared" / "data" / "external"


@pytest.fixture(scope="session")
def project_root() -> Path:
    return PROJECT_ROOT


@pytest.fixture(scope="session")
def external_data() -> Path:
    """The real reference data (GatingML suite, FlowJo workspaces, FCS variety), read in place.

    Under CI a missing folder is a failure, never a skip.
    """
    path = _external_data_dir()
    if not path.is_dir():
        message = (
            f"external reference data not found at {path}; set CYTOTRIAL_EXTERNAL_DATA "
            "or place shared/ beside the project"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path
