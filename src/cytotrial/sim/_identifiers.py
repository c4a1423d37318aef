"""What a site leaves in a file's TEXT segment: identifying keywords, dates and times."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._panel import _EVENT_RATE

#: Substring of every identifying TEXT value written to the FCS files.
CANARY = "CANARY"

#: TEXT keywords whose values identify a person or site; each contains :data:`CANARY`.
IDENTIFYING_KEYWORDS: tuple[str, ...] = (
    "$SRC",
    "$OP",
    "$FIL",
    "$INST",
    "$COM",
    "$SMNO",
    "PATIENT ID",
)

_FIRST_NAMES = (
    "Jane", "John", "Maria", "Ahmed", "Wei", "Olga", "Pierre", "Aiko", "Carlos", "Fatima",
    "Lars", "Priya", "Tomas", "Grace", "Kofi", "Ingrid", "Mateo", "Yuki", "Sara", "Noah",
)  # fmt: skip
_LAST_NAMES = (
    "Doe", "Roe", "Smith", "Garcia", "Chen", "Ivanova", "Martin", "Tanaka", "Silva", "Khan",
    "Larsen", "Patel", "Novak", "Okafor", "Berg", "Rossi", "Kowalski", "Murphy", "Haddad", "Moreau",
)  # fmt: skip
_SITES = ("Northbridge", "Lakeside", "Riverside", "Hillcrest", "Westbay", "Eastgate")
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")


def _names(rng: np.random.Generator, n: int) -> list[tuple[str, str, int]]:
    """Made-up ``(first name, last name, number)`` of ``n`` people."""
    first = rng.integers(0, len(_FIRST_NAMES), n)
    last = rng.integers(0, len(_LAST_NAMES), n)
    number = rng.integers(0, 10000, n)
    return [(_FIRST_NAMES[f], _LAST_NAMES[s], int(k)) for f, s, k in zip(first, last, number)]


def _date(day_number: int) -> str:
    """FCS ``$DATE`` (``dd-MMM-yyyy``) of the day ``day_number`` days after 2019-01-01."""
    day = pd.Timestamp("2019-01-01") + pd.Timedelta(days=int(day_number))
    return f"{day.day:02d}-{_MONTHS[day.month - 1]}-{day.year}"


def _clock(seconds: float) -> str:
    """FCS ``$BTIM``/``$ETIM`` (``hh:mm:ss``) of ``seconds`` after midnight, modulo a day."""
    seconds = int(seconds) % 86400
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _site_keywords(
    rng: np.random.Generator,
    *,
    name: tuple[str, str, int],
    operator: tuple[str, str, int],
    site: str,
    visit: str,
    compartment: str,
    date_number: int,
    n_events: int,
) -> dict[str, str]:
    """TEXT keywords a site's cytometer and staff leave in one file (draws the start time)."""
    first, last, number = name
    record = f"{number:04d}{number * 7919 % 1000:03d}"  # a made-up hospital record number
    start = int(rng.integers(8 * 3600, 17 * 3600))
    return {
        "$CYT": "BD LSRFortessa",
        "$CYTSN": "H647800" + str(1 + (date_number // 365) % 3),
        "$SRC": f"{CANARY}-PATIENT-{first}-{last}-{number:04d}",
        "$OP": f"{CANARY}-OPERATOR-{operator[0]}-{operator[1]}",
        "$FIL": f"{CANARY}-{last}_{first}_{visit}_{compartment}.fcs",
        "$INST": f"{CANARY}-SITE-{site} Cancer Center",
        "$COM": f"{CANARY} {first} {last}, MRN {record}, {visit}",
        "$SMNO": f"{CANARY}-SPECIMEN-{last[:3].upper()}{number:04d}-{visit}",
        "PATIENT ID": f"{CANARY}-MRN-{record}",
        "$DATE": _date(date_number),
        "$BTIM": _clock(start),
        "$ETIM": _clock(start + n_events / _EVENT_RATE + 5),
        "CREATOR": "BD FACSDiva Software Version 8.0.1",
        "TUBE NAME": f"{compartment} panel",
        "APPLY COMPENSATION": "TRUE",
    }
