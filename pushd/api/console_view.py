"""How the web console looks: its Jinja templates, the values they show, its charts and errors.

:mod:`pushd.api.console` gathers the data of each page; this module turns it into HTML. Pages
are rendered on the server from ``pushd/api/templates`` (autoescaped: task names, headers and
payloads are shown as text, never as markup) with a few lines of inline CSS and no script, so
the answers carry a Content-Security-Policy that allows no script at all, and may not be framed
(the pages hold buttons that purge queues).
"""

from __future__ import annotations

import datetime
import unicodedata
import urllib.parse
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import jinja2
import markupsafe
from aiohttp import hdrs, web

from pushd import clock, metrics, models

if TYPE_CHECKING:
    from pushd.api import errors as api_errors
    from pushd.queue_yaml import config

#: What a payload preview shows at most, as text or as hex.
PREVIEW_BYTES = 4096
PREVIEW_HEX_BYTES = 1024
_HEX_ROW_BYTES = 32
HTML_CONTENT_TYPE = "text/html"
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
_TITLES = {400: "Bad request", 401: "Log in first", 403: "Not allowed", 404: "Not found"}


def path(value: str) -> str:
    """``value`` as one URL path segment."""
    return urllib.parse.quote(value, safe="")


def utc(us: int | None) -> str:
    """An instant as UTC wall time to the second ("-" for none)."""
    if us is None:
        return "-"
    when = datetime.datetime.fromtimestamp(us // clock.US_PER_SECOND, datetime.UTC)
    return when.strftime("%Y-%m-%d %H:%M:%S UTC")


def relative(us: int | None, now_us: int) -> str:
    """How far ``us`` is from ``now_us``, roughly: ``in 5 min``, ``12 s ago``, ``now``."""
    if us is None:
        return ""
    delta_s = (us - now_us) / clock.US_PER_SECOND
    size = abs(delta_s)
    if size < 1:
        return "now"
    for unit, seconds in (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        if size >= seconds:
            amount = f"{int(size // seconds)} {unit}"
            break
    return f"in {amount}" if delta_s > 0 else f"{amount} ago"


def tag_text(tag: bytes | None) -> str:
    if tag is None:
        return ""
    try:
        return tag.decode("utf-8")
    except UnicodeDecodeError:
        return "0x" + tag.hex()


def _printable(text: str) -> bool:
    """No control characters but tab and line ends (a NUL or an escape is binary data)."""
    return not any(unicodedata.category(c) == "Cc" and c not in "\t\n\r" for c in text)


def preview(payload: bytes) -> dict[str, Any]:
    """A payload as the task page shows it: UTF-8 text if it is that (without control
    characters), else hex; cut to :data:`PREVIEW_BYTES` (hex: :data:`PREVIEW_HEX_BYTES`)."""
    head = payload[:PREVIEW_BYTES]
    for cut in range(4):  # the cut may split a multi-byte character: drop its start
        try:
            text = head[: len(head) - cut].decode("utf-8")
        except UnicodeDecodeError:
            if len(head) < len(payload):
                continue
            break
        if _printable(text):
            shown = len(head) - cut
            return {"kind": "text", "text": text, "shown": shown, "size": len(payload)}
        break
    head = payload[:PREVIEW_HEX_BYTES]
    rows = [head[i : i + _HEX_ROW_BYTES].hex(" ") for i in range(0, len(head), _HEX_ROW_BYTES)]
    return {"kind": "hex", "text": "\n".join(rows), "shown": len(head), "size": len(payload)}


def chart(
    steps: Sequence[metrics.Step], *, width: int, height: int, axis: bool = False
) -> markupsafe.Markup:
    """Deliveries (green) and failures (red, stacked above) per step, as inline SVG."""
    top = max((s.delivered + s.failed for s in steps), default=0)
    delivered = sum(s.delivered for s in steps)
    failed = sum(s.failed for s in steps)
    span_min = len(steps) * metrics.HISTORY_STEP_S // 60
    label = f"last {span_min} min: {delivered} delivered, {failed} failed"
    pad = 14 if axis else 0
    plot = height - pad
    bar = width / max(len(steps), 1)
    out = [
        f'<svg class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{markupsafe.escape(label)}">',
        f"<title>{markupsafe.escape(label)}</title>",
        f'<line x1="0" y1="{plot}" x2="{width}" y2="{plot}" class="base"/>',
    ]
    for i, step in enumerate(steps):
        if top == 0 or step.delivered + step.failed == 0:
            continue
        x = i * bar
        ok = step.delivered / top * plot
        bad = step.failed / top * plot
        when = utc(step.start_s * clock.US_PER_SECOND)[11:19]
        tip = markupsafe.escape(f"{when}: {step.delivered} delivered, {step.failed} failed")
        out.append(f"<g><title>{tip}</title>")
        if ok:
            out.append(f'<rect class="ok" x="{x:.1f}" y="{plot - ok:.1f}" ')
            out.append(f'width="{bar * 0.8:.1f}" height="{ok:.1f}"/>')
        if bad:
            out.append(f'<rect class="bad" x="{x:.1f}" y="{plot - ok - bad:.1f}" ')
            out.append(f'width="{bar * 0.8:.1f}" height="{bad:.1f}"/>')
        out.append("</g>")
    if axis:
        step_s = metrics.HISTORY_STEP_S
        out.append(f'<text x="0" y="{height - 2}">-{span_min} min</text>')
        out.append(f'<text x="{width}" y="{height - 2}" text-anchor="end">now</text>')
        out.append(
            f'<text x="{width / 2}" y="{height - 2}" text-anchor="middle">'
            f"peak {top} per {step_s} s</text>"
        )
    out.append("</svg>")
    return markupsafe.Markup("".join(out))  # every text in it is escaped above


def last_outcome(task: models.Task) -> str:
    """A task's last attempt in a table cell: the HTTP status, else why no answer came."""
    if task.last_status is not None:
        return str(task.last_status)
    if task.last_attempt is None:
        return ""
    return task.last_attempt.error or ""


_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("pushd.api", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_ENV.filters.update(path=path, utc=utc, tag_text=tag_text, last_outcome=last_outcome)
_ENV.globals.update(relative=relative)


def html(name: str, *, status: int = 200, **context: Any) -> web.Response:
    """Template ``name`` rendered as an HTML answer with the console's security headers.

    Every page gets ``who`` (the logged-in token, or None), ``notice`` and ``refresh_s``.
    """
    context.setdefault("who", None)
    context.setdefault("notice", None)
    context.setdefault("refresh_s", None)
    body = _ENV.get_template(name).render(context)
    response = web.Response(text=body, status=status, content_type=HTML_CONTENT_TYPE)
    response.headers.update(_HEADERS)
    return response


def render_failure(failure: api_errors.Failure) -> web.Response:
    """Any failure of a console request as an HTML page (the error middleware calls this)."""
    message = failure.message
    if failure.error is None and failure.http_status == 404:
        message = "There is no such page in the console."
    response = html(
        "error.html",
        status=failure.http_status,
        title=_TITLES.get(failure.http_status, "Error"),
        code=failure.http_status,
        message=message,
    )
    response.headers.update(failure.headers)
    return response


def redirect(location: str) -> web.Response:
    """303 See Other: after a form, the browser asks for ``location`` with a GET."""
    return web.Response(status=303, headers={hdrs.LOCATION: location, **_HEADERS})


def queue_row(
    cfg: config.QueueConfig, stats: models.QueueStats, steps: Sequence[metrics.Step]
) -> dict[str, Any]:
    """What the queues page shows of one queue."""
    push = cfg.mode is models.QueueMode.PUSH
    configured = push and not stats.removed  # a removed queue has no rate nor bucket left
    return {
        "name": cfg.name,
        "mode": cfg.mode.value,
        "rate": cfg.rate_text if configured else "",
        "bucket_size": cfg.bucket_size if configured else "",
        "enforced_rate": f"{stats.enforced_rate:.3g}/s" if push else "",
        "stats": stats,
        "chart": chart(steps, width=180, height=28) if push else "",
        "big_chart": chart(steps, width=600, height=110, axis=True) if push else "",
    }
