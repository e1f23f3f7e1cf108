"""Durations written as text: ``90s``, ``15m``, ``1.5h``, ``2d`` (the one parser of them).

queue.yaml's ``task_age_limit``, a task's ``retry_options.task_age_limit`` in JSON, the CLI's
``--age-limit`` and the daemon's ``*_s`` settings all read this form; each caller decides what a
refusal means for it (a queue.yaml issue, an API error, a settings issue), so :func:`seconds`
answers None rather than raising.
"""

from __future__ import annotations

import re

#: Seconds per unit, for durations and for rates (``5/m``).
UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_NUMBER = r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
#: Digits and a unit, nothing else: App Engine's ``task_age_limit`` pattern.
_STRICT = re.compile(rf"{_NUMBER}([smhd])")
#: Settings also take spaces around and a bare number of seconds.
_LOOSE = re.compile(rf"\s*{_NUMBER}\s*([smhd]?)\s*")


def seconds(text: str, *, loose: bool = False) -> float | None:
    """The seconds ``text`` says, or None if it is not a duration.

    Strict (the default): digits then one unit, as queue.yaml and the APIs write it. ``loose``:
    spaces around the number and the unit are fine, and no unit means seconds (settings).
    """
    match = (_LOOSE if loose else _STRICT).fullmatch(text)
    if match is None:
        return None
    return float(match[1]) * UNIT_S[match[2] or "s"]
