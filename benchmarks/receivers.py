"""The webhook receivers the scenarios deliver to: nginx when installed, else aiohttp.

Both answer every method by path, read the whole body, and record each request as a
:class:`Hit`:

* ``/fail/<pct>/...``: HTTP 500 to ``pct`` % of requests at random (any integer 0..100), else 200;
* ``/slow/<ms>/...``: 200 after ``ms`` milliseconds;
* anything else: 200 with a tiny body (a malformed ``<pct>`` or ``<ms>`` answers 400).

:class:`NginxReceiver` runs ``nginx`` with a config of its own in a temp dir (one process,
``master_process off``, 127.0.0.1 on a free port, keep-alive connections never closed by a
request count) and reads its unbuffered access log; ``/slow/`` uses the echo module's
``echo_sleep`` (Debian's ``libnginx-mod-http-echo``, pulled in by ``nginx-light``) and
``/fail/`` a ``split_clients`` on ``$request_id`` per percentage. :class:`AiohttpReceiver` is
:mod:`benchmarks.receiver` in a process of its own, asked over HTTP. Use :func:`start`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

import aiohttp
import orjson

from benchmarks import harness


@dataclass(frozen=True, slots=True)
class Hit:
    """One request the receiver answered."""

    t: float  # arrival, epoch seconds (time.time()); µs resolution (aiohttp) or ms (nginx)
    path: str  # the request path, e.g. /hook/1 or /fail/30/x
    name: str  # X-AppEngine-TaskName, "" when absent
    queue: str  # X-AppEngine-QueueName, "" when absent
    retry: int  # X-AppEngine-TaskRetryCount, -1 when absent
    eta: float | None  # X-AppEngine-TaskETA (epoch seconds), None when absent
    status: int  # the status the receiver answered


class Receiver(Protocol):
    kind: str  # "nginx" or "aiohttp"
    url: str  # http://127.0.0.1:PORT, no trailing slash

    @property
    def pids(self) -> list[int]: ...

    def cpu_s(self) -> float:
        """User + system CPU seconds of the receiver's processes so far."""
        ...

    async def reset(self) -> None:
        """Forget every hit so far."""
        ...

    async def count(self) -> int:
        """Hits since the last reset."""
        ...

    async def hits(self) -> list[Hit]:
        """Every hit since the last reset, in arrival order."""
        ...

    async def wait_count(
        self, n: int, timeout_s: float, progress: Callable[[int], None] | None = None
    ) -> list[Hit]:
        """Wait until ``n`` hits arrived (``progress(count)`` on every poll); return the hits.

        Raises ``TimeoutError`` naming the count reached if ``timeout_s`` passes first.
        """
        ...


POLL_S = 0.05  # how often wait_count() polls count()
NGINX_START_TIMEOUT_S = 10.0  # nginx must answer on its port by then
NGINX_BIND_ATTEMPTS = 5  # fresh ports tried when another process took the one we picked
NGINX_INSTALL = "apt-get install nginx-light"
NGINX_FALLBACK = "/usr/sbin/nginx"  # root's PATH has /usr/sbin, a user's may not
ECHO_MODULE = "ngx_http_echo_module.so"
ECHO_MODULE_DIRS = (
    "/usr/lib/nginx/modules",  # Debian, Ubuntu
    "/usr/lib64/nginx/modules",  # Fedora, RHEL
    "/usr/share/nginx/modules",
    "/etc/nginx/modules",
)
READY_PATH = "/_pushd_bench_ready"  # answered with a per-start token, never logged


# ------------------------------------------------------------------ shared


def _int_or(text: str, default: int) -> int:
    try:
        return int(text)
    except ValueError:
        return default


