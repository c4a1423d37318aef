"""The workflow configuration, checked once against its schema.

The schema ``cytotrial/schemas/config.schema.yaml`` (package data) is the one place where keys, their
defaults, allowed values and descriptions live: :func:`check_config` validates a config against it and
fills the defaults, :func:`config_reference` writes ``config/README.md`` from it. Library functions take
the resolved values and hold no defaults of their own.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Mapping
from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError

__all__ = [
    "check_config",
    "check_section",
    "config_problems",
    "config_reference",
    "defaults",
    "diagnose_config",
    "load_schema",
    "population_model",
    "reported_populations",
    "resolve_config",
    "schema_path",
]

_SCHEMAS = ("config", "samples", "patients")


def schema_path(name: str) -> Path:
    """Path of a schema shipped with the package: ``config``, ``samples`` or ``patients``."""
    if name not in _SCHEMAS:
        raise ValueError(f"no schema {name!r}; schemas: {', '.join(_SCHEMAS)}")
    return Path(str(files("cytotrial") / "schemas" / f"{name}.schema.yaml"))


@functools.cache
def _schema(name: str) -> dict:
    with open(schema_path(name), encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def load_schema(name: str) -> dict:
    """A schema as a mapping (a fresh copy: callers may change it)."""
    return copy.deepcopy(_schema(name))


def _resolve_ref(spec: Mapping, root: Mapping) -> Mapping:
    ref = spec.get("$ref") if isinstance(spec, Mapping) else None
    if not ref:
        return spec
    node: Any = root
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def _fill_defaults(instance: Any, spec: Mapping, root: Mapping) -> Any:
    """``instance`` with the schema's defaults filled in, at every level (a new object)."""
    spec = _resolve_ref(spec, root)
    if not isinstance(instance, Mapping) or spec.get("type") != "object":
        return copy.deepcopy(instance)
    result = {key: copy.deepcopy(value) for key, value in instance.items()}
    properties = spec.get("properties", {})
    for key, sub in properties.items():
        if key not in result and "default" in sub:
            result[key] = copy.deepcopy(sub["default"])
    for key, value in list(result.items()):
        sub = properties.get(key, spec.get("additionalProperties"))
        if isinstance(sub, Mapping):
            result[key] = _fill_defaults(value, sub, root)
    return result


def defaults(section: str | None = None) -> dict[str, Any]:
    """The default config (or one top-level section of it), as the schema gives it."""
    schema = _schema("config")
    resolved = _fill_defaults({}, schema, schema)
    if section is None:
        return resolved
    if section not in schema["properties"]:
        raise KeyError(section)
    return _fill_defaults(resolved.get(section, {}), schema["properties"][section], schema)


def resolve_config(config: Mapping) -> dict[str, Any]:
    """A copy of ``config`` with every default of the schema filled in (no checks)."""
    schema = _schema("config")
    return _fill_defaults(dict(config), schema, schema)


def diagnose_config(
    config: Mapping, *, base: Path | None = None
) -> tuple[list[str], dict[str, Any] | None]:
    """Every problem of a workflow config (one line each) and the config as far as it is usable.

    The schema's problems come first (types, allowed values, unknown keys at every level, each
    with the nearest known key); the checks a schema cannot make follow, on the config with the
    faulty keys and values taken out, so one run names every problem.

    Parameters
    ----------
    config
        The loaded config.
    base
        Folder relative paths are relative to (the working directory by default).

    Returns
    -------
    tuple
        The problems, and the usable config with its defaults filled in as :func:`check_config`
        returns it (``None`` when too much is wrong to check further: a required top-level key
        missing, or not a mapping).
    """
    from ._schema_check import (
        kept_values,
        said_already,
        schema_errors,
        schema_messages,
        without_faults,
    )

    if not isinstance(config, Mapping):
        return ["config: must be a mapping of keys; see config/README.md"], None
    schema = _schema("config")
    errors = schema_errors(dict(config), schema)
    problems = schema_messages(errors)
    usable, later = without_faults(config, schema) if errors else (dict(config), [])
    problems += [line for line in schema_messages(later) if line not in problems]
    if usable is None:
        return problems, None
    kept = kept_values(errors + later)
    problems += [p for p in _checks(usable, base=Path(base or ".")) if not said_already(p, kept)]
    return problems, _with_population_defaults(usable)


