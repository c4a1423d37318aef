"""The workflow configuration: every problem named by its key, one line each."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import yaml

from .io._sheet import schema_path

__all__ = ["config_problems"]


def _key(path) -> str:
    return ".".join(str(p) for p in path) or "(top level)"


def config_problems(config: Mapping, *, base: Path | None = None) -> list[str]:
    """Every problem of a workflow config, one line each (empty when it is fine).

    Checks the schema in ``workflow/schemas/config.schema.yaml`` (types, allowed values, unknown
    keys) and what a schema cannot: the strategy files exist, the reference arm is one of the arms.

    Parameters
    ----------
    config
        The loaded config.
    base
        Folder relative paths are relative to (the working directory by default).
    """
    from jsonschema import Draft202012Validator

    with open(schema_path("config"), encoding="utf-8") as handle:
        schema = yaml.safe_load(handle)
    problems = []
    for error in sorted(
        Draft202012Validator(schema).iter_errors(dict(config)), key=lambda e: list(e.path)
    ):
        spec = error.schema if isinstance(error.schema, Mapping) else {}
        hint = f" ({spec['description']})" if spec.get("description") else ""
        problems.append(f"config {_key(error.path)}: {error.message}{hint}")
    if problems:
        return problems
    base = Path(base or ".")
    for panel, spec in config.get("strategies", {}).items():
        path = Path(spec["strategy"])
        if not (path if path.is_absolute() else base / path).is_file():
            problems.append(
                f"config strategies.{panel}.strategy: file {spec['strategy']} not found"
            )
    arms = list(config.get("arms") or {})
    reference = (config.get("analysis") or {}).get("reference_arm")
    if reference is not None and arms and reference not in arms:
        problems.append(
            f"config analysis.reference_arm: {reference!r} is not one of the arms ({', '.join(arms)})"
        )
    compensation = (config.get("gating") or {}).get("compensation", "fcs")
    if (
        str(compensation).lower() != "fcs"
        and not (base / compensation).is_file()
        and not Path(compensation).is_file()
    ):
        problems.append(
            f"config gating.compensation: matrix file {compensation} not found (or write fcs)"
        )
    return problems
