"""The dashboard in a real browser (issue 23): Debian's headless Chromium driven by
Selenium through chromium-driver (no browser download). Screenshots are saved to
``$RECONCILER_TEST_ARTIFACTS`` (default ``test-artifacts/``) for people to look at."""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.dashboard import Cell, Dashboard, Event, ReleaseView, Row, Snapshot
from reconciler.server import ReconcilerServer, WebhookSecrets

webdriver = pytest.importorskip("selenium.webdriver")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER), reason="Debian chromium and chromium-driver are not installed"
)
ARTIFACTS = Path(os.environ.get("RECONCILER_TEST_ARTIFACTS", "test-artifacts"))
HOSTILE_TAG = "1.0.0<img src=x onerror=\"document.title='pwned'\">"


def matrix(dev: Cell) -> Snapshot:
    return Snapshot(
        rows=(
            Row(
                "shop",
                (
                    dev,
                    Cell(
                        "staging",
                        "1.0.0",
                        "failed",
                        ("verification failed: Degraded: CrashLoopBackOff",),
                    ),
                ),
            ),
            Row(
                "billing",
                (
                    Cell("dev", "2.3.0", "pending", ("verifying 2.3.0",)),
                    Cell("staging", None, "not deployed"),
                ),
            ),
        ),
        environments=("dev", "staging"),
        finished=datetime.now(UTC),
        commit="c0ffee" + "0" * 34,
    )


@pytest.fixture
def browser() -> Iterator[Any]:
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1000,700"):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(DRIVER)), options=options)
    yield driver
    driver.quit()


@pytest.fixture
def served() -> Iterator[tuple[ReconcilerServer, Dashboard]]:
    soaking = Cell(
        "dev", "1.0.1", "verified", ("soaking in development until 2026-01-01T00:30:00Z",)
    )
    dashboard = Dashboard(matrix(soaking))
    app = ReconcilerServer(
        ("127.0.0.1", 0), on_event=lambda e: None, secrets=WebhookSecrets(environ={}),
        dashboard=dashboard,
    )  # fmt: skip
    with app:
        yield app, dashboard


def shot(driver: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / f"dashboard-{name}.png"))


def after_click(driver: Any, css: str) -> Any:
    """The element ``css`` names on the page a click navigates to. ``click()`` may return
    before the next page has loaded, and the old page would then be searched."""
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    located = expected_conditions.presence_of_element_located(("css selector", css))
    return WebDriverWait(driver, 10).until(located)


def cell_text(driver: Any, row: int, column: int) -> str:
    from selenium.webdriver.common.by import By

    return str(driver.find_element(By.CSS_SELECTOR,
               f"#matrix tbody tr:nth-child({row}) td:nth-child({column + 1})").text)  # fmt: skip


def test_matrix_soak_countdown_and_failed_cell(
    browser: Any, served: tuple[ReconcilerServer, Dashboard]
) -> None:
    app, _ = served
    browser.get(f"{app.url}/")
    assert "1.0.1" in cell_text(browser, 1, 1)
    assert "soaking in development until 2026-01-01T00:30:00Z" in cell_text(browser, 1, 1)
    assert "verification failed: Degraded: CrashLoopBackOff" in cell_text(browser, 1, 2)
    assert "pending" in cell_text(browser, 2, 1)
    shot(browser, "matrix")


def test_a_hostile_tag_renders_as_text(
    browser: Any, served: tuple[ReconcilerServer, Dashboard]
) -> None:
    from selenium.webdriver.common.by import By

    app, dashboard = served
    dashboard.update(matrix(Cell("dev", HOSTILE_TAG, "deployed")))
    browser.get(f"{app.url}/")
    assert HOSTILE_TAG in cell_text(browser, 1, 1)
    assert browser.find_elements(By.TAG_NAME, "img") == []
    assert browser.title == "reconciler"
    shot(browser, "xss")


def test_the_page_refreshes_itself_when_a_pass_ends(
    browser: Any, served: tuple[ReconcilerServer, Dashboard]
) -> None:
    app, dashboard = served
    browser.get(f"{app.url}/")
    assert "1.0.1" in cell_text(browser, 1, 1)
    deadline = time.monotonic() + 15
    tries = 0
    while "1.0.2" not in _text_while_reloading(browser):
        assert time.monotonic() < deadline, "the page did not refresh"
        if tries % 10 == 0:
            # A pass ends. Again each second: the page's EventSource may connect after
            # the first one (a loaded machine), and a missed event only waits for the next.
            dashboard.update(matrix(Cell("dev", "1.0.2", "verified")))
        tries += 1
        time.sleep(0.1)
    shot(browser, "refreshed")


