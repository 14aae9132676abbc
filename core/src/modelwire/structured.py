"""Structured output: the schema a chat call asks for, and the check of its reply.

A ``structured_model`` is a pydantic model class (validated by pydantic, imported
only then) or a JSON-schema dict (checked by the small validator below: types,
required and extra properties, enums, items, nested objects).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from modelwire.errors import BadRequestError, ResponseParseError
from modelwire.tools import is_pydantic_class

__all__ = ["parse_structured", "structured_schema"]


# -- structured output -------------------------------------------------------------------
def structured_schema(structured_model: Any) -> tuple[str, dict[str, Any]]:
    """The name and JSON schema of ``structured_model`` (a pydantic class or a schema
    dict); ``BadRequestError`` for anything else."""
    if is_pydantic_class(structured_model):
        return structured_model.__name__, structured_model.model_json_schema()
    if isinstance(structured_model, Mapping):
        schema = dict(structured_model)
        title = schema.get("title")
        name = re.sub(r"[^A-Za-z0-9_-]", "_", title)[:64] if isinstance(title, str) else ""
        return name or "response", schema
    raise BadRequestError(
        "`structured_model` must be a pydantic model class or a JSON-schema dict,"
        f" not {type(structured_model).__name__}"
    )


def parse_structured(text: str | None, structured_model: Any) -> Any:
    """The reply validated against ``structured_model``: a model instance for a pydantic
    class, the parsed dict for a schema.

    Raises ``ResponseParseError`` carrying ``.text`` and ``.validation_errors``.
    """
    text = text or ""
    if is_pydantic_class(structured_model):
        import pydantic

        try:
            return structured_model.model_validate_json(_unfenced(text))
        except pydantic.ValidationError as exc:
            problems = [
                f"{'.'.join(map(str, error['loc'])) or '(root)'}: {error['msg']}"
                for error in exc.errors()
            ]
            raise _invalid(text, problems) from None
    _, schema = structured_schema(structured_model)
    try:
        value = json.loads(_unfenced(text))
    except ValueError as exc:
        raise _invalid(text, [f"(root): not JSON ({exc})"]) from None
    problems = []
    _validate(value, schema, schema, "", problems)
    if problems:
        raise _invalid(text, problems)
    return value


def _unfenced(text: str) -> str:
    fenced = re.fullmatch(r"\s*```(?:json)?\s*(.*?)\s*```\s*", text, re.S)
    return fenced[1] if fenced else text


def _invalid(text: str, problems: list[str]) -> ResponseParseError:
    shown = "; ".join(problems[:5]) + (
        f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
    )
    error = ResponseParseError(f"the reply does not match the structured model: {shown}", body=text)
    error.text = text
    error.validation_errors = problems
    return error


_JSON_TYPES: dict[str, Callable[[Any], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: (
        (isinstance(v, int) and not isinstance(v, bool))
        or (isinstance(v, float) and v.is_integer())
    ),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def _validate(
    value: Any, schema: Any, root: Mapping[str, Any], path: str, problems: list[str]
) -> None:
    """The JSON-schema keywords structured output uses (types, objects, arrays, enums,
    combinators, local ``$ref``s, bounds); unknown keywords are ignored."""
    if not isinstance(schema, Mapping):
        return
    where = path or "(root)"
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part) if isinstance(target, Mapping) else None
        _validate(value, target, root, path, problems)
    kind = schema.get("type")
    if kind is not None:
        kinds = kind if isinstance(kind, list) else [kind]
        if not any(_JSON_TYPES.get(k, lambda v: True)(value) for k in kinds):
            problems.append(f"{where}: {value!r} is not of type {' or '.join(map(str, kinds))}")
            return
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{where}: {value!r} is not one of {schema['enum']!r}")
    if "const" in schema and value != schema["const"]:
        problems.append(f"{where}: {value!r} is not {schema['const']!r}")
    for combinator in ("anyOf", "oneOf"):
        if isinstance(schema.get(combinator), list):
            matches = 0
            for option in schema[combinator]:
                found: list[str] = []
                _validate(value, option, root, path, found)
                matches += not found
            if not matches or (combinator == "oneOf" and matches > 1):
                problems.append(f"{where}: {value!r} matches {matches} of the {combinator} options")
    for option in schema.get("allOf") or ():
        _validate(value, option, root, path, problems)
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        for key in schema.get("required") or ():
            if key not in value:
                problems.append(f"{path + '.' if path else ''}{key}: required, missing")
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            child = f"{path}.{key}" if path else str(key)
            if key in properties:
                _validate(item, properties[key], root, child, problems)
            elif extra is False:
                problems.append(f"{child}: not allowed (additionalProperties is false)")
            elif isinstance(extra, Mapping):
                _validate(item, extra, root, child, problems)
    elif isinstance(value, list):
        for bound, test in (("minItems", len(value).__lt__), ("maxItems", len(value).__gt__)):
            if isinstance(schema.get(bound), int) and test(schema[bound]):
                problems.append(f"{where}: {len(value)} items breaks {bound} {schema[bound]}")
        items = schema.get("items")
        for position, item in enumerate(value):
            _validate(item, items, root, f"{path}[{position}]", problems)
    elif isinstance(value, str):
        for bound, test in (("minLength", len(value).__lt__), ("maxLength", len(value).__gt__)):
            if isinstance(schema.get(bound), int) and test(schema[bound]):
                problems.append(f"{where}: length {len(value)} breaks {bound} {schema[bound]}")
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        checks = (
            ("minimum", value.__lt__),
            ("maximum", value.__gt__),
            ("exclusiveMinimum", value.__le__),
            ("exclusiveMaximum", value.__ge__),
        )
        for bound, test in checks:
            limit = schema.get(bound)
            if isinstance(limit, (int, float)) and not isinstance(limit, bool) and test(limit):
                problems.append(f"{where}: {value!r} breaks {bound} {limit}")
