"""The benchmark's receivers: nginx (when installed, always under CI=true) and aiohttp.

One receiver per kind serves the whole module (starting the aiohttp one costs ~0.5 s); every
test resets it first.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio

from benchmarks import harness, receivers
from benchmarks.receivers import SEP, Hit, Receiver

in_module_loop = pytest.mark.asyncio(loop_scope="module")  # where the shared receivers live

NGINX_MISSING = receivers.nginx_binary() is None and os.environ.get("CI") != "true"
KINDS = [
    pytest.param("aiohttp", id="aiohttp"),
    pytest.param(
        "nginx",
        id="nginx",
        marks=pytest.mark.skipif(
            NGINX_MISSING,
            reason="nginx is not installed (apt-get install nginx-light); runs always under CI=true",
        ),
    ),
]
BODY = b"x" * 32


def task_headers(i: int) -> dict[str, str]:
    return {
        "X-AppEngine-TaskName": f"task-{i}",
        "X-AppEngine-QueueName": "bench",
        "X-AppEngine-TaskRetryCount": str(i % 3),
        "X-AppEngine-TaskETA": f"{1_700_000_000 + i}.25",
    }


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=KINDS)
async def started(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Receiver]:
    async with receivers.start(tmp_path_factory.mktemp(request.param), request.param) as r:
        yield r


@pytest_asyncio.fixture(loop_scope="module")
async def receiver(started: Receiver) -> Receiver:
    await started.reset()
    return started


@pytest_asyncio.fixture(loop_scope="module")
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as s:
        yield s


def alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def only_child(d: Path) -> Path:
    (child,) = d.iterdir()
    return child


async def post(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str] | None = None
) -> int:
    async with session.post(url, data=BODY, headers=headers) as resp:
        await resp.read()
        return resp.status


@in_module_loop
async def test_records_every_concurrent_post_with_its_task_headers(
    receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    before = time.time()
    statuses = await asyncio.gather(
        *(post(session, f"{receiver.url}/hook/{i}", task_headers(i)) for i in range(200))
    )
    after = time.time()
    assert statuses == [200] * 200
    hits = await receiver.wait_count(200, 5.0)
    assert await receiver.count() == 200
    assert len(hits) == 200
    by_name = {h.name: h for h in hits}
    assert set(by_name) == {f"task-{i}" for i in range(200)}
    for i in range(200):
        hit = by_name[f"task-{i}"]
        assert hit.path == f"/hook/{i}"
        assert hit.queue == "bench"
        assert hit.retry == i % 3
        assert hit.eta == 1_700_000_000 + i + 0.25
        assert hit.status == 200
        assert before - 0.01 <= hit.t <= after + 0.01
    assert [h.t for h in hits] == sorted(h.t for h in hits)


@in_module_loop
async def test_absent_and_odd_headers(receiver: Receiver, session: aiohttp.ClientSession) -> None:
    odd = {"X-AppEngine-TaskName": 'a"b\\c|d\te', "X-AppEngine-TaskRetryCount": "x"}
    assert await post(session, f"{receiver.url}/plain?query=1") == 200
    assert await post(session, f"{receiver.url}/odd", odd) == 200
    async with session.get(f"{receiver.url}/get") as resp:  # any method is a hit
        assert resp.status == 200
    # nginx logs a request after answering it: wait for the log, not just the answers.
    plain, weird, got = await receiver.wait_count(3, 5.0)
    assert plain == Hit(plain.t, "/plain", "", "", -1, None, 200)
    assert weird == Hit(weird.t, "/odd", 'a"b\\c|d\te', "", -1, None, 200)
    assert got.path == "/get"


@in_module_loop
async def test_count_is_exact_after_each_response(
    receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    """Nothing is buffered: the count is exact once the request is logged.

    nginx writes its log line just after sending the response, so a poll right after the
    response may come microseconds early (milliseconds if nginx is preempted in between).
    """
    for i in range(1, 31):
        await post(session, f"{receiver.url}/one/{i}")
        for _ in range(1000):  # 1 s at most
            if (got := await receiver.count()) >= i:
                break
            await asyncio.sleep(0.001)
        assert got == i


@in_module_loop
async def test_fail_answers_500_to_about_that_share(
    receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    statuses = await asyncio.gather(
        *(post(session, f"{receiver.url}/fail/30/{i}") for i in range(400))
    )
    share = statuses.count(500) / len(statuses)
    assert set(statuses) == {200, 500}
    assert 0.15 <= share <= 0.45, share
    hits = await receiver.wait_count(len(statuses), 5.0)
    assert Counter(h.status for h in hits) == Counter(statuses)
    for pct, status in (("0", 200), ("100", 500)):
        assert [await post(session, f"{receiver.url}/fail/{pct}/x") for _ in range(10)] == [
            status
        ] * 10
    assert await post(session, f"{receiver.url}/fail/101/x") == 400
    assert await post(session, f"{receiver.url}/fail/abc") == 400


@in_module_loop
async def test_slow_waits_and_hit_time_is_arrival(
    receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    sent = time.time()
    start = time.perf_counter()
    assert await post(session, f"{receiver.url}/slow/200/x") == 200
    assert time.perf_counter() - start >= 0.2
    (hit,) = await receiver.wait_count(1, 5.0)
    assert hit.path == "/slow/200/x"
    assert abs(hit.t - sent) < 0.1  # arrival, not the answer 0.2 s later
    start = time.perf_counter()
    assert await post(session, f"{receiver.url}/slow/0/x") == 200
    assert await post(session, f"{receiver.url}/slow/soon") == 400
    assert time.perf_counter() - start < 0.2


@in_module_loop
async def test_keeps_connections_alive_even_on_errors(receiver: Receiver) -> None:
    opened = 0

    async def on_create(*_: object) -> None:
        nonlocal opened
        opened += 1

    trace = aiohttp.TraceConfig()
    trace.on_connection_create_end.append(on_create)
    connector = aiohttp.TCPConnector(limit=4)
    async with aiohttp.ClientSession(connector=connector, trace_configs=[trace]) as s:
        paths = ["/fail/100/x", "/fail/50/x", "/slow/1/x", "/plain", "/fail/abc"] * 20
        await asyncio.gather(*(post(s, receiver.url + p) for p in paths))
    assert opened <= 4


@in_module_loop
async def test_reset_forgets_earlier_hits(
    receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    for i in range(5):
        await post(session, f"{receiver.url}/before/{i}")
    assert len(await receiver.wait_count(5, 5.0)) == 5
    await receiver.reset()
    assert await receiver.count() == 0
    assert await receiver.hits() == []
    for i in range(3):
        await post(session, f"{receiver.url}/after/{i}")
    assert len(await receiver.wait_count(3, 5.0)) == 3
    assert [h.path for h in await receiver.hits()] == [f"/after/{i}" for i in range(3)]


@in_module_loop
async def test_wait_count_returns_hits_or_times_out(
    receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    seen: list[int] = []
    waiting = asyncio.ensure_future(receiver.wait_count(3, 5.0, seen.append))
    for i in range(3):
        await asyncio.sleep(0.06)
        await post(session, f"{receiver.url}/w/{i}")
    hits = await waiting
    assert [h.path for h in hits] == [f"/w/{i}" for i in range(3)]
    assert seen[-1] == 3
    assert len(seen) >= 2  # polled more than once
    start = time.monotonic()
    with pytest.raises(TimeoutError, match=r"receiver got 3 of 4 in 0\.2 s"):
        await receiver.wait_count(4, 0.2)
    assert time.monotonic() - start < 1.0


@in_module_loop
async def test_cpu_and_pids(receiver: Receiver, session: aiohttp.ClientSession) -> None:
    assert receiver.pids
    assert all(alive(pid) for pid in receiver.pids)
    assert receiver.cpu_s() >= 0.0
    assert receiver.url.startswith("http://127.0.0.1:")
    assert not receiver.url.endswith("/")


@pytest.mark.skipif(NGINX_MISSING, reason="nginx is not installed (apt-get install nginx-light)")
@in_module_loop
async def test_nginx_lives_in_its_temp_dir_and_stops(tmp_path: Path) -> None:
    async with receivers.start_nginx(tmp_path) as nginx:
        assert nginx.kind == "nginx"
        assert nginx.url != "http://127.0.0.1:80"
        child = nginx.child
        d = only_child(tmp_path)
        conf = (d / "nginx.conf").read_text()
        assert "/etc/nginx" not in conf
        assert "listen 127.0.0.1:" in conf
        async with aiohttp.ClientSession() as s, s.post(nginx.url + "/x", data=BODY) as resp:
            assert resp.status == 200
        assert await nginx.count() == 1
    assert child.proc.returncode is not None
    assert child.log.read_text() == ""  # nothing on nginx's stdout/stderr
    assert (d / "access.log").read_text().count("\n") == 1


@pytest.mark.skipif(NGINX_MISSING, reason="nginx is not installed (apt-get install nginx-light)")
@in_module_loop
async def test_nginx_tries_another_port_when_its_port_is_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    taken = socket.create_server(("127.0.0.1", 0))
    ports = [taken.getsockname()[1], harness.free_port()]
    monkeypatch.setattr(harness, "free_port", lambda: ports.pop(0))
    with taken:
        start = time.monotonic()
        async with receivers.start_nginx(tmp_path) as nginx:
            assert ports == []  # both ports were tried
            assert nginx.url != f"http://127.0.0.1:{taken.getsockname()[1]}"
            async with aiohttp.ClientSession() as s, s.post(nginx.url + "/x") as resp:
                assert resp.status == 200
        assert time.monotonic() - start < 2.0  # not nginx's own 2.5 s of bind() retries


@in_module_loop
async def test_auto_picks_the_available_kind(tmp_path: Path) -> None:
    async with receivers.start(tmp_path) as r:
        assert r.kind == receivers.available_kind()


@in_module_loop
async def test_start_explains_what_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ValueError, match="unknown receiver kind"):
        async with receivers.start(tmp_path, "apache"):
            pass
    monkeypatch.setattr(receivers, "echo_module", lambda binary: None)
    monkeypatch.setattr(receivers, "nginx_binary", lambda: "/usr/sbin/nginx")
    assert receivers.available_kind() == "aiohttp"
    with pytest.raises(RuntimeError, match="libnginx-mod-http-echo"):
        async with receivers.start(tmp_path, "nginx"):
            pass
    monkeypatch.setattr(receivers, "nginx_binary", lambda: None)
    assert receivers.available_kind() == "aiohttp"
    with pytest.raises(RuntimeError, match="apt-get install nginx-light"):
        async with receivers.start(tmp_path, "nginx"):
            pass


def test_access_log_is_read_incrementally(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    line = "1700000000.250|0.050|200|t-{i}|q|2|1700000000.000|/hook/{i}?a=b\n".replace("|", SEP)
    path.write_text("".join(line.format(i=i) for i in range(50_000)))
    log = receivers._AccessLog(path)
    assert log.pull() == 50_000
    start = time.perf_counter()
    for _ in range(100):
        assert log.pull() == 50_000
    assert time.perf_counter() - start < 0.5  # a poll reads nothing new: cheap
    with path.open("a") as f:
        f.write(line.format(i=50_000) + line.format(i=50_001)[:10])  # a line half written
    assert log.pull() == 50_001
    with path.open("a") as f:
        f.write(line.format(i=50_001)[10:])
    assert log.pull() == 50_002
    hits = log.hits()
    assert len(hits) == 50_002
    assert hits[-1] == Hit(1700000000.2, "/hook/50001", "t-50001", "q", 2, 1700000000.0, 200)
    log.reset()
    assert log.pull() == 0
    assert log.hits() == []
    log.close()


def test_nginx_log_line_parsing() -> None:
    def parse(*fields: str) -> Hit:
        return receivers._parse_nginx_line(SEP.join(fields))

    assert parse("1.500", "0.500", "500", "", "", "", "", "/fail/30/x") == Hit(
        1.0, "/fail/30/x", "", "", -1, None, 500
    )
    odd = parse("2.000", "0.000", "200", 'a\\"b\\\\c|\\u001f', "q", "1", "2.5", "/a|b?c")
    assert odd == Hit(2.0, "/a|b", 'a"b\\c|\x1f', "q", 1, 2.5, 200)
    with pytest.raises(ValueError, match="unexpected line"):
        receivers._parse_nginx_line("garbage")