def config_problems(config: Mapping, *, base: Path | None = None) -> list[str]:
    """Every problem of a workflow config, one line each (empty when it is fine).

    Checks the schema (types, allowed values, unknown keys) and what a schema cannot: the strategy
    files exist, the reference arm is one of the arms, a compensation matrix file exists, the arm
    colours are colours, a channel name belongs to one marker, the references between populations.
    See :func:`diagnose_config`.

    Parameters
    ----------
    config
        The loaded config.
    base
        Folder relative paths are relative to (the working directory by default).
    """
    return diagnose_config(config, base=base)[0]


def _checks(raw: Mapping, *, base: Path) -> list[str]:
    """What a schema cannot check, on a config that passes the schema."""
    config = resolve_config(raw)
    problems = []
    for panel, spec in config["strategies"].items():
        path = Path(spec["strategy"])
        if not (path if path.is_absolute() else base / path).is_file():
            problems.append(
                f"config strategies.{panel}.strategy: file {spec['strategy']} not found"
            )
    arms = list(config["arms"])
    reference = config["analysis"]["reference_arm"]
    if reference and reference not in arms:
        problems.append(
            f"config analysis.reference_arm: {reference!r} is not one of the arms ({', '.join(arms)})"
        )
    problems += _colour_problems(config["arms"])
    problems += _alias_problems(config["panels"])
    problems += _population_problems(config, raw)
    problems += _measure_problems(_with_population_defaults(raw), raw)
    compensation = config["gating"]["compensation"]
    if (
        str(compensation).lower() != "fcs"
        and not (base / compensation).is_file()
        and not Path(compensation).is_file()
    ):
        problems.append(
            f"config gating.compensation: matrix file {compensation} not found (or write fcs)"
        )
    return problems


def _colour_problems(arms: Mapping[str, str]) -> list[str]:
    """Each arm's colour is one matplotlib draws (a name, ``#rrggbb``, ``C0`` ...)."""
    from matplotlib.colors import is_color_like

    return [
        f"config arms.{arm}: {colour!r} is not a colour; give a colour name (red), "
        "#rrggbb or any matplotlib colour"
        for arm, colour in arms.items()
        if not is_color_like(colour)
    ]


def _alias_problems(panels: Mapping[str, Any]) -> list[str]:
    """A channel name listed under two markers (matching ignores case and spacing)."""
    owner: dict[str, str] = {}
    problems = []
    for marker, names in panels.items():
        names = [names] if isinstance(names, str) else list(names or [])
        written = {" ".join(str(n).split()).casefold(): str(n) for n in reversed([marker, *names])}
        for key, name in written.items():
            if key in owner and owner[key] != marker:
                problems.append(
                    f"config panels: the name {name!r} is listed under both {owner[key]!r} and "
                    f"{marker!r}; a channel name may belong to one marker only"
                )
            owner.setdefault(key, marker)
    return problems


def _measure_problems(config: Mapping, raw: Mapping) -> list[str]:
    """``per_ul`` needs the population ``lymphocytes_per_ul`` counts (``absolute.reference``)."""
    if config["absolute"]["reference"]:
        return []
    given = "is empty" if "reference" in (raw.get("absolute") or {}) else "is not set"
    return [
        f"config analysis.measure.{compartment}: per_ul needs absolute.reference (the population "
        f"the sheet's lymphocytes_per_ul counts), which {given}; set it or use another measure"
        for compartment, measure in config["analysis"]["measure"].items()
        if measure == "per_ul"
    ]


def _with_population_defaults(raw: Mapping) -> dict[str, Any]:
    """The config with defaults filled; defaults naming populations nobody reports are dropped."""
    resolved = resolve_config(raw)
    reported = set(reported_populations(resolved))
    if "frequencies" not in raw:
        resolved["frequencies"]["of"] = [r for r in resolved["frequencies"]["of"] if r in reported]
    if (
        "reference" not in (raw.get("absolute") or {})
        and resolved["absolute"]["reference"] not in reported
    ):
        resolved["absolute"]["reference"] = ""
    return resolved


