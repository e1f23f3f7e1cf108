"""The pieces of the OpenAPI document: JSON Schemas derived from the ``TypedDict`` shapes the
handlers encode with (:class:`SchemaSet`), and what the document says of one route
(:class:`Operation`, rendered by :func:`operation`)."""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NotRequired, Required, get_args, get_origin, get_type_hints

Schema = dict[str, Any]
_PARAM = re.compile(r"\{([^}]+)\}")
_SCALARS: dict[object, Schema] = {
    str: {"type": "string"},
    int: {"type": "integer"},
    float: {"type": "number"},
    bool: {"type": "boolean"},
}


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


class SchemaSet:
    """JSON Schemas of TypedDicts, collected under ``components/schemas`` by class name."""

    def __init__(self) -> None:
        self.schemas: dict[str, Schema] = {}

    def of(self, tp: object) -> Schema:
        """The schema of a type annotation (TypedDicts become ``$ref``s)."""
        if tp in _SCALARS:
            return dict(_SCALARS[tp])
        if tp is type(None):
            return {"type": "null"}
        if tp is object or tp is Any:
            return {}
        if typing.is_typeddict(tp):
            name = tp.__name__  # type: ignore[attr-defined]
            if name not in self.schemas:
                self.schemas[name] = {}  # placeholder against recursion
                self.schemas[name] = self._typeddict(tp)
            return ref(name)
        origin, args = get_origin(tp), get_args(tp)
        if origin in (NotRequired, Required):
            return self.of(args[0])
        if origin in (types.UnionType, typing.Union):
            return {"anyOf": [self.of(a) for a in args]}
        if origin is typing.Literal:
            return {"enum": list(args)}
        if origin in (list, tuple) or origin is typing.Sequence:
            return {"type": "array", "items": self.of(args[0]) if args else {}}
        if origin in (dict, Mapping):
            return {"type": "object", "additionalProperties": self.of(args[1])}
        raise TypeError(f"no JSON schema for {tp!r}")

    def _typeddict(self, tp: Any) -> Schema:
        hints = get_type_hints(tp, include_extras=True)
        # Not __required_keys__: under PEP 563 (string annotations) Python 3.11 cannot see
        # NotRequired there, so every key would count as required.
        required = [k for k, h in hints.items() if get_origin(h) is not NotRequired]
        doc = (tp.__doc__ or "").strip().split("\n\n")[0]
        schema: Schema = {
            "type": "object",
            "properties": {name: self.of(hint) for name, hint in hints.items()},
            "required": required,
        }
        if doc and not doc.startswith(tp.__name__ + "("):
            schema["description"] = " ".join(doc.split())
        return schema

    def add(self, name: str, schema: Schema) -> Schema:
        self.schemas[name] = schema
        return ref(name)


@dataclass(frozen=True, slots=True, kw_only=True)
class Query:
    name: str
    schema: Schema
    description: str
    required: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Operation:
    """What the document says about one route."""

    summary: str
    tag: str
    #: request body schema: a type (TypedDict) or a component name, by content type
    body: object = None
    body_types: tuple[str, ...] = ("application/json",)
    answer: object = None  # a type annotation or a component name; None: no body
    answer_types: tuple[str, ...] = ("application/json",)
    status: int = 200
    query: tuple[Query, ...] = ()
    errors: tuple[int, ...] = (400, 404)
    #: the error envelope: a TypedDict or a component name, by content type
    error_schema: object = "ErrorJSON"
    error_types: tuple[str, ...] = ("application/json",)
    extra: Mapping[str, Any] = field(default_factory=dict)


def wrap(key: str, schema: Schema) -> Schema:
    return {"type": "object", "properties": {key: schema}, "required": [key]}


def content(s: SchemaSet, what: object, types_: tuple[str, ...]) -> Schema:
    schema = ref(what) if isinstance(what, str) else s.of(what)
    return {"content": {t: {"schema": schema} for t in types_}}


def operation(s: SchemaSet, method: str, path: str, op: Operation) -> Schema:
    out: Schema = {"summary": op.summary, "tags": [op.tag]}
    params = [
        {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
        for p in _PARAM.findall(path)
    ]
    params += [
        {"name": q.name, "in": "query", "required": q.required, "schema": q.schema}
        | ({"description": q.description} if q.description else {})
        for q in op.query
    ]
    if params:
        out["parameters"] = params
    if op.body is not None:
        out["requestBody"] = {"required": True, **content(s, op.body, op.body_types)}
    answer: Schema = {"description": "OK"}
    if op.answer is not None:
        answer.update(content(s, op.answer, op.answer_types))
    responses: Schema = {str(op.status): answer}
    error = {"description": "an error", **content(s, op.error_schema, op.error_types)}
    for status in op.errors:
        responses[str(status)] = error
    out["responses"] = responses
    out.update(op.extra)
    return out
