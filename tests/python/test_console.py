"""The web console (issue 23) in a real browser: Debian's headless Chromium
driven by selenium (through Debian's chromedriver). The pages load and show
what the API says; an admin purges and moves, a read-only user is refused;
a message body with HTML and script in it is shown as text and never runs.

With HAWSER_SCREENSHOTS=1 the main pages are saved under docs/console/."""

from __future__ import annotations

import os
import shutil
import urllib.request
from pathlib import Path

import pytest

from conftest import HOST, REPO, free_port, unique, wait_until
from test_admin import Api, q
from test_security import passwd

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.common.exceptions import StaleElementReferenceException
except ImportError:  # pragma: no cover - .ci/run installs it
    webdriver = None

pytestmark = pytest.mark.skipif(webdriver is None or CHROMIUM is None or CHROMEDRIVER is None,
                                reason="needs selenium, chromium and chromium-driver")

SCREENSHOTS = REPO / "docs" / "console"
HOSTILE = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script><b>bold</b> & "quotes"'


@pytest.fixture
def console(broker_factory, tmp_path):
    users = tmp_path / "users"
    for user, group in (("root", "admins"), ("viewer", "users")):
        assert passwd(users, user, f"pw-{user}", "--groups", group).returncode == 0
    port = free_port()
    b = broker_factory("--users-file", str(users), "--admin", f"{HOST}:{port}")
    b.admin_port = port
    b.admin = Api(port, ("root", "pw-root"))
    b.viewer = Api(port, ("viewer", "pw-viewer"))
    return b


@pytest.fixture
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,900", "--no-proxy-server"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        # quit() stops chromedriver and the browser it started (by their PIDs).
        driver.quit()


def login(driver, port: int, user: str, password: str) -> None:
    driver.get(f"http://{HOST}:{port}/admin/")
    assert wait_until(lambda: driver.find_element(By.ID, "login").is_displayed(), timeout=10)
    driver.find_element(By.ID, "login-user").send_keys(user)
    driver.find_element(By.ID, "login-password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "#login button[type=submit]").click()
    assert wait_until(lambda: driver.find_element(By.ID, "nav").is_displayed(), timeout=10), \
        driver.find_element(By.ID, "status").text
    assert not driver.find_element(By.ID, "login").is_displayed()


def cell_texts(driver, selector: str) -> list[str]:
    return [td.text for td in driver.find_elements(By.CSS_SELECTOR, selector)]


def row_of(driver, destination: str):
    rows = driver.find_elements(By.CSS_SELECTOR, f'#destinations tr[data-destination="{destination}"]')
    return rows[0] if rows else None


def fresh(fn):
    """``fn()``, again if the page redrew what it held (lists refresh every
    two seconds); a bounded number of times."""
    for _ in range(20):
        try:
            return fn()
        except StaleElementReferenceException:
            continue
    return fn()


def shoot(driver, name: str) -> None:
    if os.environ.get("HAWSER_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(SCREENSHOTS / f"{name}.png"))


def test_the_pages_load_and_show_what_the_api_says(console, stomp_factory, browser):
    b = console
    queue, topic = unique("orders"), unique("prices")
    p = stomp_factory(b, client_id=unique("shop"), headers={"login": "root", "passcode": "pw-root"})
    for i in range(7):
        p.send(f"/queue/{queue}", f"order {i}", headers={"persistent": "true", "region": "eu"})
    p.subscribe(f"/topic/{topic}", id="t", ack="auto")
    assert b.admin.wait_depth(f"queue://{queue}", 7)

    login(browser, b.admin_port, "root", "pw-root")
    assert wait_until(lambda: row_of(browser, f"queue://{queue}") is not None, timeout=10)
    api_row = b.admin.row(f"queue://{queue}")
    texts, spark = fresh(lambda: (
        [c.text for c in row_of(browser, f"queue://{queue}").find_elements(By.TAG_NAME, "td")],
        row_of(browser, f"queue://{queue}").find_elements(By.CSS_SELECTOR, "svg.spark polyline")))
    assert texts[:2] == [f"queue://{queue}", str(api_row["depth"])]
    assert texts[3:6] == [str(api_row[k]) for k in ("consumers", "producers", "enqueued")]
    assert spark, "a depth sparkline"
    # It draws a point per refresh (every two seconds), following the depth.
    def points() -> int:
        return fresh(lambda: len(row_of(browser, f"queue://{queue}").find_element(
            By.CSS_SELECTOR, "svg.spark polyline").get_attribute("points").split()))
    for i in range(7, 12):
        n = points()
        assert wait_until(lambda: points() > n, timeout=10)
        p.send(f"/queue/{queue}", f"order {i}", headers={"persistent": "true", "region": "eu"})
    assert wait_until(lambda: fresh(lambda: row_of(browser, f"queue://{queue}")
                                    .find_elements(By.TAG_NAME, "td")[1].text) == "12", timeout=10)
    assert "root (admin)" in browser.find_element(By.ID, "who").text
    shoot(browser, "destinations")

    browser.get(f"http://{HOST}:{b.admin_port}/admin/#browse/{queue}")
    assert wait_until(lambda: len(browser.find_elements(By.CSS_SELECTOR, "#messages tbody tr")) == 12, timeout=10)
    bodies = cell_texts(browser, "#messages tbody td.body:nth-of-type(8)")
    api_bodies = [m["body"] for m in b.admin.ok("GET", q(queue) + "/messages")]
    assert bodies == api_bodies
    shoot(browser, "browse")

    browser.get(f"http://{HOST}:{b.admin_port}/admin/#connections")
    assert wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, "#connections tbody tr"), timeout=10)
    api_ids = sorted(str(c["id"]) for c in b.admin.ok("GET", "/api/connections"))
    page_ids = fresh(lambda: sorted(tr.get_attribute("data-connection")
                                    for tr in browser.find_elements(By.CSS_SELECTOR, "#connections tbody tr")))
    assert page_ids == api_ids
    shoot(browser, "connections")

    browser.get(f"http://{HOST}:{b.admin_port}/admin/#subscriptions")
    assert wait_until(lambda: fresh(lambda: any(f"topic://{topic}" in t
                                                 for t in cell_texts(browser, "#subscriptions td"))),
                      timeout=10)

    browser.get(f"http://{HOST}:{b.admin_port}/admin/#cluster")
    assert wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, "#brokers tbody tr"), timeout=10)
    role = fresh(lambda: browser.find_element(By.CSS_SELECTOR, "#brokers tbody tr td:nth-child(2)").text)
    assert role == b.admin.ok("GET", "/api/cluster")["this"]["role"] == "standalone"
    assert browser.find_elements(By.CSS_SELECTOR, "#timeline li")