def check_config(config: Mapping, *, base: Path | None = None) -> dict[str, Any]:
    """The config with its defaults filled in, or a ConfigError listing every problem, one per line.

    Defaults that name a population the strategies do not report (``frequencies.of: [live]``,
    ``absolute.reference: live``) are dropped rather than failing a config that never asked for them.
    """
    problems, resolved = diagnose_config(config, base=base)
    if problems or resolved is None:
        raise ConfigError("\n".join(problems))
    return resolved


# ------------------------------------------------------------------------------------------------
# populations: the user's names, Boolean definitions, ratios, MFIs


def reported_populations(config: Mapping) -> list[str]:
    """The reported populations in output order.

    The keys of top-level ``populations:`` first, then every other name mapped under any
    ``strategies.<panel>.populations``, in order of first appearance (panels in config order).
    """
    names = [str(n) for n in (config.get("populations") or {})]
    for spec in (config.get("strategies") or {}).values():
        for name in spec.get("populations") or {}:
            if name not in names:
                names.append(str(name))
    return names


def population_model(config: Mapping) -> dict[str, dict[str, Any]]:
    """Per reported population: its label, Boolean definition, parent override and gates.

    Returns
    -------
    dict
        ``{name: {"label", "boolean" (parsed tree or None), "parent" (override or None),
        "gates" (panel -> gate name or path)}}`` in output order.
    """
    from ._boolean import parse

    defined = config.get("populations") or {}
    model = {}
    for name in reported_populations(config):
        spec = defined.get(name) or {}
        model[name] = {
            "label": spec.get("label") or name,
            "boolean": parse(spec["boolean"]) if spec.get("boolean") else None,
            "parent": spec.get("parent") or None,
            "gates": {
                panel: str(strategy["populations"][name])
                for panel, strategy in (config.get("strategies") or {}).items()
                if name in (strategy.get("populations") or {})
            },
        }
    return model


def _boolean_problems(config: Mapping, reported: list[str]) -> list[str]:
    from ._boolean import BooleanSyntaxError, names, parse

    problems, graph = [], {}
    for name, spec in (config.get("populations") or {}).items():
        expression = (spec or {}).get("boolean")
        mapped = [
            p for p, s in config["strategies"].items() if name in (s.get("populations") or {})
        ]
        key = f"config populations.{name}"
        if expression and mapped:
            problems.append(
                f"{key}: defined both as a boolean and as a gate of strategies.{mapped[0]}; keep one"
            )
        if not expression and not mapped:
            problems.append(
                f"{key}: no strategies.<panel>.populations maps it to a gate and it has no boolean"
            )
        if not expression:
            continue
        try:
            tree = parse(expression)
        except BooleanSyntaxError as error:
            problems.append(
                f"{key}.boolean: {error} (use population names with and, or, not, parentheses)"
            )
            continue
        unknown = [n for n in names(tree) if n not in reported]
        if unknown:
            problems.append(f"{key}.boolean: {', '.join(unknown)} is not a reported population")
        graph[name] = names(tree)
    for name in graph:
        seen, stack = set(), list(graph[name])
        while stack:
            current = stack.pop()
            if current == name:
                problems.append(
                    f"config populations.{name}.boolean: refers to itself (through {current})"
                )
                break
            if current not in seen:
                seen.add(current)
                stack += graph.get(current, [])
    return problems