def _float_or_none(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _hit(t: float, path: str, name: str, queue: str, retry: str, eta: str, status: int) -> Hit:
    """A :class:`Hit` from the task headers as sent (``""`` when absent)."""
    return Hit(t, path, name, queue, _int_or(retry, -1), _float_or_none(eta), status)


def _by_arrival(hits: Iterable[Hit]) -> list[Hit]:
    return sorted(hits, key=lambda h: h.t)  # stable: ties keep the order they were answered


class _Polled:
    """What both receivers share: CPU over their pids and :meth:`wait_count` over :meth:`count`."""

    kind: str
    url: str

    @property
    def pids(self) -> list[int]:
        raise NotImplementedError

    def cpu_s(self) -> float:
        total = 0.0
        for pid in self.pids:
            with contextlib.suppress(OSError):  # a worker that exited since
                total += harness.cpu_s(pid)
        return total

    async def count(self) -> int:
        raise NotImplementedError

    async def hits(self) -> list[Hit]:
        raise NotImplementedError

    async def wait_count(
        self, n: int, timeout_s: float, progress: Callable[[int], None] | None = None
    ) -> list[Hit]:
        deadline = time.monotonic() + timeout_s
        while True:
            got = await self.count()
            if progress is not None:
                progress(got)
            if got >= n:
                return await self.hits()
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{self.kind} receiver got {got} of {n} in {timeout_s:g} s")
            await asyncio.sleep(POLL_S)


# ------------------------------------------------------------------ nginx


def nginx_binary() -> str | None:
    """The ``nginx`` executable on PATH or at /usr/sbin/nginx, else None."""
    found = shutil.which("nginx")
    if found is None and os.access(NGINX_FALLBACK, os.X_OK):
        found = NGINX_FALLBACK
    return found


@functools.cache
def _nginx_build(binary: str) -> str:
    """``nginx -V``: the version and configure arguments (nginx prints them on stderr)."""
    done = subprocess.run([binary, "-V"], capture_output=True, text=True, timeout=10, check=False)
    return done.stderr + done.stdout


def echo_module(binary: str) -> Path | None:
    """The echo module's ``.so`` for ``binary`` (``/slow/`` needs its ``echo_sleep``), else None."""
    dirs = list(ECHO_MODULE_DIRS)
    for arg in _nginx_build(binary).split():
        if arg.startswith("--modules-path="):
            dirs.insert(0, arg.partition("=")[2])
    for d in dirs:
        if (path := Path(d) / ECHO_MODULE).is_file():
            return path
    return None


def available_kind() -> str:
    """``"nginx"`` when nginx and its echo module are installed, else ``"aiohttp"``."""
    binary = nginx_binary()
    return "nginx" if binary is not None and echo_module(binary) is not None else "aiohttp"


# $msec is when the line is written, so arrival is $msec - $request_time (both in ms). Fields are
# separated by US (0x1f): escape=json writes a control character in a value as \u001f, so a
# separator can only be ours; it also logs an absent header as "" (not "-").
SEP = "\x1f"
LOG_FORMAT = SEP.join(
    (
        "$msec",
        "$request_time",
        "$status",
        "$http_x_appengine_taskname",
        "$http_x_appengine_queuename",
        "$http_x_appengine_taskretrycount",
        "$http_x_appengine_tasketa",
        "$request_uri",
    )
)


def _nginx_conf(
    d: Path, port: int, module: Path, token: str, build: str, *, master: bool = False
) -> str:
    """nginx.conf for a receiver living in ``d``: nothing outside ``d`` but the module is used."""
    temp_paths = "\n".join(
        f"    {kind}_temp_path {d / ('tmp-' + kind)};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        if kind == "client_body" or f"--without-http_{kind}_module" not in build
    )
    if master:
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        nofile = 16384 if hard == resource.RLIM_INFINITY else min(hard, 16384)
        # Workers switch to user nobody unless told otherwise, and nobody cannot enter a temp
        # dir made by root.
        user = "user root;\n" if os.geteuid() == 0 else ""
        processes = f"{user}master_process on;\nworker_processes 1;\nworker_rlimit_nofile {nofile};"
    else:
        processes = "master_process off;"
    # /fail/<pct>/: one split_clients per percentage (a variable is computed only when used,
    # so a request pays for one hash); the map picks it by the percentage in the path.
    splits = "\n".join(
        f'    split_clients "${{request_id}}" $fail_{p} {{ {p}% 1; * 0; }}' for p in range(1, 100)
    )
    picks = "\n".join(f'        "{p}" $fail_{p};' for p in range(1, 100))
    return f"""# Written by benchmarks/receivers.py for one benchmark run; not the system's nginx.
load_module {module};
daemon off;
{processes}
pid {d / "nginx.pid"};
error_log {d / "error.log"} warn;

events {{
    worker_connections 4096;
}}

http {{
{temp_paths}
    default_type text/plain;
    server_tokens off;
    tcp_nodelay on;
    client_max_body_size 32m;
    client_body_buffer_size 1m;
    keepalive_requests 1000000000;  # the default 1000 would close pushd's connections
    keepalive_timeout 75s;
    variables_hash_max_size 4096;  # room for the 99 $fail_<pct> variables
    variables_hash_bucket_size 128;
    log_format hits escape=json '{LOG_FORMAT}';
    access_log {d / "access.log"} hits;  # unbuffered: one write() per request

{splits}
    map $fail_pct $fail_hit {{
        "0" 0;
{picks}
        "100" 1;
        default bad;
    }}
    # echo_sleep takes seconds: 1500 -> "1.500", 200 -> ".200", 25 -> "0.025", 5 -> "0.005"
    map $slow_ms $slow_s {{
        "~^(?<slow_int>\\d*?)(?<slow_frac>\\d{{3}})$" "$slow_int.$slow_frac";
        "~^(?<slow_2>\\d{{2}})$" "0.0$slow_2";
        "~^(?<slow_1>\\d)$" "0.00$slow_1";
    }}

    server {{
        listen 127.0.0.1:{port} backlog=1024;

        location = {READY_PATH} {{
            access_log off;
            return 200 "{token}\\n";
        }}
        location ~ ^/fail/(?<fail_pct>\\d+)(?:/|$) {{
            if ($fail_hit = bad) {{
                return 400 "bad percentage: want an integer 0..100\\n";
            }}
            if ($fail_hit) {{
                return 500 "fail\\n";  # with a body, so the connection is kept alive
            }}
            return 200 "ok\\n";
        }}
        location /fail/ {{
            return 400 "bad percentage: want an integer 0..100\\n";
        }}
        location ~ ^/slow/(?<slow_ms>\\d+)(?:/|$) {{
            echo_read_request_body;
            echo_sleep $slow_s;
            echo "ok";
        }}
        location /slow/ {{
            return 400 "bad delay: want milliseconds\\n";
        }}
        location / {{
            return 200 "ok\\n";  # return reads (discards) the body before answering
        }}
    }}
}}
"""


def _unescape(field: str) -> str:
    """Undo escape=json (a quote, a backslash or a control character in the field)."""
    return str(orjson.loads(f'"{field}"')) if "\\" in field else field


def _parse_nginx_line(line: str) -> Hit:
    fields = line.split(SEP)
    if len(fields) != 8:
        raise ValueError(f"unexpected line in nginx's access log: {line!r}")
    if "\\" in line:
        fields = [_unescape(field) for field in fields]
    msec, request_time, status, name, queue, retry, eta, uri = fields
    t = round(float(msec) - float(request_time), 3)
    return _hit(t, uri.partition("?")[0], name, queue, retry, eta, int(status))


class _AccessLog:
    """nginx's access log read incrementally: counting is a ``read()`` of what is new."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[bytes] | None = None
        self._partial = b""  # a line nginx has not finished writing (one write() per line)
        self._unparsed: list[bytes] = []
        self._count = 0
        self._hits: list[Hit] = []

    def pull(self) -> int:
        """Read what nginx appended; the number of lines since the last reset."""
        if self._file is None:
            try:
                self._file = self.path.open("rb", buffering=0)
            except FileNotFoundError:
                return self._count
        data = self._file.read()
        if data:
            data = self._partial + data
            cut = data.rfind(b"\n") + 1
            self._partial = data[cut:]
            if cut:
                self._unparsed.append(data[:cut])
                self._count += data.count(b"\n", 0, cut)
        return self._count

    def hits(self) -> list[Hit]:
        self.pull()
        for chunk in self._unparsed:
            text = chunk.decode(errors="replace")
            self._hits.extend(_parse_nginx_line(line) for line in text.split("\n")[:-1])
        self._unparsed.clear()
        return _by_arrival(self._hits)

    def reset(self) -> None:
        self.pull()
        self._unparsed.clear()
        self._hits.clear()
        self._count = 0

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            text = stat.read_text()
            if int(text[text.rindex(")") + 2 :].split()[1]) == pid:
                found.append(int(stat.parent.name))
    return found


class NginxReceiver(_Polled):
    """nginx in a temp dir of its own; hits come from its access log."""

    kind = "nginx"

    def __init__(self, child: harness.Child, port: int, log: _AccessLog, workers: list[int]):
        self.url = f"http://127.0.0.1:{port}"
        self.child = child
        self._log = log
        self._pids = [child.pid, *workers]

    @property
    def pids(self) -> list[int]:
        return list(self._pids)

    async def reset(self) -> None:
        self._log.reset()

    async def count(self) -> int:
        return self._log.pull()

    async def hits(self) -> list[Hit]:
        return self._log.hits()


async def _answers(port: int, token: str) -> bool:
    """Whether our nginx (not whatever else may have the port) answers on ``port``."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 1.0)
    except (OSError, TimeoutError):
        return False
    try:
        writer.write(f"GET {READY_PATH} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode())
        data = await asyncio.wait_for(reader.read(), 0.5)  # HTTP/1.0: nginx closes when done
    except (OSError, TimeoutError):
        return False
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return token.encode() in data


async def _nginx_ready(child: harness.Child, port: int, token: str, error_log: Path) -> bool:
    """True once nginx answers; False if it could not bind; raises on any other failure."""
    deadline = time.monotonic() + NGINX_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if await _answers(port, token):
            return True
        if "Address already in use" in harness.tail(error_log) + harness.tail(child.log):
            return False  # nginx would retry bind() for 2.5 s; a new port is quicker
        if child.proc.returncode is not None:
            break
        await asyncio.sleep(0.02)
    status = (
        f"exited with {child.proc.returncode}"
        if child.proc.returncode is not None
        else f"did not answer within {NGINX_START_TIMEOUT_S:g} s"
    )
    raise RuntimeError(
        f"nginx {status} on 127.0.0.1:{port}\n"
        f"--- {error_log}:\n{harness.tail(error_log)}\n--- {child.log}:\n{harness.tail(child.log)}"
    )


@contextlib.asynccontextmanager
async def start_nginx(tmp: Path, *, master: bool = False) -> AsyncIterator[NginxReceiver]:
    """nginx with its own config in a new dir under ``tmp``; stopped (SIGTERM) on the way out.

    One process (``master_process off``) by default: it answers as fast as one master with
    one worker here, and gets ``PR_SET_PDEATHSIG`` itself (a worker would outlive a killed
    benchmark). ``master=True`` runs a master and one worker instead.
    """
    binary = nginx_binary()
    if binary is None:
        raise RuntimeError(f"nginx is not on PATH nor at {NGINX_FALLBACK}: {NGINX_INSTALL}")
    module = echo_module(binary)
    if module is None:
        raise RuntimeError(
            f"nginx's echo module ({ECHO_MODULE}, for /slow/'s echo_sleep) is not in "
            f"{', '.join(ECHO_MODULE_DIRS)}: apt-get install libnginx-mod-http-echo "
            f"({NGINX_INSTALL} pulls it in)"
        )
    build = _nginx_build(binary)
    d = Path(tempfile.mkdtemp(prefix="nginx-", dir=tmp))
    conf, error_log = d / "nginx.conf", d / "error.log"
    for attempt in range(1, NGINX_BIND_ATTEMPTS + 1):
        port, token = harness.free_port(), secrets.token_hex(8)
        conf.write_text(_nginx_conf(d, port, module, token, build, master=master))
        error_log.write_text("")  # nothing left from an attempt that could not bind
        args = [binary, "-e", str(error_log), "-p", f"{d}/", "-c", str(conf)]
        child = await harness.spawn("nginx", args, d / "stderr.log")
        try:
            if await _nginx_ready(child, port, token, error_log):
                break
        except BaseException:
            await child.stop()
            raise
        await child.stop()
        if attempt == NGINX_BIND_ATTEMPTS:
            raise RuntimeError(
                f"nginx found no free port in {attempt} attempts:\n{harness.tail(error_log)}"
            )
    child.url = f"http://127.0.0.1:{port}"
    log = _AccessLog(d / "access.log")
    workers = _children(child.pid) if master else []
    try:
        yield NginxReceiver(child, port, log, workers)
    finally:
        log.close()
        await child.stop()


# ------------------------------------------------------------------ aiohttp


class AiohttpReceiver(_Polled):
    """:mod:`benchmarks.receiver` in its own process, asked over HTTP."""

    kind = "aiohttp"

    def __init__(self, child: harness.Child, session: aiohttp.ClientSession) -> None:
        self.url = child.url.rstrip("/")
        self.child = child
        self._session = session
        self._hits: list[Hit] = []

    @property
    def pids(self) -> list[int]:
        return [self.child.pid]

    async def reset(self) -> None:
        await harness.post_json(self._session, f"{self.url}/_reset")
        self._hits.clear()

    async def count(self) -> int:
        stats = await harness.get_json(self._session, f"{self.url}/stats")
        return int(stats["count"])

    async def hits(self) -> list[Hit]:
        url = f"{self.url}/_hits?since={len(self._hits)}"
        async with self._session.get(url) as resp:
            resp.raise_for_status()
            rows = orjson.loads(await resp.read())
        self._hits.extend(_hit(*row) for row in rows)
        return _by_arrival(self._hits)


@contextlib.asynccontextmanager
async def start_aiohttp(tmp: Path) -> AsyncIterator[AiohttpReceiver]:
    """:mod:`benchmarks.receiver` on a free port; stopped (SIGTERM) on the way out."""
    args = [sys.executable, "-m", "benchmarks.receiver", "--port", "0"]
    timeout = aiohttp.ClientTimeout(total=60)
    async with (
        harness.running("receiver", args, tmp / "receiver.log") as child,
        aiohttp.ClientSession(timeout=timeout) as session,
    ):
        yield AiohttpReceiver(child, session)


# ------------------------------------------------------------------ either


KINDS = ("auto", "nginx", "aiohttp")


@contextlib.asynccontextmanager
async def start(tmp: Path, kind: str = "auto") -> AsyncIterator[Receiver]:
    """A receiver of ``kind``: "nginx", "aiohttp" or "auto" (:func:`available_kind`)."""
    if kind == "auto":
        kind = available_kind()
    if kind == "nginx":
        async with start_nginx(tmp) as nginx:
            yield nginx
    elif kind == "aiohttp":
        async with start_aiohttp(tmp) as sink:
            yield sink
    else:
        raise ValueError(f"unknown receiver kind {kind!r}: want one of {', '.join(KINDS)}")
