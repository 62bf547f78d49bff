"""End to end in headless Chromium (Debian's chromium and chromedriver) via Selenium.

The test starts ``vigile serve`` on a free loopback port over the test store, logs in,
follows the top host to its top finding, checks the plots were drawn, allowlists the
finding and sees it marked suppressed. Screenshots go to ``test-artifacts/``. The
HTML report is opened from disk with the same browser, offline. While another process
holds the store, pages and plots wait for it by themselves.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.wait import WebDriverWait
from tests.conftest import ROOT, missing
from tests.web.conftest import BEACON_SRC, PASSWORD, USER, StoreFacts, build_store
from tests.web.served import holding, serving, vigile

from vigile.web.access import REQUEST_WAIT, RETRY_AFTER

ARTIFACTS = ROOT / "test-artifacts"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1400,1000",
)


def _need(path: str) -> str:
    if not Path(path).exists():
        missing(f"{path} is missing", " (.ci/run installs chromium and chromium-driver)")
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = _need("/usr/bin/chromium")
    for flag in FLAGS:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(_need("/usr/bin/chromedriver")), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, StoreFacts]]:
    facts = build_store(tmp_path_factory.mktemp("e2e") / "vigile.duckdb", with_user=False)
    added = vigile(
        "user", "add", USER, "--db", str(facts.path), "--password-stdin", stdin=PASSWORD + "\n"
    )
    assert added.returncode == 0, added.stderr
    with serving(facts.path) as base:
        yield base, facts


def _shot(driver: WebDriver, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    height = driver.execute_script("return document.documentElement.scrollHeight;")
    driver.set_window_size(1400, min(int(height) + 140, 3000))  # the whole page, in one shot
    driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))
    driver.set_window_size(1400, 1000)


def _wait_drawn(driver: WebDriver, chart_id: str) -> None:
    """Wait for plotly to draw a chart, then check its SVG holds data marks."""
    WebDriverWait(driver, 30).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, f"#{chart_id}[data-rendered='1']"))
    )
    marks = driver.execute_script(
        "const el = document.getElementById(arguments[0]);"
        "return el.querySelectorAll('svg.main-svg .trace path, svg.main-svg .trace .point')"
        ".length;",
        chart_id,
    )
    assert marks > 0, f"{chart_id} has no drawn marks"


def _log_in(driver: WebDriver, base: str, path: str) -> None:
    """Open ``path`` logged out, log in on the page it redirects to, land on ``path``."""
    driver.delete_all_cookies()
    driver.get(base + path)
    assert "/login" in driver.current_url
    driver.find_element(By.ID, "username").send_keys(USER)
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "#login-form button").click()
    WebDriverWait(driver, 20).until(lambda d: d.current_url == base + path)


def _severe_logs(driver: WebDriver) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def test_console_in_browser(browser: WebDriver, served: tuple[str, StoreFacts]) -> None:
    base, facts = served
    _log_in(browser, base, "/")
    WebDriverWait(browser, 20).until(ec.presence_of_element_located((By.ID, "hosts")))
    _shot(browser, "overview")

    top = browser.find_element(By.CSS_SELECTOR, "#hosts a.host-link")
    assert top.text == BEACON_SRC
    top.click()
    _wait_drawn(browser, "chart-traffic")
    _shot(browser, "host")

    first = browser.find_element(By.CSS_SELECTOR, "table.findings tr.finding a")
    first.click()
    assert browser.current_url.endswith(f"/findings/{facts.beacon_id}")
    _wait_drawn(browser, "chart-intervals")
    _wait_drawn(browser, "chart-checkins")
    _wait_drawn(browser, "chart-series")
    assert browser.find_element(By.ID, "status").text == "active"
    _shot(browser, "finding")

    browser.find_element(By.ID, "allow-link").click()
    assert browser.find_element(By.ID, "value").get_attribute("value") == "cdn-check.example.net"
    browser.find_element(By.ID, "reason").send_keys("Vendor health check, confirmed with vendor")
    browser.find_element(By.ID, "save-entry").click()
    WebDriverWait(browser, 20).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, "#entries tr[data-entry='console:1']"))
    )
    audit = browser.find_element(By.ID, "audit").text
    assert "allowlist.add" in audit and USER in audit
    _shot(browser, "allowlist")

    browser.get(f"{base}/findings/{facts.beacon_id}")
    assert browser.find_element(By.ID, "status").text == "suppressed by console:1"
    browser.get(base + "/")
    row = browser.find_element(By.CSS_SELECTOR, "#hosts tbody tr").text
    assert BEACON_SRC not in row  # the suppressed beacon no longer ranks its host first
    assert _severe_logs(browser) == []


def _wait_for_text(browser: WebDriver, element_id: str, text: str) -> None:
    """Wait until the element shows ``text``. The page re-renders the element while it is
    read, and Chromium then reports the node as gone ("does not belong to the document")
    as a plain WebDriverException: such a read is retried, like a stale element."""
    WebDriverWait(
        browser, 20, ignored_exceptions=(StaleElementReferenceException, WebDriverException)
    ).until(ec.text_to_be_present_in_element((By.ID, element_id), text))


def test_allowlist_edit_and_remove_in_browser(
    browser: WebDriver, served: tuple[str, StoreFacts]
) -> None:
    base, facts = served
    _log_in(browser, base, f"/findings/{facts.exfil_id}")
    browser.find_element(By.ID, "allow-link").click()
    assert browser.find_element(By.ID, "value").get_attribute("value") == "198.51.100.77"
    browser.find_element(By.ID, "reason").send_keys("Off-site backup target")
    browser.find_element(By.ID, "save-entry").click()
    row = "#entries tr[data-value='198.51.100.77/32']"
    WebDriverWait(browser, 20).until(ec.presence_of_element_located((By.CSS_SELECTOR, row)))
    browser.find_element(By.CSS_SELECTOR, f"{row} .edit-entry").click()
    reason = browser.find_element(By.ID, "reason")
    reason.clear()
    reason.send_keys("Off-site backup target until the contract ends")
    browser.find_element(By.ID, "save-entry").click()
    _wait_for_text(browser, "audit", "allowlist.edit")
    assert "until the contract ends" in browser.find_element(By.CSS_SELECTOR, row).text

    browser.find_element(By.CSS_SELECTOR, f"{row} .remove-entry").click()
    WebDriverWait(browser, 10).until(ec.alert_is_present()).accept()
    _wait_for_text(browser, "audit", "allowlist.remove")
    assert browser.find_elements(By.CSS_SELECTOR, row) == []
    browser.get(f"{base}/findings/{facts.exfil_id}")
    assert browser.find_element(By.ID, "status").text == "active"
    _wait_drawn(browser, "chart-series")
    assert _severe_logs(browser) == []


def test_report_offline_in_browser(
    browser: WebDriver, served: tuple[str, StoreFacts], tmp_path: Path
) -> None:
    _, facts = served
    copy = tmp_path / "copy.duckdb"
    shutil.copy(facts.path, copy)  # the running console holds the original open
    out = tmp_path / "report.html"
    done = vigile("report", "--html", str(out), "--db", str(copy))
    assert done.returncode == 0, done.stderr
    browser.get(out.as_uri())
    WebDriverWait(browser, 60).until(
        lambda d: d.execute_script(
            "const c = document.querySelectorAll('.chart');"
            "return c.length > 0 && [...c].every(e => e.dataset.rendered === '1');"
        )
    )
    counts = browser.execute_script(
        "return [...document.querySelectorAll('.chart')].map("
        "e => e.querySelectorAll('svg.main-svg .trace path, svg.main-svg .trace .point').length);"
    )
    assert counts and all(n > 0 for n in counts), counts
    loaded = browser.execute_script("return performance.getEntriesByType('resource').length;")
    assert loaded == 0  # nothing fetched: the file is self-contained
    _shot(browser, "report")
    assert _severe_logs(browser) == []


def test_pages_and_plots_wait_for_a_busy_store(
    browser: WebDriver, served: tuple[str, StoreFacts]
) -> None:
    """A long ingest holds the store: a page says so and reloads itself, a plot's data
    request is asked again after Retry-After; both show the data once the store is free."""
    base, facts = served
    browser.get(base + "/login")  # on the console's origin, where the cookies are cleared
    _log_in(browser, base, "/")
    browser.set_script_timeout(4 * RETRY_AFTER + 10)
    with holding(facts.path) as holder:
        # It lets go after the console's wait (REQUEST_WAIT), before the retry.
        threading.Timer(REQUEST_WAIT + 1.5, holder.communicate, ("",)).start()
        answer = browser.execute_async_script(
            "const done = arguments[arguments.length - 1]; const said = [];"
            "getJson('/api/overview', (m) => said.push(m))"
            ".then((d) => done({said: said, hosts: d.hosts.length}))"
            ".catch((e) => done({error: e.message}));"
        )
    assert "error" not in answer, answer
    assert answer["hosts"] > 0
    assert len(answer["said"]) == 1, answer
    assert "in use by another process" in answer["said"][0]
    assert answer["said"][0].endswith(f"trying again in {RETRY_AFTER} s")

    with holding(facts.path) as holder:
        browser.get(f"{base}/findings/{facts.beacon_id}")
        assert browser.find_element(By.TAG_NAME, "h1").text == "503"
        reloading = browser.find_element(By.ID, "reloading").text
        assert reloading == f"This page reloads by itself in {RETRY_AFTER} s."
        assert f"PID {holder.pid}" in browser.find_element(By.CSS_SELECTOR, "p.error").text
    WebDriverWait(browser, 4 * RETRY_AFTER).until(ec.presence_of_element_located((By.ID, "status")))
    assert browser.current_url.endswith(f"/findings/{facts.beacon_id}")
    _wait_drawn(browser, "chart-series")