def test_the_cluster_page_shows_master_standby_and_the_takeover(tmp_path, browser):
    from test_stomppy_master_slave import SharedBroker, wait_for_master

    data = tmp_path / "shared"
    pair = [SharedBroker(tmp_path / n, data, n) for n in ("M", "S")]
    for me, other in ((pair[0], pair[1]), (pair[1], pair[0])):
        config = me.workdir / "hawser.toml"
        config.write_text(f'[admin]\npeers = ["{HOST}:{other.status_port}"]\n')
        me.extra = ("--config", str(config))

    def roles() -> list[str]:
        return fresh(lambda: [tr.find_elements(By.TAG_NAME, "td")[1].text
                              for tr in browser.find_elements(By.CSS_SELECTOR, "#brokers tbody tr")])

    try:
        pair[0].start()
        assert wait_for_master(pair[:1], timeout=15.0) is pair[0]
        pair[1].start()
        # Without users, the console's login is empty.
        login(browser, pair[0].status_port, "", "")
        browser.get(f"http://{HOST}:{pair[0].status_port}/admin/#cluster")
        assert wait_until(lambda: roles() == ["master", "slave"], timeout=10), roles()
        shoot(browser, "cluster")
        pair[0].kill()
        assert wait_until(lambda: Api(pair[1].status_port).ok("GET", "/api/cluster")["this"]["role"] == "master",
                          timeout=15.0)
        login(browser, pair[1].status_port, "", "")
        browser.get(f"http://{HOST}:{pair[1].status_port}/admin/#cluster")
        # The old master does not answer: its row says why.
        assert wait_until(lambda: roles()[:1] == ["master"] and "refused" in roles()[1], timeout=10), roles()
        events = fresh(lambda: [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#timeline li")])
        assert "slave" in events[-2] and "master" in events[-1], events
        shoot(browser, "takeover")
    finally:
        for b in pair:
            b.stop()


def test_a_body_with_html_and_script_is_shown_as_text(console, stomp_factory, browser):
    b = console
    queue = unique("hostile")
    p = stomp_factory(b, headers={"login": "root", "passcode": "pw-root"})
    p.send(f"/queue/{queue}", HOSTILE, headers={"persistent": "true", "note": "<i>prop</i>"})
    login(browser, b.admin_port, "viewer", "pw-viewer")
    browser.get(f"http://{HOST}:{b.admin_port}/admin/#browse/{queue}")
    assert wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, "#messages tbody tr"), timeout=10)
    body_cell = browser.find_elements(By.CSS_SELECTOR, "#messages tbody td.body")[1]
    assert body_cell.get_attribute("textContent") == HOSTILE
    assert not body_cell.find_elements(By.TAG_NAME, "img")
    assert not body_cell.find_elements(By.TAG_NAME, "b")
    props = browser.find_elements(By.CSS_SELECTOR, "#messages tbody td.body")[0]
    assert props.get_attribute("textContent") == "note=<i>prop</i>"
    assert browser.execute_script("return window.__pwned === undefined")


