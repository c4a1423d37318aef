"""A config against its JSON schema: one line per problem, and the config without what is wrong.

Each unknown key gets its own line with the nearest known key (``'sample' was unexpected; did you
mean 'samples'?``), so a typo never passes for a key that is not there. The config with every
faulty key or value taken out (:func:`without_faults`) lets the checks that follow the schema (cross
references, strategies, the sample sheet) still run, so a user sees every problem at once.
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jsonschema.exceptions import ValidationError

__all__ = ["kept_values", "said_already", "schema_errors", "schema_messages", "without_faults"]

_ROUNDS = 3  # taking out a faulty value can leave a parent incomplete; give up after this many
# Violations of a value of the right type (out of range, not an allowed word): the value stays in
# the config the later checks see, so what refers to it is not reported missing.
_KEPT = {
    "pattern", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "enum", "uniqueItems",
    "multipleOf",
}  # fmt: skip


def _key(path) -> str:
    return ".".join(str(p) for p in path) or "(top level)"


def _first_sentence(text: str) -> str:
    """The first sentence of a description, on one line (the hint of a one-line message)."""
    text = " ".join(text.split())
    end = text.find(". ")
    return text if end < 0 else text[: end + 1]


def _sort_key(path) -> list[tuple[int, str]]:
    return [(0, f"{p:09d}") if isinstance(p, int) else (1, str(p)) for p in path]


def schema_errors(instance: Any, schema: Mapping) -> list[ValidationError]:
    """Every schema violation of ``instance``, in key order."""
    from jsonschema import Draft202012Validator

    errors = Draft202012Validator(schema).iter_errors(instance)
    return sorted(errors, key=lambda e: _sort_key(e.path))


def _kept(error: ValidationError) -> bool:
    return error.validator in _KEPT and "propertyNames" not in error.schema_path


def kept_values(errors: list[ValidationError]) -> list[tuple[str, str]]:
    """``(key, repr(value))`` of each faulty value left in the config the later checks see."""
    return [(_key(e.path), repr(e.instance)) for e in errors if _kept(e)]


def said_already(line: str, kept: list[tuple[str, str]]) -> bool:
    """Whether a later check's line is about a value whose schema problem is said already."""
    for key, value in kept:
        parts = key.split(".")
        prefixes = {".".join(parts[:n]) for n in range(1, len(parts) + 1)}
        if any(line.startswith(f"config {p}:") for p in prefixes) and value in line:
            return True
    return False


def _unexpected(error: ValidationError) -> list[str]:
    """The keys an ``additionalProperties: false`` error is about."""
    known = set((error.schema or {}).get("properties", {}))
    instance = error.instance if isinstance(error.instance, Mapping) else {}
    return [str(k) for k in instance if k not in known]


def _required_key(error: ValidationError) -> str:
    """The key a ``required`` error says is missing (jsonschema reports one key per error)."""
    instance = error.instance if isinstance(error.instance, Mapping) else {}
    absent = [key for key in error.validator_value if key not in instance]
    return next((key for key in absent if repr(key) in error.message), absent[0] if absent else "")


def _missing_required(errors: list[ValidationError]) -> dict[tuple, set[str]]:
    """Path -> the required keys missing there."""
    missing: dict[tuple, set[str]] = {}
    for error in errors:
        if error.validator == "required":
            missing.setdefault(tuple(error.path), set()).add(_required_key(error))
    return missing


