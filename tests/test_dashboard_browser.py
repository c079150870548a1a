"""The dashboard in a real headless Chromium (Debian's ``chromium`` and ``chromium-driver``,
installed by ``scripts/setup --test``; no browser is downloaded): a dean sees only their
own faculty, the language switches to Kyrgyz, a small cell shows "n < 5", a comment holding
a script is shown as text and never runs. Screenshots of every page are kept in
``test-artifacts/screenshots/`` (or ``$SAPAT_ARTIFACTS``)."""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import pytest
from dashboard_fixtures import PASSWORD, build, foreign_units

from dashboards.app import PATHS, create_app

pytestmark = [pytest.mark.slow, pytest.mark.browser]

ARTIFACTS = Path(os.environ.get("SAPAT_ARTIFACTS", Path(__file__).parents[1] / "test-artifacts"))
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if not (CHROMIUM and DRIVER):
        pytest.fail(
            "the browser tests need Debian's chromium and chromium-driver: "
            "run `bash scripts/setup --test`"
        )
    from werkzeug.serving import make_server

    mp = pytest.MonkeyPatch()
    site = build(tmp_path_factory.mktemp("browser"), mp)
    app = create_app(site.root)
    httpd = make_server("127.0.0.1", 0, app.server, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield site, f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    mp.undo()


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
        "--lang=en",
    ):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def _login(driver, base, name):
    from selenium.webdriver.common.by import By

    driver.get(f"{base}/login?lang=en")
    driver.find_element(By.ID, "user").send_keys(name)
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    _wait(driver, lambda d: d.current_url.rstrip("/") == base)


def _wait(driver, condition, timeout=30.0):
    end = time.time() + timeout
    while time.time() < end:
        try:
            if condition(driver):
                return
        except Exception:  # noqa: BLE001 - the page is still being drawn
            pass
        time.sleep(0.2)
    raise AssertionError(f"timed out on {driver.current_url}")


def _rendered(driver, page):
    """Wait until the page's content has been drawn."""
    from selenium.webdriver.common.by import By

    _wait(driver, lambda d: d.find_elements(By.ID, f"page-{page}"))
    time.sleep(0.5)


def _click(driver, css):
    """Click ``css`` once it is there, again if the page was drawn anew meanwhile."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    def attempt(d):
        try:
            d.find_element(By.CSS_SELECTOR, css).click()
            return True
        except StaleElementReferenceException:
            return False

    _wait(driver, attempt)


def _shot(driver, name):
    folder = ARTIFACTS / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(folder / f"{name}.png"))


def _severe(driver):
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def test_a_dean_sees_only_their_faculty_on_every_page(server, browser):
    from selenium.webdriver.common.by import By

    site, base = server
    _login(browser, base, "dean")
    reg = site.ws.registry
    foreign = foreign_units(site, "dean")
    own = {site.tree.university, *site.tree.within("F-NHP")}
    names_foreign = {reg.name(c, "en") for c in foreign} - {reg.name(c, "en") for c in own}
    for page, path in PATHS.items():
        browser.get(f"{base}{path}?lang=en&level=programme")
        _rendered(browser, page)
        for d in browser.find_elements(By.TAG_NAME, "details"):
            browser.execute_script("arguments[0].open = true", d)
        _shot(browser, f"dean-{page}")
        text = browser.find_element(By.TAG_NAME, "body").text
        lines = {line.strip() for line in text.splitlines()}
        leaked = {n for n in names_foreign if n in lines}
        assert not leaked, (page, sorted(leaked)[:5])
        assert not [c for c in foreign if c in lines], page
        assert not _severe(browser), (page, _severe(browser))
    # the unit filter offers the dean's own units only
    browser.get(f"{base}/compare?lang=en")
    _rendered(browser, "compare")
    _click(browser, "#f-unit")
    time.sleep(0.5)
    offered = browser.find_element(By.TAG_NAME, "body").text
    _shot(browser, "dean-unit-filter")
    assert reg.name("F-NHP", "en") in offered
    assert reg.name("KKHPI", "en") not in offered


def test_the_language_switch_shows_kyrgyz(server, browser):
    from selenium.webdriver.common.by import By

    _, base = server
    _login(browser, base, "dean")
    browser.get(f"{base}/trends?lang=en")
    _rendered(browser, "trends")
    assert "Trends" in browser.find_element(By.TAG_NAME, "nav").text
    _click(browser, "#f-lang")
    _wait(browser, lambda d: d.find_elements(By.XPATH, "//*[@role='option' and .='ky']"))
    browser.find_element(By.XPATH, "//*[@role='option' and .='ky']").click()
    _wait(browser, lambda d: "Динамика" in d.find_element(By.TAG_NAME, "nav").text)
    _wait(browser, lambda d: "lang=ky" in d.current_url)
    _rendered(browser, "trends")
    body = browser.find_element(By.TAG_NAME, "body").text
    _shot(browser, "dean-trends-ky")
    assert "Салыштыруу" in body and "Табигый-гуманитардык" in body


def test_a_small_cell_shows_n_below_the_threshold(server, browser):
    from selenium.webdriver.common.by import By

    _, base = server
    _login(browser, base, "office")
    browser.get(f"{base}/compare?lang=en&level=programme&item=se_overall")
    _rendered(browser, "compare")
    _click(browser, "#table-details summary")
    _wait(browser, lambda d: "n < 5" in d.find_element(By.ID, "table").text)
    _shot(browser, "office-compare-programmes")


def test_a_comment_holding_a_script_is_shown_as_text_and_never_runs(server, browser):
    from selenium.webdriver.common.by import By

    site, base = server
    _login(browser, base, "office")
    browser.get(f"{base}/comments?lang=en&instrument=student_experience&unit={site.script_unit}")
    _rendered(browser, "comments")
    _wait(browser, lambda d: "window.__sapat_xss" in d.find_element(By.ID, "table").text)
    time.sleep(1)
    _shot(browser, "office-comments")
    assert browser.execute_script("return window.__sapat_xss === undefined")
    assert not browser.find_elements(By.CSS_SELECTOR, "#table img")


def test_every_page_for_each_role(server, browser):
    from selenium.webdriver.common.by import By

    _, base = server
    for name in ("leader", "teacher"):  # the office's pages are drawn in the tests above
        browser.delete_all_cookies()
        _login(browser, base, name)
        for page, path in PATHS.items():
            browser.get(f"{base}{path}?lang=ru")
            _rendered(browser, page)
            _shot(browser, f"{name}-{page}")
            assert browser.find_element(By.TAG_NAME, "h1").text
            assert not _severe(browser), (name, page, _severe(browser))