def test_purge_and_move_work_for_an_admin_and_are_refused_to_a_reader(console, stomp_factory, browser):
    b = console
    queue, target = unique("work"), unique("parked")
    p = stomp_factory(b, headers={"login": "root", "passcode": "pw-root"})
    for i in range(3):
        p.send(f"/queue/{queue}", f"job {i}", headers={"persistent": "true"})
    b.admin.ok("PUT", q(target))
    assert b.admin.wait_depth(f"queue://{queue}", 3)

    # A reader sees the buttons disabled, and the API refuses the change
    # even when the page's own script is made to send it.
    login(browser, b.admin_port, "viewer", "pw-viewer")
    assert wait_until(lambda: row_of(browser, f"queue://{queue}") is not None, timeout=10)
    assert fresh(lambda: not row_of(browser, f"queue://{queue}")
                 .find_element(By.XPATH, ".//button[text()='purge']").is_enabled())
    status = browser.execute_async_script(
        """const done = arguments[arguments.length - 1];
        const auth = sessionStorage.getItem("hawser-auth");
        fetch("/api/session", {headers: {Authorization: "Basic " + auth}})
          .then(r => r.json())
          .then(s => fetch(arguments[0], {method: "POST", headers: {
              Authorization: "Basic " + auth, "X-Hawser-Token": s.token}}))
          .then(r => done(r.status));""",
        q(queue) + "/purge")
    assert status == 403
    assert b.admin.row(f"queue://{queue}")["depth"] == 3

    # The admin moves one message, then purges the rest.
    browser.delete_all_cookies()
    browser.execute_script("sessionStorage.clear()")
    login(browser, b.admin_port, "root", "pw-root")
    browser.get(f"http://{HOST}:{b.admin_port}/admin/#browse/{queue}")
    assert wait_until(lambda: len(browser.find_elements(By.CSS_SELECTOR, "#messages tbody tr")) == 3, timeout=10)
    first = browser.find_elements(By.CSS_SELECTOR, "#messages tbody tr")[0]
    first.find_element(By.CSS_SELECTOR, "input.move-to").send_keys(target)
    first.find_element(By.XPATH, ".//button[text()='move']").click()
    assert wait_until(lambda: [m["body"] for m in b.admin.ok("GET", q(target) + "/messages")] == ["job 0"],
                      timeout=10)
    assert wait_until(lambda: "done" in browser.find_element(By.ID, "status").text, timeout=10), \
        browser.find_element(By.ID, "status").text
    shoot(browser, "moved")

    browser.get(f"http://{HOST}:{b.admin_port}/admin/#destinations")
    assert wait_until(lambda: row_of(browser, f"queue://{queue}") is not None, timeout=10)
    fresh(lambda: row_of(browser, f"queue://{queue}").find_element(By.XPATH, ".//button[text()='purge']").click())
    browser.switch_to.alert.accept()
    assert wait_until(lambda: b.admin.row(f"queue://{queue}")["depth"] == 0, timeout=10)
    assert wait_until(lambda: fresh(lambda: row_of(browser, f"queue://{queue}")
                                    .find_elements(By.TAG_NAME, "td")[1].text) == "0", timeout=10)
    log = b.log_text()
    assert "user=root" in log and f"purged 2 messages of queue://{queue}" in log


def test_every_answer_forbids_framing_and_inline_script(console):
    for path in ("/admin/", "/admin/console.js", "/health/live"):
        r = urllib.request.urlopen(f"http://{HOST}:{console.admin_port}{path}", timeout=10)
        assert r.headers["X-Frame-Options"] == "DENY"
        csp = r.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    page = urllib.request.urlopen(f"http://{HOST}:{console.admin_port}/admin/", timeout=10).read().decode()
    assert "<script src=" in page and "<script>" not in page and " on" + "click=" not in page
