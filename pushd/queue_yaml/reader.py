"""Read YAML the way App Engine's queue.yaml loader does, remembering where every node came from.

App Engine (``google.appengine.api.queueinfo``) builds queue.yaml objects from ruamel.yaml events
with the YAML 1.1 rules, so a plain scalar is typed before validation sees it: ``010`` is the
integer 8, ``y`` and ``on`` are ``True``, ``1e3`` is the float 1000.0, ``1:30`` is 90. Mapping keys
are the exception: App Engine takes their raw text. This module reproduces that typing with
PyYAML (the resolver table below is ruamel.yaml's YAML 1.1 table, which differs from PyYAML's in
``y``/``n``, ``1e3`` and ``1.0e5``), so :mod:`pushd.queue_yaml.config` can tell what App Engine would have
read and say precisely where pushd is stricter.

The result is a small located tree (:class:`Scalar`, :class:`Sequence`, :class:`Mapping`) plus
the issues found while reading. Like App Engine, pushd refuses anchors and aliases. Unlike it,
pushd also refuses explicit tags (``!!int 5``) and ``%YAML``/``%TAG`` directives, which only
obscure a configuration file. Nothing here raises: every problem becomes an issue.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar, TypeAlias

import yaml

from pushd import errors

#: Appended to every message where pushd refuses what App Engine accepts.
STRICTER = "pushd is stricter than App Engine here"

_UNICODE_BREAK = re.compile("[\x85\u2028\u2029]")
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_BOOL = "tag:yaml.org,2002:bool"

# ruamel.yaml's YAML 1.1 implicit resolvers (ruamel/yaml/resolver.py, `implicit_resolvers`), in
# its order; merge, null, timestamp and value are the same in PyYAML and are kept from it.
_RUAMEL_11: tuple[tuple[str, str, str], ...] = (
    (
        _BOOL,
        r"^(?:y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$",
        "yYnNtTfFoO",
    ),
    (
        _FLOAT,
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+][0-9]+)?
        |[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        "-+0123456789.",
    ),
    (
        _INT,
        r"""^(?:[-+]?0b[0-1_]+
        |[-+]?0?[0-7_]+
        |[-+]?(?:0|[1-9][0-9_]*)
        |[-+]?0x[0-9a-fA-F_]+
        |[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$""",
        "-+0123456789",
    ),
)


def _resolver_table() -> dict[Any, list[tuple[str, re.Pattern[str]]]]:
    table: dict[Any, list[tuple[str, re.Pattern[str]]]] = {}
    for tag, pattern, first in _RUAMEL_11:
        compiled = re.compile(pattern, re.X)
        for char in first:
            table.setdefault(char, []).append((tag, compiled))
    for char, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items():
        for tag, regexp in resolvers:
            if tag not in (_INT, _FLOAT, _BOOL):
                table.setdefault(char, []).append((tag, regexp))
    return table


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader with App Engine's scalar typing; records what pushd refuses."""

    yaml_implicit_resolvers = _resolver_table()
    bool_values: ClassVar[dict[str, bool]] = {**yaml.SafeLoader.bool_values, "y": True, "n": False}

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.refused: list[tuple[tuple[int, int], str, bool]] = []

    def compose_document(self) -> yaml.Node | None:
        event = self.peek_event()  # type: ignore[no-untyped-call]  # untyped in types-PyYAML
        if isinstance(event, yaml.DocumentStartEvent) and (event.version or event.tags):
            # App Engine's loader crashes on %YAML but follows %TAG.
            message = "YAML directives (%YAML, %TAG) are not supported"
            if not event.version:
                message = f"{message}; {STRICTER}"
            self.refused.append((_where(event.start_mark), message, not event.version))
        return super().compose_document()

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        event = self.peek_event()  # type: ignore[no-untyped-call]  # untyped in types-PyYAML
        if isinstance(event, yaml.AliasEvent):
            self.refused.append(
                (_where(event.start_mark), "YAML aliases (*name) are not supported", False)
            )
        elif isinstance(event, yaml.NodeEvent):
            if event.anchor is not None:
                self.refused.append(
                    (_where(event.start_mark), "YAML anchors (&name) are not supported", False)
                )
            tag = getattr(event, "tag", None)
            if tag is not None:
                # App Engine follows standard tags but has no constructor for the bare "!".
                message = f"explicit YAML tags ({tag}) are not supported"
                if tag != "!":
                    message = f"{message}; {STRICTER}"
                self.refused.append((_where(event.start_mark), message, tag != "!"))
        return super().compose_node(parent, index)


class Unreadable:
    """The value of a scalar App Engine's loader could not construct (e.g. ``2001-13-45``)."""

    def __repr__(self) -> str:
        return "UNREADABLE"


UNREADABLE = Unreadable()


@dataclass(frozen=True, slots=True, kw_only=True)
class Scalar:
    """A scalar: its text after YAML unescaping and folding, and what App Engine would read."""

    text: str
    value: object  # str, int, float, bool, None, a date, or UNREADABLE; for keys, the text
    line: int
    column: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Sequence:
    """A YAML sequence."""

    items: tuple[Node, ...]
    line: int
    column: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Mapping:
    """A YAML mapping, duplicates and order kept."""

    items: tuple[tuple[Node, Node], ...]
    line: int
    column: int


Node: TypeAlias = Scalar | Sequence | Mapping


@dataclass(frozen=True, slots=True, kw_only=True)
class Parsed:
    """The documents of a file and the issues found while reading it."""

    documents: tuple[Node, ...]
    issues: tuple[errors.ConfigIssue, ...]


def parse(text: str, filename: str) -> Parsed:
    """Read every YAML document of ``text``; never raises."""
    if match := _UNICODE_BREAK.search(text):
        # YAML 1.1 ends a line at these; App Engine's ruamel.yaml sometimes does, sometimes not.
        line, column = _line_column(text, match.start())
        message = f"the character U+{ord(match[0]):04X} is not allowed (a YAML 1.1 line break)"
        refusal = errors.ConfigIssue(filename, line, column, "", f"{message}; {STRICTER}", True)
        return Parsed(documents=(), issues=(refusal,))
    try:
        loader = _Loader(text)  # checks that every character may appear in YAML
    except yaml.reader.ReaderError as exc:
        return Parsed(documents=(), issues=(_reader_issue(exc, text, filename),))
    try:
        nodes: list[yaml.Node] = []
        issue: errors.ConfigIssue | None = None
        try:
            while loader.check_node():
                if (node := loader.get_node()) is not None:
                    nodes.append(node)
        except yaml.MarkedYAMLError as exc:
            line, column = _where(exc.problem_mark or exc.context_mark)
            problem = exc.problem or exc.context or "malformed YAML"
            issue = errors.ConfigIssue(filename, line, column, "", f"invalid YAML: {problem}")
        except yaml.reader.ReaderError as exc:
            issue = _reader_issue(exc, text, filename)
        except yaml.YAMLError as exc:  # PyYAML's unmarked errors; none is known to get here
            issue = errors.ConfigIssue(filename, 0, 0, "", f"invalid YAML: {exc}")
        issues = [issue] if issue else []
        for (line, column), message, stricter in loader.refused:
            issues.append(errors.ConfigIssue(filename, line, column, "", message, stricter))
        if issues:
            return Parsed(documents=(), issues=tuple(issues))
        converter = _Converter(loader, filename)
        documents = tuple(converter.convert(node) for node in nodes)
        return Parsed(documents=documents, issues=tuple(converter.issues))
    finally:
        loader.dispose()


def _reader_issue(exc: yaml.reader.ReaderError, text: str, filename: str) -> errors.ConfigIssue:
    line, column = _line_column(text, int(exc.position))
    message = f"the character #x{int(exc.character):04x} is not allowed in YAML"
    return errors.ConfigIssue(filename, line, column, "", message)


def _line_column(text: str, index: int) -> tuple[int, int]:
    """1-based line and column of ``text[index]``, counting lines as PyYAML does for "\\n"."""
    before = text[:index]
    return before.count("\n") + 1, index - (before.rfind("\n") + 1) + 1


def _where(mark: Any) -> tuple[int, int]:
    """1-based line and column of a PyYAML mark; (0, 0) when there is none."""
    return (mark.line + 1, mark.column + 1) if mark is not None else (0, 0)


class _Converter:
    def __init__(self, loader: _Loader, filename: str) -> None:
        self.loader = loader
        self.filename = filename
        self.issues: list[errors.ConfigIssue] = []

    def convert(self, node: yaml.Node, *, key: bool = False) -> Node:
        line, column = node.start_mark.line + 1, node.start_mark.column + 1
        if isinstance(node, yaml.MappingNode):
            pairs = tuple((self.convert(k, key=True), self.convert(v)) for k, v in node.value)
            return Mapping(items=pairs, line=line, column=column)
        if isinstance(node, yaml.SequenceNode):
            return Sequence(
                items=tuple(self.convert(v) for v in node.value), line=line, column=column
            )
        text = str(node.value)
        if key:
            # App Engine looks mapping keys up by their raw text, never typed.
            return Scalar(text=text, value=text, line=line, column=column)
        value: object
        try:
            value = self.loader.construct_object(node, deep=True)
        except (yaml.YAMLError, ArithmeticError, LookupError, TypeError, ValueError) as exc:
            # e.g. the date 2001-13-45: App Engine's loader fails on it too.
            value = UNREADABLE
            reason = getattr(exc, "problem", None) or str(exc)
            self.issues.append(
                errors.ConfigIssue(
                    self.filename, line, column, "", f"cannot read the value {text!r}: {reason}"
                )
            )
        return Scalar(text=text, value=value, line=line, column=column)


def kind(node: Node) -> str:
    """How a node is named in messages."""
    if isinstance(node, Scalar):
        return repr(node.text)
    return "a mapping" if isinstance(node, Mapping) else "a list"
