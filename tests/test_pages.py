"""The pages for people, rendered from real probes of hostile origins: escaped, linked, sorted.

Origin names, labels and every certificate field are untrusted. The hostile origin here is a
real TLS server whose certificates carry markup in their subject, SANs and AIA URL; the engine
probes it for real and the pages must show all of it as text, never as markup or links.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import fnmatch
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from exporter.config import ExporterConfig, OriginConfig
from exporter.demo.modern import ModernConfig, ModernTLSServer
from exporter.demo.pki import issue, write_chain
from exporter.engine.catalogue import CATALOGUE, Protocol
from exporter.engine.chain import ChainAnalysis, ChainStatus
from exporter.engine.probe import Engine
from exporter.engine.result import (
    Judgment,
    Negotiation,
    ProtocolResult,
    SuiteResult,
)
from exporter.engine.target import ProbeOptions, ProbeTarget
from exporter.engine.verdict import FailureReason
from exporter.http.page_handlers import CONTENT_SECURITY_POLICY
from exporter.http.routes import build_app
from exporter.http.state import WebState
from exporter.metrics import new_registry
from exporter.pages import (
    Expiry,
    IndexQuery,
    origin_path,
    render_index,
    render_not_found,
    render_origin,
)
from exporter.store import OriginState, ResultStore
from exporter.view import checklist
from tests.dom import Node, parse
from tests.support.judgments import judgment

SCRIPT_NAME = "<script>alert(1)</script>/dist"  # a `/` too, as discovery will name origins
LABEL = '"><img src=x onerror=alert(2)>'
LEAF_CN = "<img src=x onerror=alert(3)>"
CA_CN = "\"'><script>alert(4)</script>"
HOSTILE_SAN = "<svg onload=alert(5)>.test"
AIA = "javascript:alert(document.cookie)"
HOST = "hostile.test"
NOW = dt.datetime.now(dt.UTC)

MARKUP_TAGS = {"script", "img", "svg", "iframe", "object", "embed", "base", "link", "frame"}


@dataclasses.dataclass
class Hostile:
    config: ExporterConfig
    store: ResultStore
    result: Judgment


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hostile]:
    """A real origin that forgets its (hostile-named) intermediate, probed twice for real."""
    workdir = tmp_path_factory.mktemp("hostile")
    root = issue(CA_CN, ca=True)
    intermediate = issue(CA_CN + " Intermediate", issuer=root, ca=True, aia_ca_issuers=AIA)
    leaf = issue(LEAF_CN, issuer=intermediate, sans=[HOST, HOSTILE_SAN], aia_ca_issuers=AIA)
    chain, key = write_chain(workdir, "hostile", [leaf], leaf.key)
    (workdir / "root.pem").write_bytes(root.pem)
    server = ModernTLSServer(ModernConfig(chain, key, name="hostile"))
    port = server.start()
    try:
        origin = OriginConfig(
            name=SCRIPT_NAME,
            host=HOST,
            port=port,
            protocols=(Protocol.TLSv1_2,),
            ca_file=str(workdir / "root.pem"),
            address="127.0.0.1",
            labels=(("team", LABEL),),
        )
        pending = OriginConfig(name="pending/<b>bold</b>", host="pending.test", port=1)
        config = ExporterConfig(source="test", origins=(origin, pending))
        store = ResultStore()
        store.set_origins(config.origins)
        engine = Engine()
        result = judgment(origin.target())
        for _ in range(2):
            result = asyncio.run(engine.probe(origin.target(), ProbeOptions(timeout=5)))
            store.record(origin.name, result)
        yield Hostile(config, store, result)
    finally:
        server.stop()


def assert_inert(html: str) -> Node:
    """No markup from untrusted text, no event handler, no link leaving the exporter."""
    dom = parse(html)
    for node in dom.iter():
        assert node.tag not in MARKUP_TAGS, f"<{node.tag}> in the page: {node.attrs}"
        for name, value in node.attrs.items():
            assert not name.startswith("on"), f"event handler {name}={value!r} on <{node.tag}>"
            assert name != "style", "inline style attribute"
            if name in ("href", "action", "src"):
                assert value.startswith(("/", "#")), f"{name}={value!r} leaves the exporter"
    assert "javascript:" not in "".join(n.attrs.get("href", "") for n in dom.iter())
    return dom


def origin_state(hostile: Hostile) -> OriginState:
    state = hostile.store.state(SCRIPT_NAME)
    assert state is not None
    assert state.latest is not None
    return state


def test_the_hostile_origin_is_probed_for_real(hostile: Hostile) -> None:
    result = hostile.result
    assert result.reasons == (FailureReason.MISSING_INTERMEDIATE,)
    assert result.chain is not None
    assert result.chain.certificates[0].common_names == (LEAF_CN,)
    assert result.chain.missing_issuer_url == AIA
    assert HOSTILE_SAN in result.chain.certificates[0].dns_names


def test_origin_page_shows_hostile_fields_as_text(hostile: Hostile) -> None:
    state = origin_state(hostile)
    html = render_origin(
        state, hostile.store.history(SCRIPT_NAME), hostile.store.history(SCRIPT_NAME, True)
    )
    dom = assert_inert(html)
    assert "<img src=x" not in html
    assert "<svg" not in html
    assert "<script>alert" not in html
    assert "&lt;img src=x onerror=alert(3)&gt;" in html
    chain = hostile.result.chain
    assert chain is not None
    assert chain.missing_issuer is not None
    text = dom.text
    for shown in (SCRIPT_NAME, LABEL, LEAF_CN, HOSTILE_SAN, AIA, chain.certificates[0].subject):
        assert shown in text, shown
    # The missing issuer is named; its AIA URL is shown as text, never as a link.
    missing = dom.by_id("missing-issuer")
    assert "<script>alert(4)" in chain.missing_issuer.replace("\\", "")
    assert chain.missing_issuer in missing.text
    assert AIA in missing.text
    assert not missing.find_all("a")
    assert dom.find("title").text == f"{SCRIPT_NAME} · origin-tls-exporter"


def test_origin_page_checklist_is_the_reports(hostile: Hostile) -> None:
    state = origin_state(hostile)
    assert state.latest is not None
    dom = parse(render_origin(state))
    rows = dom.find_all("tr", cls="check")
    expected = [
        (c.mark, c.title, c.finding) for c in checklist(state.latest, dt.datetime.now(dt.UTC))
    ]
    assert [(r.attrs["data-mark"], r.attrs["data-title"]) for r in rows] == [
        (mark, title) for mark, title, _ in expected
    ]
    chain_row = next(r for r in rows if r.attrs["data-title"] == "Certificate chain")
    assert chain_row.attrs["data-mark"] == "FAIL"
    assert "missing_intermediate" in chain_row.text
    assert FailureReason.MISSING_INTERMEDIATE.remedy in chain_row.text
    banner = dom.by_id("verdict")
    assert "CloudFront can NOT connect" in banner.text
    assert FailureReason.MISSING_INTERMEDIATE.summary in banner.text


def test_origin_page_name_match_marks_the_san(hostile: Hostile) -> None:
    dom = parse(render_origin(origin_state(hostile)))
    sans = dom.by_id("sans").find_all("span", cls="ident")
    assert [(s.text, "hit" in s.classes) for s in sans] == [(HOST, True), (HOSTILE_SAN, False)]
    cns = dom.by_id("common-names").find_all("span", cls="ident")
    assert [(c.text, "hit" in c.classes) for c in cns] == [(LEAF_CN, False)]


def test_origin_page_matrix_and_commands(hostile: Hostile) -> None:
    dom = parse(render_origin(origin_state(hostile)))
    matrix = dom.by_id("matrix")
    header = [
        th.attrs["data-protocol"] for th in matrix.find_all("th") if "data-protocol" in th.attrs
    ]
    assert header == ["SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2"]
    assert next(th.text for th in matrix.find_all("th", cls="policy")) == "TLSv1.2 ★"
    rows = matrix.find_all("tr")[2:]
    assert [r.attrs["data-suite"] for r in rows] == [s.name for s in CATALOGUE.suites]
    cell = matrix.find("tr", data_suite="ECDHE-RSA-AES128-GCM-SHA256").find(
        "td", data_protocol="TLSv1.2"
    )
    assert cell.attrs["data-state"] == "accepted"
    assert "policy" in cell.classes
    ssl3 = matrix.find("tr", data_suite="ECDHE-RSA-AES128-SHA").find("td", data_protocol="SSLv3")
    assert ssl3.attrs["data-state"] == "invalid"
    negotiated = [td for td in matrix.find_all("td") if "negotiated" in td.classes]
    assert len(negotiated) == 1
    commands = dom.by_id("commands").find_all("pre")
    assert [c.attrs["data-protocol"] for c in commands] == ["TLSv1.2"]
    assert commands[0].text.startswith("echo | openssl s_client -tls1_2 -cipher ")
    assert f"-servername {HOST}" in commands[0].text


def test_origin_page_history_newest_first_with_logs(hostile: Hostile) -> None:
    store = hostile.store
    dom = parse(
        render_origin(
            origin_state(hostile), store.history(SCRIPT_NAME), store.history(SCRIPT_NAME, True)
        )
    )
    probes = dom.by_id("history").find_all("details")
    assert len(probes) == 2
    numbers = [int(p.find("summary").text.rsplit("#", 1)[1]) for p in probes]
    assert numbers == sorted(numbers, reverse=True)
    assert "open" in probes[0].attrs
    assert "open" not in probes[1].attrs
    log = probes[0].find("pre").text
    assert "chain: missing_intermediate" in log
    assert "resolved hostile.test" in log
    assert len(dom.by_id("failure-history").find_all("details")) == 2


def test_pending_origin_page(hostile: Hostile) -> None:
    state = hostile.store.state("pending/<b>bold</b>")
    assert state is not None
    assert state.latest is None
    html = render_origin(state)
    dom = assert_inert(html)
    assert "&lt;b&gt;bold&lt;/b&gt;" in html
    assert "<b>bold" not in html
    assert "Pending" in dom.by_id("verdict").text
    assert not dom.find_all("tr", cls="check")
    assert dom.by_id("commands").find("pre").text.startswith("echo | openssl s_client -tls1 ")
    assert "No probe has finished yet" in dom.text


def test_index_escapes_and_links(hostile: Hostile) -> None:
    html = render_index(hostile.store.snapshot())
    dom = assert_inert(html)
    rows = dom.by_id("origins").find("tbody").find_all("tr")
    assert [r.attrs["data-origin"] for r in rows] == [SCRIPT_NAME, "pending/<b>bold</b>"]
    link = rows[0].find("a")
    assert link.attrs["href"] == "/origin/%3Cscript%3Ealert%281%29%3C%2Fscript%3E%2Fdist"
    assert link.text == SCRIPT_NAME
    assert LABEL in rows[0].text
    assert rows[0].attrs["data-status"] == "failing"
    assert "missing_intermediate" in rows[0].find("td", cls="reasons").text
    assert rows[1].attrs["data-status"] == "pending"
    assert "2 origins" in dom.by_id("summary").text
    assert "1 CloudFront cannot reach" in dom.by_id("summary").text
    assert "1 pending" in dom.by_id("summary").text


def test_not_found_page_escapes_the_name() -> None:
    html = render_not_found("<script>x</script>")
    assert_inert(html)
    assert "&lt;script&gt;x&lt;/script&gt;" in html


# --- sorting and filtering, on constructed results ----------------------------------------


def _result(
    name: str, reasons: tuple[FailureReason, ...], expiry_days: float | None, started: float
) -> Judgment:
    chain = None
    if expiry_days is not None:
        chain = ChainAnalysis(
            status=ChainStatus.OK,
            problems=(),
            complete=True,
            certificates=(),
            path=(),
            missing_issuer=None,
            missing_issuer_url=None,
            detail="",
            earliest_expiry=NOW + dt.timedelta(days=expiry_days),
        )
    suite = CATALOGUE.by_name["ECDHE-RSA-AES128-GCM-SHA256"]
    return judgment(
        target=ProbeTarget(host=f"{name}.test"),
        started_at=started,
        duration_seconds=0.25,
        reasons=reasons,
        address="192.0.2.1",
        negotiation=Negotiation(Protocol.TLSv1_2, suite, "X25519", completed=not reasons),
        chain=chain,
    )


def fleet() -> list[OriginState]:
    now = NOW.timestamp()
    specs: list[tuple[str, tuple[FailureReason, ...], float | None, float]] = [
        ("bravo", (), 90, now - 50),
        ("alpha", (FailureReason.EXPIRED,), -2, now - 10),
        ("charlie", (FailureReason.NAME_MISMATCH, FailureReason.UNTRUSTED), 15, now - 30),
        ("delta", (FailureReason.TIMEOUT,), None, now - 20),
        ("echo", (), 5, now - 40),
    ]
    states = [
        OriginState(OriginConfig(name=n, host=f"{n}.test"), _result(n, r, e, s))
        for n, r, e, s in specs
    ]
    states.append(OriginState(OriginConfig(name="foxtrot", host="foxtrot.test"), None))
    return states


def order(html: str) -> list[str]:
    body = parse(html).by_id("origins").find("tbody")
    return [row.attrs["data-origin"] for row in body.find_all("tr") if "data-origin" in row.attrs]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({}, ["charlie", "alpha", "delta", "foxtrot", "bravo", "echo"]),
        ({"sort": "name"}, ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"]),
        ({"sort": "name", "desc": "1"}, ["foxtrot", "echo", "delta", "charlie", "bravo", "alpha"]),
        ({"sort": "expiry"}, ["alpha", "echo", "charlie", "bravo", "delta", "foxtrot"]),
        (
            {"sort": "expiry", "desc": "1"},
            ["bravo", "charlie", "echo", "alpha", "delta", "foxtrot"],
        ),
        ({"sort": "last"}, ["bravo", "echo", "charlie", "delta", "alpha", "foxtrot"]),
        ({"verdict": "failing"}, ["charlie", "alpha", "delta"]),
        ({"verdict": "compatible", "sort": "name"}, ["bravo", "echo"]),
        ({"verdict": "pending"}, ["foxtrot"]),
        ({"q": "MISMATCH"}, ["charlie"]),
        ({"q": "delta.test"}, ["delta"]),
        ({"q": "nothing-matches"}, []),
        (
            {"sort": "bogus", "verdict": "bogus"},
            ["charlie", "alpha", "delta", "foxtrot", "bravo", "echo"],
        ),
    ],
)
def test_index_filter_and_sort(query: dict[str, str], expected: list[str]) -> None:
    assert order(render_index(fleet(), query, NOW)) == expected


def test_index_cells() -> None:
    dom = parse(render_index(fleet(), {"sort": "name"}, NOW))
    rows = {r.attrs["data-origin"]: r for r in dom.by_id("origins").find("tbody").find_all("tr")}
    alpha = rows["alpha"].find("td", cls="expiry")
    assert "expired 2 days ago" in alpha.text
    assert alpha.find("span", cls="exp-bad")
    assert rows["echo"].find("td", cls="expiry").find("span", cls="exp-bad")
    assert rows["charlie"].find("td", cls="expiry").find("span", cls="exp-warn")
    assert rows["bravo"].find("td", cls="expiry").find("span", cls="exp-ok")
    assert "90 days left" in rows["bravo"].text
    assert (
        "TLSv1.2 X25519 ECDHE-RSA-AES128-GCM-SHA256"
        in rows["bravo"].find("td", cls="handshake").text
    )
    assert rows["bravo"].find("span", cls="badge").text == "connects"
    assert rows["alpha"].find("span", cls="badge").text == "cannot connect"
    assert "not probed yet" in rows["foxtrot"].text
    last = rows["bravo"].find("td", cls="last")
    assert "UTC" in last.text
    assert "250 ms" in last.text
    headers = dom.by_id("origins").find("thead")
    name_header = headers.find("th", cls="sorted")
    assert name_header.find("a").attrs["href"] == "/?sort=name&desc=1"
    assert name_header.attrs["aria-sort"] == "ascending"
    links = [a.attrs["href"] for a in headers.find_all("a")]
    assert links == ["/?sort=name&desc=1", "/?sort=verdict", "/?sort=expiry", "/?sort=last"]


def test_index_form_keeps_the_query() -> None:
    dom = parse(render_index(fleet(), {"q": "a&b", "verdict": "failing", "sort": "last"}, NOW))
    form = dom.find("form")
    assert form.attrs["method"] == "get"
    assert form.find("input", name="q").attrs["value"] == "a&b"
    assert form.find("option", value="failing").attrs.get("selected") is not None
    assert form.find("input", name="sort").attrs["value"] == "last"
    assert IndexQuery.parse({"q": "a&b", "sort": "last"}).href(sort="name") == "/?q=a%26b&sort=name"
    assert IndexQuery().href() == "/?sort=verdict"


def test_expiry_levels() -> None:
    def of(days: float) -> Expiry:
        return Expiry.of(NOW + dt.timedelta(days=days), NOW)

    assert (of(-1).level, of(-1).left) == ("bad", "expired 1 day ago")
    assert (of(6.9).level, of(6.9).left) == ("bad", "7 days left")
    assert (of(7).level, of(20.9).level, of(21).level) == ("warn", "warn", "ok")
    assert of(0.2).left == "expires today"


def test_matrix_cell_states() -> None:
    picked = CATALOGUE.by_name["ECDHE-RSA-AES128-GCM-SHA256"]
    broken = CATALOGUE.by_name["AES128-SHA"]
    unconfirmed = CATALOGUE.by_name["AES256-SHA"]
    protocols = (
        ProtocolResult(Protocol.SSLv3, in_policy=False, spoken=False, refusal="alert x (40)"),
        ProtocolResult(
            Protocol.TLSv1_2,
            in_policy=True,
            spoken=True,
            picked=(
                SuiteResult(picked, confirmed=True, backend="openssl"),
                SuiteResult(broken, confirmed=False, backend="openssl", error="bad <record>"),
                SuiteResult(unconfirmed, confirmed=None),
            ),
        ),
    )
    result = judgment(
        target=ProbeTarget(host="x.test", protocols=(Protocol.TLSv1_2,)),
        started_at=NOW.timestamp(),
        duration_seconds=1.5,
        reasons=(FailureReason.HANDSHAKE_FAILED,),
        protocols=protocols,
        negotiation=Negotiation(Protocol.TLSv1_2, picked, "X25519", completed=True),
    )
    state = OriginState(OriginConfig(name="x", host="x.test"), result)
    dom = parse(render_origin(state, now=NOW))
    matrix = dom.by_id("matrix")

    def cell(suite: str, protocol: str) -> Node:
        return matrix.find("tr", data_suite=suite).find("td", data_protocol=protocol)

    assert cell(picked.name, "TLSv1.2").attrs["data-state"] == "accepted"
    assert "negotiated" in cell(picked.name, "TLSv1.2").classes
    failed = cell(broken.name, "TLSv1.2")
    assert (failed.attrs["data-state"], failed.text) == ("failed", "picked, handshake failed")
    assert failed.attrs["title"] == "full handshake (openssl): bad <record>"
    assert cell(unconfirmed.name, "TLSv1.2").attrs["data-state"] == "unconfirmed"
    assert cell("RC4-MD5", "SSLv3").attrs["data-state"] == "refused"
    assert cell(picked.name, "SSLv3").attrs["data-state"] == "invalid"
    assert "policy" not in cell("RC4-MD5", "SSLv3").classes
    assert "SSLv3 not spoken: alert x (40)" in dom.text
    assert "Not checked: no TLS 1.0-1.2 handshake got as far as the certificate" in dom.text


# --- the routes, through the real app --------------------------------------------------------


async def _no_reload() -> tuple[bool, str]:
    return True, "ok"


def _app(config: ExporterConfig, store: ResultStore) -> web.Application:
    registry, collector, _ = new_registry(store)
    available: dict[str, Any] = {
        "config": config,
        "store": store,
        "registry": registry,
        "engine": Engine(),
        "origins": collector,
        "reload": _no_reload,
    }
    names = {f.name for f in dataclasses.fields(WebState)}
    return build_app(WebState(**{k: v for k, v in available.items() if k in names}))


DOCS_ALERTS = Path(__file__).resolve().parent.parent / "docs" / "alerts.md"


def test_routes(hostile: Hostile) -> None:
    async def run() -> None:
        async with TestClient(TestServer(_app(hostile.config, hostile.store))) as client:
            index = await client.get("/")
            assert index.status == 200
            assert index.content_type == "text/html"
            assert index.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
            assert "default-src 'none'" in CONTENT_SECURITY_POLICY
            assert index.headers["X-Content-Type-Options"] == "nosniff"
            body = await index.text()
            href = parse(body).by_id("origins").find("tbody").find("a").attrs["href"]
            assert href == origin_path(SCRIPT_NAME)

            page = await client.get(href)
            assert page.status == 200
            dom = parse(await page.text())
            assert dom.find("h1").text == f"Origin {SCRIPT_NAME}"

            unquoted = await client.get("/origin/pending/%3Cb%3Ebold%3C%2Fb%3E")
            assert unquoted.status == 200

            runbooks = await client.get("/docs/alerts")
            assert runbooks.status == 200
            assert runbooks.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
            dom = parse(await runbooks.text())
            anchors = {a.attrs.get("id") for a in dom.find_all("a")}
            alerts = set(re.findall(r'<a id="([a-z]+)"', DOCS_ALERTS.read_text()))
            assert alerts, "docs/alerts.md has no anchors"
            assert alerts <= anchors  # every runbook_url fragment lands on its alert
            assert not dom.find_all("script")

            missing = await client.get("/origin/%3Cb%3Eno%2Fsuch")
            assert missing.status == 404
            text = await missing.text()
            assert "&lt;b&gt;no/such" in text
            assert "<b>no" not in text
            assert missing.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY

            failing = await client.get("/", params={"verdict": "failing"})
            assert order(await failing.text()) == [SCRIPT_NAME]

    asyncio.run(run())


def test_templates_and_jinja2_are_packaged() -> None:
    """A wheel must carry every template, and installing it must bring Jinja2."""
    repo = Path(__file__).resolve().parent.parent
    project = tomllib.loads((repo / "pyproject.toml").read_text())
    globs = project["tool"]["setuptools"]["package-data"]["exporter"]
    templates = sorted((repo / "exporter" / "templates").glob("*"))
    assert {p.name for p in templates} >= {
        "base.html",
        "index.html",
        "origin.html",
        "not_found.html",
    }
    for template in templates:
        relative = template.relative_to(repo / "exporter").as_posix()
        assert any(fnmatch.fnmatch(relative, g) for g in globs), f"{relative} not in {globs}"
    dependencies = [d.replace(" ", "").lower() for d in project["project"]["dependencies"]]
    assert any(d.startswith("jinja2>=") for d in dependencies), dependencies
