"""``pushdctl init``: the files to run pushd in production, from the examples in the package.

The examples ship inside the installed package (``pushd/examples/``), so a ``pip install``
user has them without a checkout: ``queue.yaml.example`` (every queue.yaml key, commented; the
same file as the repository's top-level one), ``pushd.yaml.example`` (every setting),
``pushd.production.yaml`` (hardened settings) and ``pushd.service`` (the systemd unit).

``init DIR`` writes ``queue.yaml``, ``pushd.yaml`` (the hardened settings, with fresh random
tokens and signing secret in place of the placeholders, readable by its owner and group only)
and ``pushd.service``. It refuses to overwrite anything: all three are checked before the
first is written, so a refusal leaves the folder as it was.
"""

from __future__ import annotations

import os
import re
import secrets
from importlib import resources
from pathlib import Path

from pushd import errors

#: What init writes: file written -> the example it comes from.
FILES = {
    "queue.yaml": "queue.yaml.example",
    "pushd.yaml": "pushd.production.yaml",
    "pushd.service": "pushd.service",
}
#: Every example in the package, for ``init --list`` and the tests.
EXAMPLES = ("queue.yaml.example", "pushd.yaml.example", "pushd.production.yaml", "pushd.service")
#: The placeholders of pushd.production.yaml (too short to be accepted as they are).
PLACEHOLDER = re.compile(r"CHANGE-ME-\d+")
_MODES = {"pushd.yaml": 0o640}  # holds the tokens


class InitRefusedError(errors.PushdError):
    """``init`` would overwrite a file, or has no folder to write in: nothing was written."""


def example(name: str) -> str:
    """The text of one shipped example."""
    if name not in EXAMPLES:
        raise KeyError(name)
    return resources.files("pushd").joinpath("examples", name).read_text(encoding="utf-8")


def with_secrets(text: str) -> str:
    """``text`` with each placeholder replaced by its own random secret (43 URL-safe chars)."""
    return PLACEHOLDER.sub(lambda _: secrets.token_urlsafe(32), text)


def init(folder: str) -> list[Path]:
    """Write the production files into ``folder`` (created if missing); the paths written."""
    where = Path(folder)
    if where.exists() and not where.is_dir():
        raise InitRefusedError(f"{where} is not a folder")
    targets = [where / name for name in FILES]
    if taken := [str(p) for p in targets if p.exists()]:
        raise InitRefusedError(
            f"{', '.join(taken)} exist{'s' if len(taken) == 1 else ''} already: nothing was "
            "written (move them away, or init another folder)"
        )
    where.mkdir(parents=True, exist_ok=True)
    for target in targets:
        text = example(FILES[target.name])
        if target.name == "pushd.yaml":
            text = with_secrets(text)
        _write_new(target, text, _MODES.get(target.name, 0o644))
    return targets


def _write_new(path: Path, text: str, mode: int) -> None:
    """Create ``path`` (never replacing one that appeared meanwhile), at most ``mode``."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)  # the umask may take more
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
