"""The dashboard in a real browser: Debian's headless Chromium, driven by Selenium through
Debian's chromedriver, against a real relay (uvicorn), a real receiver and the sandbox provider.

A user signs in with an API key and lands on the overview (its counts and charts); finds a
finished task by typing its reference into the search box; presses "Redeliver" on its
``task.succeeded`` event and sees the new attempt (HTTP 200, the receiver's answer) appear on
the page; creates a subscription with the form (its secret shown once); and replays the
task's events to it through the replay form, whose confirmation says how many events will
go before anything is sent. The receiver gets the same webhook id each time. A screenshot of
each of those pages is written to the test's directory (their paths are printed; ``pytest
-s`` shows them).

The relay copies finished videos into a local directory (``outputs.store``), so the task page
has the stored video's ``<video>`` and the last frame's ``<img>``: the browser loads both from
the relay's stable links under the page's Content-Security-Policy. The sandbox's video is an
MP4 ``ftyp`` and ``mdat`` of checkable pseudo-random bytes with no ``moov`` box, which no
decoder can open, so its ``readyState`` stays 0: the test asserts what proves the player got
the file (a media request the page's policy let through, the bytes handed to the demuxer)
and accepts ``readyState >= 1`` for the day the sandbox serves a decodable video.

Without Chromium the test is skipped, except under ``CI=true``, where it fails: ``.ci/run``
installs ``chromium`` and ``chromium-driver``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest

from tests.api.test_subscriptions import verified
from tests.e2e.conftest import ReceiverFactory, RelayFactory
from tests.e2e.harness import Reply, ark_input, eventually

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
RECEIVER_ANSWER = "received by the test receiver"
CLIENT_LOGGERS = ("selenium", "urllib3")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,2000",
)


def _unavailable(why: str) -> NoReturn:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"the dashboard browser test cannot run under CI: {why}", pytrace=False)
    pytest.skip(f"dashboard browser test skipped: {why}")


def _browser_paths() -> None:
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if shutil.which(path) is None:
            _unavailable(f"{path} is missing (apt-get install {package})")
    try:
        import selenium  # noqa: F401
    except ImportError:
        _unavailable("selenium is not installed (pip install -e '.[test]')")


@dataclass(frozen=True)
class Walk:
    """What the browser did besides the redelivery: the overview, the search, the new
    subscription and the replay."""

    overview_succeeded: str
    overview_chart_bars: int
    local_time_title: str
    secret: str
    subscription_id: str
    replay_count: str
    replay_flash: str
    pages: list[str]
    """Every page's source, to look for secrets in."""


@dataclass(frozen=True)
class Seen:
    attempts_before: int
    attempts_after: int
    last_status_code: str
    last_snippet: str
    flash: str
    page_source: str
    media: dict[str, Any]
    """What the browser made of the stored video and last frame (``MEDIA_STATE``)."""
    console: list[str]
    walk: Walk


MEDIA_STATE = """
const video = document.getElementById('output-video');
const frame = document.getElementById('output-last-frame');
if (!video || !frame) return null;
return {
  src: video.currentSrc,
  ready: video.readyState,
  error: video.error ? video.error.message : null,
  frame_width: frame.complete ? frame.naturalWidth : 0,
  fetched: performance.getEntriesByType('resource')
    .filter(e => e.initiatorType === 'video').map(e => e.name),
};
"""
"""Read through WebDriver (the page itself runs no script: its policy allows none)."""


