"""Reading inputs: FCS files, sample sheets and patients tables, gating strategies, channel names."""

from ..config import schema_path
from ._compensation import read_compensation
from ._fcs import FCSData, channel_index, inspect_fcs, parse_spillover, read_fcs
from ._files import file_sha256
from ._panels import alias_groups, panel_marker, resolve_channels, shown_channel_names
from ._readahead import ReadAhead
from ._sheet import SAMPLE_COLUMNS, read_patients, read_sample_sheet, sheet_problems
from ._strategy import Gate, Strategy, join_gate_path, load_strategy, split_gate_path

__all__ = [
    "SAMPLE_COLUMNS",
    "FCSData",
    "Gate",
    "ReadAhead",
    "Strategy",
    "alias_groups",
    "channel_index",
    "file_sha256",
    "inspect_fcs",
    "join_gate_path",
    "load_strategy",
    "panel_marker",
    "parse_spillover",
    "read_compensation",
    "read_fcs",
    "read_patients",
    "read_sample_sheet",
    "resolve_channels",
    "schema_path",
    "sheet_problems",
    "shown_channel_names",
    "split_gate_path",
]
