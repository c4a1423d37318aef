"""Packages whose public names are imported from their modules when first used.

A rule's job imports one function of a package: with every module of the package imported at
once, a job that counts cells would load SciPy's statistics, and every job pays for all of them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, namespace: dict[str, Any], exports: Mapping[str, str], public: Sequence[str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module ``__getattr__`` and ``__dir__`` of ``package`` (PEP 562).

    Parameters
    ----------
    package
        The package's ``__name__``.
    namespace
        The package's ``globals()``: a name imported once is kept there.
    exports
        Public name -> the module defining it, relative to the package (``"._gate"``).
    public
        The package's ``__all__``.
    """

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(public)

    return __getattr__, __dir__