def _population_problems(config: Mapping, raw: Mapping) -> list[str]:
    """References between populations, ratios, MFIs, references and analysed features."""
    reported = reported_populations(config)
    known = set(reported)
    problems = _boolean_problems(config, reported)

    def need(key: str, name: str, what: str = "a reported population") -> None:
        if name not in known:
            problems.append(
                f"config {key}: {name!r} is not {what} ({', '.join(reported) or 'none'})"
            )

    for name, spec in (config.get("populations") or {}).items():
        if (spec or {}).get("parent"):
            need(f"populations.{name}.parent", spec["parent"])
    for name, (numerator, denominator) in config["ratios"].items():
        need(f"ratios.{name}", numerator)
        need(f"ratios.{name}", denominator)
        if name in known:
            problems.append(f"config ratios.{name}: the name is already a population's")
    if "frequencies" in raw:
        for ref in config["frequencies"]["of"]:
            need("frequencies.of", ref)
    if (raw.get("absolute") or {}).get("reference"):
        need("absolute.reference", config["absolute"]["reference"])
    for name in config["mfi"]["markers"]:
        need(f"mfi.markers.{name}", name)
    for name in config["qc"]["min_events"]:
        need(f"qc.min_events.{name}", name)
    for name in (config.get("events") or {}).get("labels") or []:
        need("events.labels", name)
    mfi = {f"{p}:{m}" for p, markers in config["mfi"]["markers"].items() for m in markers}
    features = known | set(config["ratios"]) | mfi
    for feature in config["analysis"]["populations"]:
        if feature not in features:
            problems.append(
                f"config analysis.populations: {feature!r} is not a reported population, a ratio "
                "or an MFI of mfi.markers (<population>:<marker>)"
            )
    analysed = config["analysis"]["populations"] or sorted(features)
    for feature in config["analysis"]["primary"]["populations"]:
        if feature not in analysed:
            where = "in analysis.populations" if config["analysis"]["populations"] else "analysed"
            problems.append(
                f"config analysis.primary.populations: {feature!r} is not {where}; the primary "
                "family holds analysed features only"
            )
    refs = (
        set(config["frequencies"]["of"])
        if "frequencies" in raw
        else set(config["frequencies"]["of"]) & known
    )
    for compartment, measure in config["analysis"]["measure"].items():
        if measure.startswith("freq_") and measure != "freq_parent" and measure[5:] not in refs:
            problems.append(
                f"config analysis.measure.{compartment}: {measure} needs {measure[5:]!r} in frequencies.of"
            )
    return problems


def check_section(name: str, value: Mapping | None) -> dict[str, Any]:
    """One top-level section (e.g. ``analysis``) checked against the schema, with its defaults filled in.

    For library users who call a step directly; the workflow checks the whole config once instead.

    Raises
    ------
    ConfigError
        One line per problem, naming the key.
    """
    schema = _schema("config")
    if name not in schema["properties"]:
        raise KeyError(name)
    if value is not None and not isinstance(value, Mapping):
        raise ConfigError(f"config {name}: must be a mapping of options; see config/README.md")
    from ._schema_check import schema_errors, schema_messages

    spec = {**schema["properties"][name], "$defs": schema["$defs"]}
    problems = schema_messages(schema_errors(dict(value or {}), spec), prefix=(name,))
    if problems:
        raise ConfigError("\n".join(problems))
    return _fill_defaults(dict(value or {}), schema["properties"][name], schema)


# ------------------------------------------------------------------------------------------------
# config/README.md, written from the schemas


def _format_default(value: Any) -> str:
    if value == "" or value is None:
        return '`""`'
    if isinstance(value, Mapping):
        if not value:
            return "-"
        return ", ".join(f"`{k}: {_format_default(v).strip('`')}`" for k, v in value.items())
    if isinstance(value, list):
        return "`" + ", ".join(str(v) for v in value) + "`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, (int, float)):
        return str(value)
    return f"`{value}`"


def _key_rows(spec: Mapping, root: Mapping, prefix: str) -> list[tuple[str, str, str]]:
    spec = _resolve_ref(spec, root)
    rows = []
    properties = spec.get("properties", {})
    for name, sub in properties.items():
        sub = _resolve_ref(sub, root)
        key = f"{prefix}{name}"
        nested = sub.get("type") == "object" and (
            sub.get("properties") or isinstance(sub.get("additionalProperties"), Mapping)
        )
        if nested and sub.get("properties") and "x-placeholder" not in sub:
            rows += _key_rows(sub, root, key + ".")
            continue
        default = sub.get("default", "-")
        if sub.get("type") == "object" and "default" in sub:
            default = _fill_defaults(sub["default"], sub, root)
        default = "-" if default == "-" else _format_default(default)
        placeholder = sub.get("x-placeholder")
        if placeholder and sub.get("additionalProperties", {}).get("type") == "object":
            rows += _key_rows(sub["additionalProperties"], root, f"{key}.<{placeholder}>.")
            continue
        shown = f"{key}.<{placeholder}>" if placeholder else key
        rows.append((shown, default, " ".join(sub.get("description", "").split())))
    return rows


