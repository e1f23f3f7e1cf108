"""The web console in a real browser: Debian's chromium, headless, driven by its chromedriver.

The real daemon runs as a subprocess with a real receiver; the test adds tasks through the API,
then clicks through the console as an operator would (open the queues, pause and resume a
queue, run a future task now, purge a queue after ticking the confirmation, redrive a dead
letter, log in with a token) and checks the effects on the receiver and through the API.
Screenshots of each step are saved under the test's ``tmp_path``.

Nothing is downloaded: the browser is ``/usr/bin/chromium`` and the driver
``/usr/bin/chromedriver`` from Debian's ``chromium`` and ``chromium-driver`` packages, passed to
selenium explicitly (selenium-manager is made to fail the test if it is ever asked). Without
them the tests are skipped, except under CI (``CI=true``), where ``.ci/run`` installs them and
they must run. Selenium blocks, so its calls run in a thread while the event loop keeps
serving the receiver; waits are ``WebDriverWait`` conditions and the receiver's own events.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common import selenium_manager
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from tests.integration.harness import Daemon, Delivery, Receiver, api

if TYPE_CHECKING:
    import aiohttp
    from selenium.webdriver.remote.webdriver import WebDriver

    from tests.integration.conftest import StartDaemon

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
HOW_TO_INSTALL = "apt-get install chromium chromium-driver"
WAIT_S = 20.0
T = TypeVar("T")
QUEUE_YAML = """
queue:
- name: mail
  rate: 50/s
- name: reports
  rate: 5/s
- name: fragile
  rate: 50/s
  retry_parameters:
    task_retry_limit: 0
- name: jobs
  mode: pull
"""
ADMIN = "console-admin-token-0123456789"
SETTINGS = f"""
auth_tokens:
- name: ops
  token: {ADMIN}
  role: admin
"""


@pytest.fixture
def browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[WebDriver]:
    """Headless chromium through Debian's chromedriver; skipped (failed under CI) without."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if missing:
        message = (
            f"{' and '.join(missing)} not found: the console's browser test needs Debian's "
            f"chromium and its driver; enable it with `{HOW_TO_INSTALL}`"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)

    def no_download(*args: object, **kwargs: object) -> dict[str, str]:
        raise AssertionError("selenium-manager must not run: the driver path is given")

    monkeypatch.setattr(selenium_manager.SeleniumManager, "binary_paths", no_download)
    options = Options()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1400,1000",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(argument)
    service = Service(str(CHROMEDRIVER), log_output=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=options)
    try:
        yield driver
    finally:
        driver.quit()


async def off_loop(step: Callable[[], T]) -> T:
    """Run blocking selenium calls in a thread, so the receiver keeps answering meanwhile."""
    return await asyncio.to_thread(step)


class Console:
    """The steps an operator takes, each a few selenium calls (blocking: run via off_loop)."""

    def __init__(self, driver: WebDriver, base_url: str, shots: Path) -> None:
        self.driver = driver
        self.base_url = base_url
        self.shots = shots
        self.count = 0
        shots.mkdir(exist_ok=True)

    def wait(self) -> WebDriverWait[WebDriver]:
        return WebDriverWait(self.driver, WAIT_S)

    def shot(self, name: str) -> Path:
        self.count += 1
        path = self.shots / f"{self.count:02d}-{name}.png"
        assert self.driver.save_screenshot(str(path))
        return path

    def open(self, path: str) -> None:
        self.driver.get(self.base_url + path)

    def text(self, css: str) -> str:
        return self.driver.find_element(By.CSS_SELECTOR, css).text

    def wait_text(self, css: str, text: str) -> None:
        self.wait().until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, css), text))

    def click(self, css: str) -> None:
        self.wait().until(ec.element_to_be_clickable((By.CSS_SELECTOR, css))).click()

    def confirm_and_click(self, form: str, button: str) -> None:
        """Tick the confirmation box of ``form``, then press its button."""
        self.driver.find_element(By.CSS_SELECTOR, f"{form} input[name=confirm]").click()
        self.click(button)

    def notice(self, text: str) -> None:
        self.wait_text("#notice", text)


def named(name: str) -> Callable[[list[Delivery]], bool]:
    return lambda ds: any(d.headers.get("X-AppEngine-TaskName") == name for d in ds)


async def add(session: aiohttp.ClientSession, d: Daemon, queue: str, *tasks: Any) -> None:
    path = f"/api/v1/queues/{queue}/tasks"
    status, body = await api(session, d, "POST", path, json={"tasks": list(tasks)})
    assert status == 200, body
    assert {t["result"] for t in body["tasks"]} == {"OK"}, body


async def stats(session: aiohttp.ClientSession, d: Daemon, queue: str) -> dict[str, Any]:
    status, body = await api(session, d, "GET", f"/api/v1/queues/{queue}")
    assert status == 200, body
    return body["stats"]  # type: ignore[no-any-return]


