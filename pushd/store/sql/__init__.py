"""Named SQL queries, kept as SQL (``-- name: query_name`` headers), one file per backend."""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

_HEADER = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)


@cache
def queries(filename: str) -> dict[str, str]:
    """Parse ``filename`` of this package into {name: sql}."""
    text = resources.files(__package__).joinpath(filename).read_text(encoding="utf-8")
    parts = _HEADER.split(text)
    found: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in found:
            raise ValueError(f"{filename}: query {name!r} is defined twice")
        found[name] = body.strip()
    return found