def _unknown_key_line(where: str, name: str, known: list[str], required: set[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    line = f"config {where}: {name!r} was unexpected"
    if close:
        line += f"; did you mean {close[0]!r}?"
        if close[0] in required:
            line += f" ({close[0]!r} is a required property)"
    elif known:
        line += f"; keys here: {', '.join(known)}"
    else:
        line += "; no keys are allowed here"
    return line


def schema_messages(errors: list[ValidationError], *, prefix: tuple = ()) -> list[str]:
    """One line per problem: the key, what is wrong, and the key's description where it has one.

    An unknown key is one line naming the nearest known key; a required key that a misspelt key
    stands for is said on that key's line. ``prefix``: the path of the checked part of a config.
    """
    missing = _missing_required(errors)
    folded: set[tuple[tuple, str]] = set()
    lines: list[str] = []
    for error in errors:
        if error.validator != "additionalProperties":
            continue
        known = list((error.schema or {}).get("properties", {}))
        path = tuple(error.path)
        for name in _unexpected(error):
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
            if close and close[0] in missing.get(path, set()):
                folded.add((path, close[0]))
            where = _key([*prefix, *path])
            lines.append(_unknown_key_line(where, name, known, missing.get(path, set())))
    for error in errors:
        if error.validator == "additionalProperties":
            continue
        path = tuple(error.path)
        if error.validator == "required" and (path, _required_key(error)) in folded:
            continue
        spec = error.schema if isinstance(error.schema, Mapping) else {}
        described = (prefix or error.path) and spec.get("description")
        hint = f" ({_first_sentence(spec['description'])})" if described else ""
        message = error.message
        if error.validator == "pattern":  # a regular expression says little to a user
            message = f"{error.instance!r} is not allowed"
        lines.append(f"config {_key([*prefix, *error.path])}: {message}{hint}")
    return lines


def _renames(errors: list[ValidationError]) -> dict[tuple, tuple[str, str]]:
    """Misspelt keys: path of the key -> (its name, the nearest known key, which is absent)."""
    renames = {}
    for error in errors:
        if error.validator != "additionalProperties":
            continue
        known = list((error.schema or {}).get("properties", {}))
        present = set(error.instance) if isinstance(error.instance, Mapping) else set()
        path = tuple(error.path)
        taken: set[str] = set()
        for name in _unexpected(error):
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
            if close and close[0] not in present and close[0] not in taken:
                renames[(*path, name)] = (name, close[0])
                taken.add(close[0])
    return renames


def _faulty_paths(errors: list[ValidationError]) -> list[list] | None:
    """The paths of every faulty key or value; ``None`` when the whole config is at fault."""
    renamed = {tuple(path[:-1]) for path in _renames(errors)}
    paths: list[list] = []
    for error in errors:
        path = list(error.path)
        if error.validator == "additionalProperties":
            renames = _renames([error])
            paths += [[*path, n] for n in _unexpected(error) if (*path, n) not in renames]
        elif "propertyNames" in error.schema_path:
            paths.append([*path, error.instance])
        elif _kept(error):
            continue
        elif error.validator == "required" and tuple(path) in renamed:
            continue  # the misspelt key is read as the required one
        elif path:
            paths.append(path)
        else:
            return None
    return paths


def _node(config: Any, path: list | tuple) -> Any:
    node = config
    for part in path:
        in_mapping = isinstance(node, Mapping) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and part < len(node)
        if not (in_mapping or in_list):
            return None  # an ancestor is gone already
        node = node[part]
    return node


def _remove(config: Any, path: list) -> None:
    node = _node(config, path[:-1])
    if isinstance(node, dict):
        node.pop(path[-1], None)
    elif isinstance(node, list) and isinstance(path[-1], int) and path[-1] < len(node):
        del node[path[-1]]


def without_faults(config: Mapping, schema: Mapping) -> tuple[dict | None, list[ValidationError]]:
    """The config without what the schema refuses, and the problems found after renaming.

    Returns ``config`` with every key or value the schema refuses taken out (or ``None``), and the
    problems found only once misspelt keys were read as meant. A misspelt key is read as the nearest known key where that key is absent (``sample`` as
    ``samples``), so what follows checks what the user meant. ``None`` when the config as a whole
    is at fault (a required top-level key is missing, it is not a mapping) or when taking faulty
    values out does not leave a valid config.
    """
    cleaned: Any = copy.deepcopy(dict(config))
    later: list[ValidationError] = []
    for round_ in range(_ROUNDS):
        errors = schema_errors(cleaned, schema)
        if round_:
            later += errors  # the caller leaves out what round 0 said
        errors = [e for e in errors if not _kept(e)]
        if not errors:
            return cleaned, later
        paths = _faulty_paths(errors)
        if paths is None:
            return None, later
        for path, (name, intended) in _renames(errors).items():
            parent = _node(cleaned, path[:-1])
            if isinstance(parent, dict) and name in parent:
                parent[intended] = parent.pop(name)
        for path in sorted(paths, key=_sort_key, reverse=True):  # list items from the end
            _remove(cleaned, path)
    left = [e for e in schema_errors(cleaned, schema) if not _kept(e)]
    return (None if left else cleaned), later