@pytest.mark.timeout(180)
async def test_an_operator_manages_queues_in_a_browser(
    browser: WebDriver,
    start_daemon: StartDaemon,
    receiver: Receiver,
    session: aiohttp.ClientSession,
    tmp_path: Path,
) -> None:
    # Given a daemon with a few queues, tasks delivered, waiting, and one that dies at once
    receiver.respond = lambda request, i: 500 if request.path == "/dies" else 200
    d = await start_daemon(QUEUE_YAML)
    await add(session, d, "mail", *({"name": f"sent-{i}", "url": "/mail"} for i in range(5)))
    await add(session, d, "mail", {"name": "later", "url": "/mail", "countdown": 3600})
    await add(session, d, "reports", *({"name": f"r{i}", "countdown": 3600} for i in range(3)))
    await add(session, d, "fragile", {"name": "broken", "url": "/dies"})
    await add(session, d, "jobs", {"name": "j1", "payload": "x", "tag": "resize"})
    await receiver.wait_until(lambda ds: sum(d.path == "/mail" for d in ds) >= 5)
    await d.wait_event("task_dead_lettered")
    ui = Console(browser, d.url, tmp_path / "screenshots")

    # When the operator opens the console, every queue is there, with its counts
    def queues() -> None:
        ui.open("/")
        ui.wait().until(ec.presence_of_element_located((By.ID, "queue-mail")))
        assert ui.driver.title == "Queues · pushd"
        for name in ("mail", "reports", "fragile", "jobs", "default"):
            assert ui.driver.find_elements(By.ID, f"queue-{name}"), name
        assert "paused" not in ui.text("#queue-mail")
        ui.shot("queues")

    await off_loop(queues)

    # and clicks into a queue, pauses it (confirming), then resumes it
    def pause() -> None:
        ui.driver.find_element(By.LINK_TEXT, "mail").click()
        ui.wait_text("h1", "Queue mail")
        assert "later" in ui.text("#task-list")
        ui.confirm_and_click("#pause-form", "#pause")
        ui.notice("The queue is paused")
        assert ui.text("#state") == "paused"
        ui.shot("paused")

    await off_loop(pause)
    assert (await stats(session, d, "mail"))["paused"] is True

    def resume() -> None:
        ui.confirm_and_click("#resume-form", "#resume")
        ui.notice("The queue is resumed")
        assert ui.text("#state") == "running"

    await off_loop(resume)
    assert (await stats(session, d, "mail"))["paused"] is False

    # Then running a task due in an hour delivers it now
    def run_now() -> None:
        ui.driver.find_element(By.LINK_TEXT, "later").click()
        ui.wait_text("h1", "Task later")
        assert "in 59 min" in ui.text("#fields") or "in 1 h" in ui.text("#fields")
        ui.shot("task")
        ui.click("#run")
        ui.notice("The task is due now")

    await off_loop(run_now)
    arrived = await receiver.wait_until(named("later"))
    assert named("later")(arrived), [d.headers.get("X-AppEngine-TaskName") for d in arrived]

    # And purging needs the box ticked: without it the browser does not even send the form
    def purge() -> None:
        ui.open("/console/queues/reports")
        ui.wait_text("#waiting", "3")
        ui.click("#purge")
        assert ui.driver.current_url.endswith("/console/queues/reports")
        assert ui.text("#waiting") == "3"
        ui.confirm_and_click("#purge-form", "#purge")
        ui.notice("The queue is purged")
        assert ui.text("#waiting") == "0"
        ui.shot("purged")

    await off_loop(purge)
    assert (await stats(session, d, "reports"))["tasks"] == 0

    # And a dead letter goes back into its queue (and, still failing, dies again)
    def redrive() -> None:
        ui.open("/console/queues/fragile")
        ui.wait().until(ec.presence_of_element_located((By.ID, "dead-broken")))
        ui.shot("dead-letter")
        ui.click("#dead-broken button.redrive")
        ui.notice("The dead letter is back in the queue")

    await off_loop(redrive)
    await receiver.wait_until(lambda ds: sum(d.path == "/dies" for d in ds) >= 2)
    assert sum(d.path == "/dies" for d in receiver.deliveries) == 2
    await d.wait_event("task_dead_lettered", count=2)

    # And an unknown queue is a readable 404 page
    def not_found() -> None:
        ui.open("/console/queues/nope")
        ui.wait_text("h1", "404 Not found")
        assert "queue 'nope' is not configured" in ui.text("#error")
        ui.shot("not-found")

    await off_loop(not_found)
    shots = sorted(p.name for p in ui.shots.iterdir())
    assert len(shots) == 6, shots


@pytest.mark.timeout(120)
async def test_with_tokens_the_browser_logs_in_and_its_forms_pass_the_origin_check(
    browser: WebDriver,
    start_daemon: StartDaemon,
    session: aiohttp.ClientSession,
    tmp_path: Path,
) -> None:
    (tmp_path / "pushd.yaml").write_text(SETTINGS)
    d = await start_daemon(QUEUE_YAML, extra_args=["--settings", str(tmp_path / "pushd.yaml")])
    ui = Console(browser, d.url, tmp_path / "screenshots")

    def log_in_and_pause() -> None:
        ui.open("/console/queues/mail")  # no cookie yet: the login form, then back here
        ui.wait().until(ec.presence_of_element_located((By.ID, "token")))
        ui.driver.find_element(By.ID, "token").send_keys("not-the-token-0123456789")
        ui.click("#login")
        ui.wait_text("#error", "not a token of this daemon")
        ui.driver.find_element(By.ID, "token").send_keys(ADMIN)
        ui.click("#login")
        ui.wait_text("h1", "Queue mail")
        assert "ops (admin)" in ui.text("header")
        [cookie] = ui.driver.get_cookies()
        assert cookie["httpOnly"] is True
        assert cookie["sameSite"] == "Strict"
        assert ADMIN not in cookie["value"]
        ui.confirm_and_click("#pause-form", "#pause")  # chromium sends Origin: it must match
        ui.notice("The queue is paused")
        ui.shot("logged-in")
        ui.click("header button")  # log out
        ui.wait().until(ec.presence_of_element_located((By.ID, "token")))
        ui.open("/")
        ui.wait().until(ec.presence_of_element_located((By.ID, "token")))

    await off_loop(log_in_and_pause)
    status, body = await api(
        session, d, "GET", "/api/v1/queues/mail", headers={"Authorization": f"Bearer {ADMIN}"}
    )
    assert (status, body["stats"]["paused"]) == (200, True)
