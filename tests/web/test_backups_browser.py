"""The Backups pages in headless Chromium, over a real ``vigile serve`` and a real vault.

The console is started with ``--config`` naming the vault of ``tests/web/backed_up.py``
(its key file; no passphrase in the environment). The test logs in on the Backups page,
reads each account's state, follows alice to her newest snapshot and one folder's
messages, and reads the restore command; screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.wait import WebDriverWait
from tests.vault.conftest import dovecot  # noqa: F401  (the session's Dovecot fixture)
from tests.vault.dovecot import Dovecot
from tests.web.backed_up import FOLDERS, BackupFacts, build_backups
from tests.web.conftest import PASSWORD, USER, build_store
from tests.web.served import serving, vigile
from tests.web.test_browser import _log_in, _severe_logs, _shot, browser  # noqa: F401

#: What a wait may meet while the browser leaves one page for the next: an element of
#: the old page gone stale, or none yet on the new one (a race seen under load).
LEAVING = (NoSuchElementException, StaleElementReferenceException)


def _wait(driver: WebDriver) -> WebDriverWait[WebDriver]:
    return WebDriverWait(driver, 20, ignored_exceptions=LEAVING)


@pytest.fixture(scope="module")
def served_backups(
    dovecot: Dovecot,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, BackupFacts]]:
    folder = tmp_path_factory.mktemp("backups-e2e")
    facts = build_backups(dovecot, folder)
    store = build_store(folder / "vigile.duckdb", with_user=False)
    added = vigile(
        "user", "add", USER, "--db", str(store.path), "--password-stdin", stdin=PASSWORD + "\n"
    )
    assert added.returncode == 0, added.stderr
    with serving(store.path, "--config", str(facts.config)) as base:
        yield base, facts


def test_backups_in_browser(
    browser: WebDriver,  # noqa: F811
    served_backups: tuple[str, BackupFacts],
) -> None:
    base, facts = served_backups
    _log_in(browser, base, "/backups")
    rows = browser.find_elements(By.CSS_SELECTOR, "#accounts tr.account")
    states = {r.get_attribute("data-account"): r.get_attribute("data-state") for r in rows}
    assert states == {"alice": "ok", "bob": "stale", "carol": "never"}
    bob = browser.find_element(By.CSS_SELECTOR, "tr[data-account='bob']").text
    assert "too old" in bob and "3 d 0 h" in bob
    assert "nothing damaged" in browser.find_element(By.ID, "verification").text
    _shot(browser, "backups")

    browser.find_element(By.CSS_SELECTOR, "tr[data-account='alice'] a.account-link").click()
    links = browser.find_elements(By.CSS_SELECTOR, "#snapshots a.snapshot-link")
    assert len(links) == 2
    links[0].click()  # the newest
    newest = f"/backups/alice/{facts.alice_snapshots[-1]}"
    _wait(browser).until(lambda d: d.current_url.endswith(newest))
    folders = [
        r.find_elements(By.TAG_NAME, "td")
        for r in browser.find_elements(By.CSS_SELECTOR, "#folders tbody tr")
    ]
    assert {c[0].text: int(c[1].text) for c in folders} == FOLDERS
    command = browser.find_element(By.ID, "restore-dry-run").text
    assert command.startswith("vigile vault restore -a alice --at ") and "--dry-run" in command

    été = next(c for c in folders if c[0].text == "Été")
    été[3].find_element(By.TAG_NAME, "a").click()
    _wait(browser).until(
        lambda d: d.find_element(By.CSS_SELECTOR, "#messages h2").text.startswith("Messages in Été")
    )
    assert len(browser.find_elements(By.CSS_SELECTOR, "#message-list tbody tr")) == 5
    subjects = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#message-list td.subject")]
    senders = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#message-list td.sender")]
    assert all(subjects) and all(senders) and not any("=?" in t for t in subjects + senders)
    _shot(browser, "backup-snapshot")

    # Search every folder of the snapshot by a word of a (decoded, non-ASCII) subject.
    browser.get(browser.current_url.split("?")[0])  # the snapshot, no folder: every folder
    word = subjects[0].split()[0]
    box = browser.find_element(By.ID, "message-query")
    box.send_keys(word.upper())
    browser.find_element(By.ID, "message-search-button").click()
    WebDriverWait(
        browser, 20, ignored_exceptions=LEAVING
    ).until(  # the search's page, not the one it was sent from
        lambda d: "matching" in d.find_element(By.CSS_SELECTOR, "#messages h2").text
    )
    found = browser.find_elements(By.CSS_SELECTOR, "#message-list tbody tr[data-id]")
    assert found
    for row in found:
        text = " ".join(c.text for c in row.find_elements(By.CSS_SELECTOR, "td.sender, td.subject"))
        assert word.casefold() in text.casefold(), text
    record = found[0].get_attribute("data-id")
    found[0].find_element(By.CSS_SELECTOR, "a.message-restore").click()
    _wait(browser).until(ec.presence_of_element_located((By.ID, "message-imap")))
    command = browser.find_element(By.ID, "message-imap").text
    assert f"--message {record}" in command and "--folder" in command
    assert command.startswith("vigile vault restore -a alice --at ")
    _shot(browser, "backup-message")

    browser.get(base + "/")
    summary = browser.find_element(By.ID, "backup-summary").text
    assert "2 of 3 account(s) not backed up recently" in summary
    assert _severe_logs(browser) == []