def _allowed(spec: Mapping) -> str:
    """What a column allows, in words: its values, or its type and bounds."""
    values = [v for v in spec.get("enum", []) if v is not None]
    if values:
        return " One of " + ", ".join(f"`{v}`" for v in values) + "."
    kinds = spec.get("type", [])
    kinds = [k for k in ([kinds] if isinstance(kinds, str) else kinds) if k != "null"]
    if kinds in (["integer"], ["number"]) and "minimum" in spec:
        return f" {kinds[0].capitalize()} >= {spec['minimum']}."
    return ""


def _column_rows(name: str) -> list[tuple[str, str, str]]:
    schema = _schema(name)
    required = set(schema.get("required", []))
    return [
        (
            column,
            "yes" if column in required else "no",
            " ".join(spec.get("description", "").split()) + _allowed(spec),
        )
        for column, spec in schema["properties"].items()
    ]


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]], *, code_first: bool = True) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    for row in rows:
        cells = [f"`{row[0]}`" if code_first else row[0], *row[1:]]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


_POPULATIONS_HOWTO = """## Your populations, in a few lines each

Report any gate of your strategy under a name you choose (gate name as FlowJo shows it, or its path):

```yaml
strategies:
  blood:
    strategy: gating/blood.wsp
    populations:
      cd8: "CD8+"                       # a gate name that is unique in the strategy
      b_cells: "Lymphocytes/CD19+"      # or its path
```

A Boolean population over other populations of the same panel:

```yaml
populations:
  cd4_conv: {boolean: "cd4 and not treg", label: "Conventional CD4"}
```

A ratio of two populations' counts, analysed like a population:

```yaml
ratios:
  cd8_treg: [cd8, treg]
```

A median fluorescence intensity, reported in `results/counts/mfi.tsv` and analysed as `cd8:Ki67`:

```yaml
mfi:
  markers:
    cd8: [Ki67]
```
"""


def config_reference() -> str:
    """The text of ``config/README.md``: every key, sheet column and patients column, from the schemas."""
    schema = _schema("config")
    parts = [
        "# Configuring cytotrial",
        "",
        "<!-- Written by `cytotrial config-docs` from the package's schemas; edit the schemas, not this file. -->",
        "",
        "`config/config.yaml` is the default configuration: it runs the embedded demo trial. To analyse your",
        "own trial, copy it, point `samples:` at your sample sheet and `strategies:` at your gating, and run",
        "`snakemake --cores 2 --configfile my_config.yaml`. Every key is checked once, before any work,",
        "against the schema `cytotrial/schemas/config.schema.yaml`, which also gives each key's default; an",
        "unknown key or a bad value stops the run with one line naming the key.",
        "",
        "## Keys",
        "",
        _table(("key", "default", "what it does"), _key_rows(schema, schema, "")),
        "",
        _POPULATIONS_HOWTO,
        "Runtime settings (cores, memory, cluster partitions) are not analysis parameters: they live in the",
        "profiles `profiles/default` (used by a plain `snakemake`) and `profiles/slurm`.",
        "",
        "## The sample sheet",
        "",
        "Tab-separated, a header row, one row per FCS file.",
        "",
        _table(("column", "required", "what it holds"), _column_rows("samples")),
        "",
        "Every problem is reported at once, one line each, naming the row (the header is row 1), the column",
        "and what is allowed.",
        "",
        "## The patients table (optional)",
        "",
        _table(("column", "required", "what it holds"), _column_rows("patients")),
        "",
    ]
    return "\n".join(parts)