def _text_while_reloading(browser: Any) -> str:
    """The first cell's text, or "" while the page is between two loads."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

    try:
        return cell_text(browser, 1, 1)
    except (NoSuchElementException, StaleElementReferenceException):
        return ""


def test_the_dashboard_command_serves_dry_run_passes(
    bare_remote: Any, registry: Any, tmp_path: Path
) -> None:
    """``reconciler dashboard`` (a laptop): serves the matrix, pushes nothing."""
    import socket
    import subprocess
    import sys

    from tests.helpers.configrepo import AppSpec, config_files

    app = AppSpec("api", f"dash{os.getpid()}/api", "example.com/shop/api")
    registry.push(app.repository, "1.0.0")
    remote = bare_remote(seed=config_files(registry.url, [app]))
    head = remote.head()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "reconciler.cli", "dashboard", "--repo", remote.url,
         "--work-dir", str(tmp_path / "work"), "--listen", f"127.0.0.1:{port}"],
        env={**os.environ, **registry.operator_env(), "GIT_TERMINAL_PROMPT": "0"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        page = ""
        while "<th>shop</th>" not in page:
            assert time.monotonic() < deadline, page
            assert process.poll() is None, "dashboard exited"
            try:
                page = httpx.get(f"http://127.0.0.1:{port}/", timeout=5).text
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        assert "<th>dev</th>" in page and "<th>prod</th>" in page
        assert remote.head() == head  # dry runs: nothing committed or pushed
    finally:
        process.terminate()
        process.wait(timeout=15)


def test_the_release_page_from_a_matrix_cell(
    browser: Any, served: tuple[ReconcilerServer, Dashboard]
) -> None:
    from selenium.webdriver.common.by import By

    app, dashboard = served
    commit = "9f" * 20
    created = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    release = ReleaseView(
        "shop", "1.0.1", "stable", "shop-images", created,
        (("api", "image", "ghcr.io/acme/shop-api", "1.3.0", "sha256:" + "ab" * 32),
         ("web", "image", "ghcr.io/acme/shop-web", "v1.0.1", "sha256:" + "cd" * 32)),
        ("dev",),
        (Event(created, commit, f"https://github.com/acme/config/commit/{commit}",
               "reconciler (automatic)", "release", "1.0.1", "reconciler: 1 release(s)"),),
    )  # fmt: skip
    dashboard.update(replace(dashboard.snapshot, releases={("shop", "1.0.1"): release}))
    browser.get(f"{app.url}/")
    browser.find_element(By.CSS_SELECTOR, "#matrix a.release").click()
    after_click(browser, "#packages")
    assert browser.current_url == f"{app.url}/releases/shop/1.0.1"
    assert browser.title == "shop 1.0.1 · reconciler"
    rows = [r.text for r in browser.find_elements(By.CSS_SELECTOR, "#packages tbody tr")]
    assert rows[0] == f"api image ghcr.io/acme/shop-api 1.3.0 sha256:{'ab' * 32}"
    assert browser.find_element(By.ID, "trigger").text == "shop-images"
    link = browser.find_element(By.CSS_SELECTOR, "#commits a")
    assert link.text == commit[:10]
    assert link.get_attribute("href") == f"https://github.com/acme/config/commit/{commit}"
    shot(browser, "release")


def test_the_soak_countdown_ticks_in_the_browser(
    browser: Any, served: tuple[ReconcilerServer, Dashboard]
) -> None:
    from selenium.webdriver.common.by import By

    app, dashboard = served
    until = (datetime.now(UTC) + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    reason = f"soaking in development until {until}"
    dashboard.update(matrix(Cell("dev", "1.0.1", "verified", (reason,))))
    browser.get(f"{app.url}/")
    left = browser.find_element(By.CSS_SELECTOR, "#matrix time.countdown + .left")
    first = left.text
    assert re.fullmatch(r"\(in [45]m \d\ds\)", first), first
    text = cell_text(browser, 1, 1)
    assert text.startswith(f"1.0.1 verified\n{reason} (in "), text
    deadline = time.monotonic() + 10
    while left.text == first:
        assert time.monotonic() < deadline, "the countdown did not tick"
        time.sleep(0.2)
    shot(browser, "countdown")
    # Without JavaScript the server's text says the same, minus the countdown.
    page = httpx.get(f"{app.url}/", timeout=5).text
    assert f'until <time class="countdown" datetime="{until}">{until}</time>' in page


def test_signing_in_and_proposing_a_promotion_in_the_browser(browser: Any) -> None:
    """The form round trip in Chromium: the CSRF cookie and token, the sign-in, the
    session cookie, the POST; the proposal itself is test_dashboard_actions' part."""
    from selenium.webdriver.common.by import By

    from reconciler.dashboard_actions import ActionAuth, Actions, Proposal

    until = (datetime.now(UTC) + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    snap = matrix(Cell("dev", "1.0.1", "verified", (f"soaking in development until {until}",)))
    prod = Cell("prod", "0.9.0", "deployed", ("manual approval pending",), proposable="1.0.0")
    rows = (replace(snap.rows[0], cells=(*snap.rows[0].cells, prod)), snap.rows[1])
    dashboard = Dashboard(replace(snap, rows=rows, environments=("dev", "staging", "prod"),
                                  can_propose=True), actions_on=True)  # fmt: skip
    asked: list[tuple[str, ...]] = []

    def propose(*args: str) -> Proposal:
        asked.append(args)
        return Proposal(True, "pull request #7 opened", "https://github.com/acme/config/pull/7")

    actions = Actions(ActionAuth(lambda: "s3cret"), propose)
    app = ReconcilerServer(("127.0.0.1", 0), on_event=lambda e: None,
                           secrets=WebhookSecrets(environ={}), dashboard=dashboard,
                           actions=actions)  # fmt: skip
    with app:
        browser.get(f"{app.url}/")
        browser.find_element(By.CSS_SELECTOR, "#login input[name=token]").send_keys("s3cret")
        browser.find_element(By.CSS_SELECTOR, "#login button").click()
        button = after_click(browser, "form.propose button")
        assert button.text == "Propose 1.0.0"
        assert browser.find_elements(By.ID, "login") == []  # signed in
        shot(browser, "propose")
        button.click()
        link = after_click(browser, "#proposed a")
        assert link.text == "pull request #7 opened"
        assert "pull request #7 opened" in cell_text(browser, 1, 3)
        assert browser.find_elements(By.CSS_SELECTOR, "form.propose") == []
        shot(browser, "proposed")
    assert asked == [("shop", "prod", "1.0.0", "dashboard session")]