def browse(
    base_url: str,
    api_key: str,
    task_id: str,
    event_id: str,
    profile: Path,
    shots: Path,
    receiver_url: str,
    since: str,
) -> Seen:
    """The user's clicks, in a blocking Selenium session (run in a thread: the relay serves
    from the test's event loop meanwhile)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # CSP refusals
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    # An explicit driver path: Selenium Manager (which would download one) never runs.
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        driver.set_page_load_timeout(20)

        def until(what: str, check: Callable[[WebDriver], Any], within: float = 15) -> Any:
            deadline = time.monotonic() + within
            while True:
                found = check(driver)
                if found:
                    return found
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"the page never showed {what}: {driver.current_url}\n"
                        f"{driver.page_source[:3000]}"
                    )
                time.sleep(0.2)

        def shot(name: str) -> None:
            assert driver.save_screenshot(str(shots / name)), f"no screenshot {name}"

        pages: list[str] = []
        # Signed out, the dashboard sends the browser to its sign-in form.
        driver.get(f"{base_url}/dashboard/tasks")
        assert driver.current_url == f"{base_url}/dashboard/login", driver.current_url
        driver.find_element(By.ID, "api_key").send_keys(api_key)
        driver.find_element(By.ID, "sign-in").click()
        # Signed in, the overview: its counts, its charts, its times in the browser's zone.
        until("the overview", lambda d: d.current_url == f"{base_url}/dashboard/")
        succeeded = driver.find_element(By.ID, "count-succeeded").text
        bars = len(driver.find_elements(By.CSS_SELECTOR, "#chart-24h rect.bar"))
        shot("dashboard-overview.png")
        pages.append(driver.page_source)

        # The search box: the task's reference leads straight to its page.
        box = driver.find_element(By.ID, "search-box")
        box.send_keys("browser-test")
        box.submit()
        until("the task page", lambda d: d.current_url.endswith(f"/dashboard/tasks/{task_id}"))
        local = until("a local time", lambda d: d.find_elements(By.CSS_SELECTOR, "time.local"))
        local_title = str(local[0].get_attribute("title"))
        assert driver.find_element(By.ID, "task-status").text == "succeeded"

        def media_settled(d: WebDriver) -> dict[str, Any] | None:
            state: dict[str, Any] | None = d.execute_script(MEDIA_STATE)
            if state is None or not state["frame_width"]:
                return None
            return state if state["ready"] >= 1 or state["error"] is not None else None

        media = until("the stored video and last frame loaded", media_settled)
        logged = driver.execute("getLog", {"type": "browser"})["value"]  # get_log, typed
        console = [str(entry["message"]) for entry in logged]

        def attempts(d: WebDriver) -> list[Any]:
            table = d.find_element(By.ID, f"deliveries-{event_id}")
            return list(table.find_elements(By.CSS_SELECTOR, "tr.attempt"))

        before = len(until("the first attempt", attempts))
        driver.find_element(By.ID, f"redeliver-{event_id}").click()
        flash = until("the redelivery notice", lambda d: d.find_elements(By.ID, "flash"))[0].text

        def one_more(d: WebDriver) -> list[Any] | None:
            rows = attempts(d)
            if len(rows) > before:
                return rows
            d.refresh()  # the attempt is made just after the redirect: look again
            return None

        rows = until("the new attempt", one_more)
        last = rows[-1]
        code = last.find_element(By.CSS_SELECTOR, "td.status-code").text
        snippet = last.find_elements(By.TAG_NAME, "td")[-1].text
        # The whole page (notice, timeline, both attempts) fits the window.
        shot("dashboard-redelivered.png")
        task_page = driver.page_source

        # A subscription, created with the form; its secret is shown once.
        driver.get(f"{base_url}/dashboard/subscriptions")
        driver.find_element(By.ID, "new-subscription").click()
        until("the form", lambda d: d.find_elements(By.ID, "subscription-form"))
        driver.find_element(By.ID, "sub-url").send_keys(receiver_url)
        driver.find_element(By.ID, "sub-description").send_keys("made in the browser")
        shot("dashboard-subscription-form.png")
        driver.find_element(By.ID, "save-subscription").click()
        secret = until("the secret", lambda d: d.find_elements(By.ID, "new-secret"))[0].text
        sub_id = driver.find_element(By.ID, "new-subscription-id").text
        shot("dashboard-subscription-created.png")
        pages.append(driver.page_source)

        # Its replay: a range, then the confirmation that counts, then the replay.
        driver.get(f"{base_url}/dashboard/subscriptions")
        driver.find_element(By.CSS_SELECTOR, f"#sub-{sub_id} a.replay").click()
        until("the replay form", lambda d: d.find_elements(By.ID, "replay-form"))
        driver.find_element(By.ID, "replay-since").send_keys(since)
        driver.find_element(By.ID, "count-replay").click()
        count = until("the count", lambda d: d.find_elements(By.ID, "replay-count"))[0].text
        shot("dashboard-replay-confirm.png")
        pages.append(driver.page_source)
        driver.find_element(By.ID, "confirm-replay").click()
        replayed = until("the replay notice", lambda d: d.find_elements(By.ID, "flash"))[0].text
        shot("dashboard-replayed.png")
        pages.append(driver.page_source)
        logged = driver.execute("getLog", {"type": "browser"})["value"]
        console += [str(entry["message"]) for entry in logged]
        walk = Walk(succeeded, bars, local_title, secret, sub_id, count, replayed, pages)
        return Seen(before, len(rows), code, snippet, flash, task_page, media, console, walk)
    finally:
        driver.quit()


@pytest.mark.slow
async def test_sign_in_open_a_task_redeliver_and_see_the_new_attempt(
    start_relay: RelayFactory,
    start_receiver: ReceiverFactory,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _browser_paths()
    # The test's own browser client logs what it types and every page it reads: not the
    # relay's logs. (Last, the root: caplog's handler takes the level of the last call.)
    for client_logger in CLIENT_LOGGERS:
        caplog.set_level(logging.WARNING, logger=client_logger)
    caplog.set_level(logging.DEBUG)
    relay = await start_relay(
        outputs={"store": f"file://{tmp_path / 'kept'}", "wait_seconds": 10},
        sandbox={"video_bytes": 200_000},
    )
    receiver = await start_receiver(default=Reply(200, body=RECEIVER_ANSWER))
    account = await relay.account("browser-user")
    async with relay.client(account) as api:
        created = await api.post(
            "/v1/tasks",
            json={
                "provider": "sandbox",
                "input": {**ark_input("a lighthouse at dusk"), "return_last_frame": True},
                "callback_url": receiver.url,
                "reference": "browser-test",
            },
        )
        assert created.status_code == 201, created.text
        task_id = created.json()["id"]

        async def succeeded_event() -> str | None:
            listed = await api.get(
                "/v1/events", params={"task_id": task_id, "type": "task.succeeded"}
            )
            data = listed.json()["data"]
            return str(data[0]["id"]) if data else None

        event_id = await eventually(succeeded_event, within=15, what="task.succeeded")
    (first,) = await receiver.wait_for(1)
    assert first.webhook_id == event_id
    video_url = first.json()["data"]["video_url"]
    assert video_url.startswith(f"{relay.url}/v1/outputs/")  # the stored copy's link

    async with relay.client(account) as api:
        task = (await api.get(f"/v1/tasks/{task_id}")).json()
    since = task["created_at"]  # the replay's range starts with the task
    shots = tmp_path / "screenshots"
    shots.mkdir()
    seen = await asyncio.to_thread(
        browse,
        relay.url,
        account.api_key,
        task_id,
        event_id,
        tmp_path / "chromium-profile",
        shots,
        receiver.url,
        since,
    )
    for taken in sorted(shots.iterdir()):
        print(f"\ndashboard screenshot: {taken}")
    screenshot = shots / "dashboard-redelivered.png"

    assert seen.attempts_before == 1
    assert seen.attempts_after == 2
    assert seen.last_status_code == "200"
    assert RECEIVER_ANSWER in seen.last_snippet
    assert f"Redelivery of {event_id} queued" in seen.flash
    # The stored video and last frame, loaded from the relay's links under the page's policy.
    assert seen.media["src"] == video_url
    assert seen.media["frame_width"] == 32  # the sandbox's last frame is a 32x18 PNG
    assert video_url in seen.media["fetched"], seen.media  # a policy refusal fetches nothing
    assert seen.media["ready"] >= 1 or "DEMUXER" in seen.media["error"], seen.media
    assert not [line for line in seen.console if "Content Security Policy" in line]
    assert screenshot.stat().st_size > 10_000
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The overview counted the task and charted it; times show in the browser's zone.
    walk = seen.walk
    assert walk.overview_succeeded == "1"
    assert walk.overview_chart_bars == 1
    assert walk.local_time_title.startswith("UTC 20"), walk.local_time_title
    # The replay said how many events would go before sending them: the task's succeeded
    # event (the new subscription wants terminal events).
    assert "1 event will be sent again" in walk.replay_count, walk.replay_count
    assert f"Replay to {walk.subscription_id} queued: 1 event(s)." in walk.replay_flash
    assert walk.secret.startswith("whsec_")
    for shot in shots.iterdir():
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", shot
    # The receiver got the same event again: same webhook id, a fresh signature; then once
    # more, replayed to the new subscription, signed with its secret.
    await receiver.wait_for(3)
    assert len(receiver.with_id(event_id)) == 3
    replayed = receiver.with_id(event_id)[-1]
    assert verified(walk.secret, replayed)["type"] == "task.succeeded"
    # Neither the page nor anything the relay (or its server) logged holds the key or the
    # signing secret.
    logged = [r.getMessage() for r in caplog.records if r.name.split(".")[0] not in CLIENT_LOGGERS]
    assert logged, "nothing was logged: the check below would prove nothing"
    for secret in (account.api_key, account.secret):
        assert secret not in seen.page_source
        assert not [line for line in logged if secret in line]
    # The subscription's secret was on its one page, on no other, and in no log.
    assert [walk.secret in page for page in walk.pages] == [False, True, False, False]
    assert not [line for line in logged if walk.secret in line]
