"""cytotrial: flow cytometry of immunotherapy trials, from FCS files to what treatment did."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("cytotrial")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0+unknown"

__all__ = ["__version__"]
