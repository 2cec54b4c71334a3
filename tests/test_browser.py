"""The pages in a real browser: headless Chromium on the real daemon probing the demo's origins.

Chromium loads each page served by `origin-tls-exporter demo` (nine real TLS origins on
127.0.0.1), the test reads the DOM Chromium built (`--dump-dom`) and saves screenshots. With
`UPDATE_SCREENSHOTS=1` the screenshots are copied to `docs/` for the README.

Chromium is Debian's `chromium` package. Without it the tests skip, except under CI (`CI` set),
where a missing browser is a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urljoin

import pytest

from exporter.engine.verdict import FailureReason
from tests.daemon_process import REPO, ExporterProcess
from tests.dom import Node, parse
from tests.support.cdp import DevToolsBrowser

DEMO = {
    "good": (),
    "name-mismatch": ("name_mismatch",),
    "missing-intermediate": ("missing_intermediate",),
    "expired": ("expired",),
    "expiring-soon": (),
    "no-common-cipher": ("no_common_cipher",),
    "undocumented-suites": (),
    "tls13-only": ("no_common_protocol",),
    "legacy-sslv3": (),
    "self-signed": ("untrusted",),
}
FAILING = {name for name, reasons in DEMO.items() if reasons}
WINDOW = "1400,1000"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        message = "Chromium is not installed (Debian: apt-get install -y chromium)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI must run the browser tests")
        pytest.skip(message)
    return found


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExporterProcess]:
    workdir = tmp_path_factory.mktemp("browser")
    with ExporterProcess(["demo", "--interval", "2s"], workdir / "exporter.log") as process:

        def all_probed() -> bool:
            answer = process.get("/api/v1/origins")
            if answer.status != 200:
                return False
            results = {entry["origin"]: entry["result"] for entry in json.loads(answer.body)}
            return set(results) == set(DEMO) and all(results.values())

        process.wait_for(all_probed, 60, "a result for every demo origin")
        yield process


class Browser:
    """One headless Chromium run per page, with a fresh profile, killed whole on timeout."""

    def __init__(self, executable: str, profile: Path) -> None:
        self.executable = executable
        self.profile = profile

    def run(self, *args: str, timeout: float = 90) -> str:
        command = [
            self.executable,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            f"--user-data-dir={self.profile}",
            *args,
        ]
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own process group: a hung browser is killed whole
        )
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise
        if process.returncode != 0:
            raise AssertionError(
                f"chromium exited with {process.returncode}: {stderr.decode(errors='replace')}"
            )
        return stdout.decode()

    def dom(self, url: str) -> Node:
        return parse(self.run("--dump-dom", url))

    def screenshot(self, url: str, path: Path) -> Path:
        self.run(
            f"--screenshot={path}",
            f"--window-size={WINDOW}",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
            url,
        )
        return path


@pytest.fixture(scope="module")
def browser(chromium: str, tmp_path_factory: pytest.TempPathFactory) -> Browser:
    return Browser(chromium, tmp_path_factory.mktemp("chromium-profile"))


def rows(dom: Node) -> list[Node]:
    body = dom.by_id("origins").find("tbody")
    return [row for row in body.find_all("tr") if "data-origin" in row.attrs]


def test_index_lists_every_origin_with_its_verdict(browser: Browser, demo: ExporterProcess) -> None:
    dom = browser.dom(demo.url + "/")
    table = rows(dom)
    assert len(table) == 10
    by_name = {row.attrs["data-origin"]: row for row in table}
    assert set(by_name) == set(DEMO)
    for name, reasons in DEMO.items():
        row = by_name[name]
        status = "failing" if reasons else "compatible"
        assert row.attrs["data-status"] == status, name
        assert status in row.classes
        badge = row.find("td", cls="verdict").find("span", cls="badge")
        assert badge.text == ("cannot connect" if reasons else "connects")
        assert [r.text for r in row.find_all("span", cls="reason")] == list(reasons)
    assert "6 CloudFront cannot reach" in dom.by_id("summary").text
    assert "10 origins" in dom.by_id("summary").text
    assert "0 pending" in dom.by_id("summary").text
    assert "SSLv3 RC4-MD5" in by_name["legacy-sslv3"].find("td", cls="handshake").text
    assert "days left" in by_name["expiring-soon"].find("td", cls="expiry").text
    assert by_name["expiring-soon"].find("td", cls="expiry").find("span", cls="exp-warn")
    assert by_name["expired"].find("td", cls="expiry").find("span", cls="exp-bad")
    link = by_name["missing-intermediate"].find("td", cls="origin").find("a")
    assert link.attrs["href"] == "/origin/missing-intermediate"
    assert link.text == "missing-intermediate"
    for nav in ("/metrics", "/api/v1/origins"):
        assert dom.find("a", href=nav)


def test_missing_intermediate_page_names_the_missing_issuer(
    browser: Browser, demo: ExporterProcess
) -> None:
    index = browser.dom(demo.url + "/")
    href = (
        next(r for r in rows(index) if r.attrs["data-origin"] == "missing-intermediate")
        .find("a")
        .attrs["href"]
    )
    dom = browser.dom(urljoin(demo.url, href))
    assert dom.find("h1").text == "Origin missing-intermediate"
    checks = {row.attrs["data-title"]: row for row in dom.find_all("tr", cls="check")}
    assert list(checks) == [
        "Connection",
        "Protocols and cipher suites",
        "Certificate name",
        "Certificate chain",
        "Certificate dates",
    ]
    assert checks["Certificate chain"].attrs["data-mark"] == "FAIL"
    assert FailureReason.MISSING_INTERMEDIATE.remedy in checks["Certificate chain"].text
    assert checks["Certificate name"].attrs["data-mark"] == "PASS"
    missing = dom.by_id("missing-issuer")
    assert "Demo Intermediate CA" in missing.text
    assert "http://127.0.0.1:9/demo-intermediate.der" in missing.text
    assert not missing.find_all("a")  # the AIA URL is untrusted: text, not a link
    sans = dom.by_id("sans").find_all("span", cls="ident")
    assert [(s.text, "hit" in s.classes) for s in sans] == [
        ("missing-intermediate.demo.test", True)
    ]
    commands = dom.by_id("commands").find_all("pre")
    assert [c.attrs["data-protocol"] for c in commands] == ["TLSv1.2"]
    assert "-servername missing-intermediate.demo.test" in commands[0].text
    history = dom.by_id("history").find_all("details")
    assert 1 <= len(history) <= 10
    assert "chain: missing_intermediate" in history[0].find("pre").text
    assert dom.by_id("failure-history").find_all("details")


def test_legacy_page_matrix_shows_sslv3_rc4(browser: Browser, demo: ExporterProcess) -> None:
    dom = browser.dom(demo.url + "/origin/legacy-sslv3")
    matrix = dom.by_id("matrix")
    cell = matrix.find("tr", data_suite="RC4-MD5").find("td", data_protocol="SSLv3")
    assert cell.text == "accepted"
    assert cell.attrs["data-state"] == "accepted"
    assert "policy" in cell.classes
    assert "negotiated" in cell.classes  # CloudFront's pick: RC4-MD5 under SSLv3
    assert matrix.find("tr", data_suite="RC4-MD5").find("td", data_protocol="TLSv1.2").attrs[
        "data-state"
    ] in ("refused", "invalid")
    assert (
        matrix.find("tr", data_suite="ECDHE-RSA-AES128-SHA")
        .find("td", data_protocol="SSLv3")
        .attrs["data-state"]
        == "invalid"
    )
    assert "Only SSLv3 or RC4/3DES suites are usable" in dom.by_id("verdict").text


def test_filter_failing(browser: Browser, demo: ExporterProcess) -> None:
    dom = browser.dom(demo.url + "/?verdict=failing")
    table = rows(dom)
    assert {row.attrs["data-origin"] for row in table} == FAILING
    assert all(row.attrs["data-status"] == "failing" for row in table)
    select = dom.find("select")
    assert select.find("option", value="failing").attrs.get("selected") is not None
    searched = rows(browser.dom(demo.url + "/?q=SSLv3"))
    assert [row.attrs["data-origin"] for row in searched] == ["legacy-sslv3"]


def test_sort_by_expiry(browser: Browser, demo: ExporterProcess) -> None:
    results = json.loads(demo.get("/api/v1/origins").body)
    expiry = {
        entry["origin"]: (entry["result"]["chain"] or {}).get("earliest_expiry")
        for entry in results
    }
    expected = sorted(
        expiry, key=lambda name: (expiry[name] is None, expiry[name] or "", name.casefold())
    )
    dom = browser.dom(demo.url + "/?sort=expiry")
    order = [row.attrs["data-origin"] for row in rows(dom)]
    assert order == expected
    assert order[:2] == ["expired", "expiring-soon"]
    assert order[-1] == "tls13-only"  # no certificate seen: last
    header = dom.by_id("origins").find("th", cls="sorted")
    assert header.find("a").attrs["href"] == "/?sort=expiry&desc=1"


def test_unknown_origin_is_404(demo: ExporterProcess) -> None:
    answer = demo.get("/origin/no-such-origin")
    assert answer.status == 404
    assert "No such origin" in answer.body


def test_screenshots(browser: Browser, demo: ExporterProcess, tmp_path: Path) -> None:
    shots = {
        "status-page.png": browser.screenshot(demo.url + "/", tmp_path / "index.png"),
        "origin-page.png": browser.screenshot(
            demo.url + "/origin/missing-intermediate", tmp_path / "origin.png"
        ),
    }
    for path in shots.values():
        data = path.read_bytes()
        assert data.startswith(PNG_SIGNATURE), path
        assert len(data) > 10_000, f"{path}: {len(data)} bytes, suspiciously small"
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        docs = REPO / "docs"
        docs.mkdir(exist_ok=True)
        for name, path in shots.items():
            shutil.copyfile(path, docs / name)


@pytest.mark.parametrize("path", ["/", "/origin/missing-intermediate", "/docs/alerts"])
def test_pages_fit_a_420_px_screen(
    chromium: str, demo: ExporterProcess, tmp_path: Path, path: str
) -> None:
    """Nothing wider than the screen outside a scrolling table: the page never scrolls
    sideways on a phone (wide tables scroll inside their own frame)."""
    with DevToolsBrowser(chromium, tmp_path / "profile") as browser:
        layout = browser.layout(demo.url + path, 420)
    assert layout["scrollWidth"] <= layout["clientWidth"] == 420, layout
    assert layout["widestRight"] <= 420.5, layout


def test_pages_refresh_themselves_without_script(browser: Browser, demo: ExporterProcess) -> None:
    for path in ("/", "/origin/good"):
        dom = browser.dom(demo.url + path)
        refresh = [m for m in dom.find_all("meta") if m.attrs.get("http-equiv") == "refresh"]
        assert [m.attrs["content"] for m in refresh] == ["30"], path
        assert not dom.find_all("script")
