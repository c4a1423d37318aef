"""What the strategies' checks found, kept from the last run whose inputs were the same.

Loading the strategies (FlowKit, GatingML or a FlowJo workspace) is most of the seconds a run's
check takes before its first job. When nothing those checks read has changed since the last run,
their findings are read back instead: the key is the SHA-256 of the resolved config, the panels
checked, the folder relative paths start from, the bytes of every file the checks read (each
panel's strategy, the compensation matrix, the sample sheet a FlowJo sample group is matched
against) and the package's own source files (name, size and modification time), so that an edit
to any of them checks afresh. Only findings without an error are kept: a run with a problem always
checks again, and says every problem.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .._stamp import code_stamp, read_keyed, write_keyed
from ..io._files import file_sha256
from ._strategies import located

__all__ = ["findings_key", "read_findings", "write_findings"]


def _file_digest(path: Path) -> str | None:
    try:
        return file_sha256(path)
    except OSError:
        return None  # said by the config's own check


def findings_key(config: Mapping, *, base: Path, panels: Iterable[str] | None) -> str:
    """The SHA-256 of everything the strategies' checks of ``config`` read (module docstring)."""
    read = [spec["strategy"] for spec in (config.get("strategies") or {}).values()]
    compensation = str((config.get("gating") or {}).get("compensation", "fcs"))
    if compensation.lower() != "fcs":
        read.append(compensation)
    if config.get("samples"):
        read.append(config["samples"])
    files = {str(located(name, base)): _file_digest(located(name, base)) for name in read}
    content = {
        "config": config,
        "panels": None if panels is None else list(panels),
        "base": str(base.resolve()),
        "files": files,
        "code": code_stamp(),
    }
    text = json.dumps(content, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def read_findings(cache: Path, key: str) -> dict[str, list[str]] | None:
    """The findings kept under ``key``, or ``None`` (none kept, another key, unreadable)."""
    findings = read_keyed(cache, key)
    return findings if isinstance(findings, dict) else None


def write_findings(cache: Path, key: str, findings: Mapping[str, Any]) -> None:
    """Keep ``findings`` under ``key``, replacing what was kept (see :func:`write_keyed`)."""
    write_keyed(cache, key, dict(findings))
