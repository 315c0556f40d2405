"""``docs/specs.md``, generated from the job specs' pydantic models (their JSON schemas): every
field of every kind with its type, default, limits and description.

``python -m lifrnn.spec_docs > docs/specs.md`` (``make docs``) writes it; a test fails when the
file is stale, so the reference cannot drift from what the service validates.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any, get_args

from pydantic import BaseModel

from lifrnn.specs import (
    FitDataSpec,
    FitSpec,
    PrepareSpec,
    RetrainSpec,
    SimulateSpikingSpec,
    SOCSpec,
)

KINDS: tuple[tuple[str, type[BaseModel]], ...] = (
    ("soc", SOCSpec),
    ("fit", FitSpec),
    ("prepare", PrepareSpec),
    ("retrain", RetrainSpec),
    ("fit_data", FitDataSpec),
    ("simulate_spiking", SimulateSpikingSpec),
)

LIMITS = (
    ("minimum", ">= {}"),
    ("exclusiveMinimum", "> {}"),
    ("maximum", "<= {}"),
    ("exclusiveMaximum", "< {}"),
    ("minItems", "at least {} items"),
    ("maxItems", "at most {} items"),
    ("minLength", "at least {} characters"),
    ("maxLength", "at most {} characters"),
)


def _resolve(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    reference = schema.get("$ref")
    return defs[reference.rsplit("/", 1)[1]] if reference else schema


def _type(schema: dict[str, Any], defs: dict[str, Any]) -> str:
    """A short type: ``number``, ``"a" | "b"``, ``list of number``, ``id or null``, a model."""
    if "anyOf" in schema or "oneOf" in schema:
        options = schema.get("anyOf") or schema.get("oneOf") or []
        return " or ".join(dict.fromkeys(_type(option, defs) for option in options))
    if "$ref" in schema:
        return f"object ({schema['$ref'].rsplit('/', 1)[1]})"
    if "enum" in schema:
        return " | ".join(json.dumps(value) for value in schema["enum"])
    if "const" in schema:
        return json.dumps(schema["const"])
    kind = schema.get("type", "any")
    if kind == "array":
        return f"list of {_type(schema.get('items', {}), defs)}"
    return str(kind)


def _limits(schema: dict[str, Any]) -> str:
    parts = [text.format(schema[key]) for key, text in LIMITS if key in schema]
    for option in schema.get("anyOf", []):
        parts += [text.format(option[key]) for key, text in LIMITS if key in option]
    return ", ".join(dict.fromkeys(parts))


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _default(model: type[BaseModel] | None, name: str, field: dict[str, Any]) -> str:
    """The field's default as JSON (a model's: only what differs from its own defaults)."""
    info = model.model_fields.get(name) if model is not None else None
    if info is None:
        return json.dumps(field.get("default"))
    if info.is_required():
        return "required"
    value = info.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return json.dumps(value.model_dump(mode="json", exclude_defaults=True) or {})
    return json.dumps(value)


def _nested(model: type[BaseModel] | None, name: str) -> dict[str, type[BaseModel]]:
    """The model classes field ``name`` of ``model`` may hold, by name."""
    info = model.model_fields.get(name) if model is not None else None
    found: dict[str, type[BaseModel]] = {}
    stack: list[Any] = [info.annotation] if info is not None else []
    while stack:
        annotation = stack.pop()
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            found[annotation.__name__] = annotation
        stack.extend(get_args(annotation))  # union members, an Annotated's type
    return found


@dataclass(frozen=True)
class SpecField:
    """One field of a kind's spec, as documented: dotted name, type, default, limits, meaning."""

    name: str
    type: str
    default: str
    limits: str
    description: str


def _fields(
    model: type[BaseModel] | None,
    schema: dict[str, Any],
    defs: dict[str, Any],
    prefix: str = "",
) -> list[SpecField]:
    """``schema``'s properties; nested models' fields follow as ``a.b`` (an inline ``soc``
    network's are those of ``kind: "soc"``)."""
    rows: list[SpecField] = []
    for name, field in schema.get("properties", {}).items():
        if name == "kind":
            continue
        rows.append(
            SpecField(
                name=f"{prefix}{name}",
                type=_type(field, defs),
                default=_default(model, name, field),
                limits=_limits(field),
                description=" ".join(field.get("description", "").split()),
            )
        )
        classes = _nested(model, name)
        for option in [field, *field.get("anyOf", []), *field.get("oneOf", [])]:
            reference = option.get("$ref", "")
            title = reference.rsplit("/", 1)[-1]
            if reference and title != "SOCSpec" and defs.get(title, {}).get("properties"):
                rows += _fields(classes.get(title), defs[title], defs, f"{prefix}{name}.")
    return rows


def spec_fields(kind: str) -> list[SpecField]:
    """Every field of ``kind``'s spec (``soc``, ``fit``, ``prepare``, ``retrain``,
    ``fit_data``), nested ones dotted; ``KeyError`` for another kind."""
    model = dict(KINDS)[kind]
    schema = model.model_json_schema()
    return _fields(model, schema, schema.get("$defs", {}))


def summary(kind: str) -> str:
    """The first paragraph of ``kind``'s spec docstring, on one line."""
    return " ".join((dict(KINDS)[kind].__doc__ or "").strip().split("\n\n")[0].split())


def render() -> str:
    """The whole of ``docs/specs.md``."""
    lines = [
        "# Job specs",
        "",
        "Generated from the pydantic models by `python -m lifrnn.spec_docs` (`make docs`); do "
        "not edit by hand. A spec is JSON with a `kind`; `POST /jobs` answers 422 naming the "
        "field and the reason for anything outside these types and limits. A network given "
        "inline (`network` as a `soc` spec) takes the `soc` fields. Ids name your stored "
        'networks and files; `{"job": id}` names the network a job makes.',
        "",
    ]
    for kind, _ in KINDS:
        lines += [
            f'## `kind: "{kind}"`',
            "",
            _cell(summary(kind)),
            "",
            "| field | type | default | limits | meaning |",
            "|---|---|---|---|---|",
            *(
                f"| `{f.name}` | {_cell(f.type)} | {_cell(f.default)} | {_cell(f.limits)} | "
                f"{_cell(f.description)} |"
                for f in spec_fields(kind)
            ),
            "",
        ]
    return "\n".join(lines)


def main() -> None:
    """Print ``docs/specs.md``."""
    sys.stdout.write(render())


if __name__ == "__main__":
    main()
