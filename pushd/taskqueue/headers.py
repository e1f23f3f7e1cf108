"""A task's headers as App Engine's ``Task.headers`` shows them."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, MutableMapping
from typing import Any


class CaselessHeaders(MutableMapping[str, Any]):
    """A task's headers: names compared without case, the name's first spelling kept.

    A repeated header's value is the list of its values, as App Engine's ``Task.headers``.
    """

    def __init__(self, pairs: Iterable[tuple[str, str]] = ()) -> None:
        self._items: dict[str, tuple[str, Any]] = {}
        for name, value in pairs:
            key = name.lower()
            if key in self._items:
                first, old = self._items[key]
                self._items[key] = (first, [*old, value] if isinstance(old, list) else [old, value])
            else:
                self._items[key] = (name, value)

    def __getitem__(self, name: str) -> Any:
        return self._items[name.lower()][1]

    def __setitem__(self, name: str, value: Any) -> None:
        old = self._items.get(name.lower())
        self._items[name.lower()] = (old[0] if old else name, value)

    def __delitem__(self, name: str) -> None:
        del self._items[name.lower()]

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items

    def copy(self) -> CaselessHeaders:
        found = CaselessHeaders()
        found._items = dict(self._items)
        return found

    def __repr__(self) -> str:
        return repr(dict(self.items()))
