"""The ``cytotrial`` command line: simulate, inspect, gate, bench."""

from ._main import main

__all__ = ["main"]
