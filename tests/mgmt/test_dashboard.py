"""The dashboard over plain HTTP on a running Lab (``hybridvoice up`` in this process): the
login and its cookie, read scope enough, pages with no calls, HTML escaping of what callers
control, a real test call in history with its ladder, and the live stream."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

import httpx
from chain_harness import DOMAIN, call_once, lab, proxy_of
from ua_harness import run

from hybridvoice.app import LAB_PASSWORD, LAB_PSTN_NUMBER, Lab
from hybridvoice.mediation.records_model import (
    CallRecord,
    CallState,
    Direction,
    DisconnectSide,
    FailoverAttempt,
)
from hybridvoice.mgmt.dashboard.gate import cookie_name
from hybridvoice.mgmt.testcall import place_test_call

XSS = '<script>alert("x")</script>'


def _api(up: Lab) -> str:
    assert up.appliance is not None and up.appliance.api is not None
    return up.appliance.api.url


def _read_token(up: Lab) -> str:
    assert up.appliance is not None
    return up.appliance.access.tokens.create("noc", "read")[1]


@contextlib.asynccontextmanager
async def _logged_in(up: Lab, token: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=_api(up)) as http:
        answer = await http.post("/ui/login", data={"token": token})
        assert answer.status_code == 303 and answer.headers["location"] == "/"
        yield http


def test_no_token_gets_the_login_page_and_nothing_else(tmp_path: Path) -> None:
    async def main() -> None:
        async with lab(tmp_path) as up, httpx.AsyncClient(base_url=_api(up)) as anonymous:
            for path in ("/", "/ui/calls", "/ui/history", "/ui/plots", "/ui/history/x1"):
                page = await anonymous.get(path)
                assert page.status_code == 401, path
                assert '<form method="post" action="/ui/login">' in page.text
                assert up.appliance is not None and up.appliance.name not in page.text
                assert "default-src 'none'" in page.headers["content-security-policy"]
            assert (await anonymous.get("/ui/events")).status_code == 401
            assert (await anonymous.get("/v1/status")).status_code == 401
            css = await anonymous.get("/ui/static/dash.css")
            assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
            assert (await anonymous.get("/ui/static/appliance.py")).status_code == 404
            # a bad token: the form again, saying why; a cookie that is no token: same
            bad = await anonymous.post("/ui/login", data={"token": "hv_nope_nope"})
            assert bad.status_code == 401 and "token: not valid" in bad.text
            assert up.appliance is not None and up.appliance.api is not None
            anonymous.cookies.set(cookie_name(up.appliance.api.port), "hv_0000_forged")
            again = await anonymous.get("/")
            assert again.status_code == 401 and "no longer valid" in again.text

    run(main(), timeout=60)


def test_read_token_logs_in_and_the_cookie_never_authorises_a_change(tmp_path: Path) -> None:
    async def main() -> None:
        async with lab(tmp_path) as up:
            token = _read_token(up)
            async with httpx.AsyncClient(base_url=_api(up)) as http:
                answer = await http.post("/ui/login", data={"token": token})
                cookie = answer.headers["set-cookie"]
                assert up.appliance is not None and up.appliance.api is not None
                assert f"{cookie_name(up.appliance.api.port)}={token}" in cookie
                assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
                overview = await http.get("/")
                assert overview.status_code == 200
                assert up.appliance is not None and up.appliance.name in overview.text
                assert 'id="roles"' in overview.text and "running" in overview.text
                # every page renders with no call made yet
                calls = await http.get("/ui/calls")
                assert "no calls in progress" in calls.text
                history = await http.get("/ui/history")
                assert history.status_code == 200 and "no calls match" in history.text
                plots = await http.get("/ui/plots?hours=1")
                assert plots.text.count("no calls in this window") == 4
                # the cookie is for the dashboard's reads only: not for the API, not for writes
                assert (await http.get("/v1/status")).status_code == 401
                assert (await http.post("/v1/maintenance/enter")).status_code == 401
                # another site's form cannot log the browser in
                forged = await http.post("/ui/login", data={"token": token},
                                         headers={"Origin": "http://evil.example"})  # fmt: skip
                assert forged.status_code == 403 and "set-cookie" not in forged.headers
                for headers in ({"Sec-Fetch-Site": "cross-site"}, {"Origin": "null"}):
                    forged = await http.post("/ui/login", data={"token": token}, headers=headers)
                    assert forged.status_code == 403, headers
                out = await http.get("/ui/logout")
                assert out.status_code == 303 and "Max-Age=0" in out.headers["set-cookie"]
            # the bearer header works as on the API
            headers = {"Authorization": f"Bearer {token}"}
            async with httpx.AsyncClient(base_url=_api(up), headers=headers) as http:
                assert (await http.get("/ui/history")).status_code == 200

    run(main(), timeout=60)


def test_bad_search_input_names_the_field(tmp_path: Path) -> None:
    async def main() -> None:
        async with lab(tmp_path) as up, _logged_in(up, _read_token(up)) as http:
            page = await http.get("/ui/history", params={"since": "yesterday"})
            assert page.status_code == 422
            assert "since: &#39;yesterday&#39; is not a time" in page.text
            page = await http.get("/ui/history", params={"result": "maybe"})
            assert page.status_code == 422 and "result: &#39;maybe&#39;" in page.text
            assert (await http.get("/ui/history/nosuchcall")).status_code == 404
            missing = await http.get("/ui/history/<img src=x onerror=alert(1)>")
            assert missing.status_code == 404 and "<img" not in missing.text
            assert "&lt;img src=x onerror=alert(1)&gt;" in missing.text

    run(main(), timeout=60)


def _hostile(record_id: str) -> CallRecord:
    start = datetime.now(UTC)
    return CallRecord(
        record_id=record_id, a_call_id=f"{XSS}@x", direction=Direction.OUTBOUND,
        caller=f'"{XSS}" <sip:alice@contoso.example>', callee=f"+1{XSS}", start_utc=start,
        state=CallState.ENDED, gateway=XSS, attempts=(FailoverAttempt(XSS, "503"),),
        disconnect_side=DisconnectSide.LOCAL, sip_status=503, cause=XSS, end_utc=start,
        duration=0.1,
    )  # fmt: skip


def test_what_callers_control_is_shown_as_text(tmp_path: Path) -> None:
    async def main() -> None:
        async with lab(tmp_path) as up:
            assert up.appliance is not None and up.appliance.mediation is not None
            store = up.appliance.mediation.records
            assert store is not None
            await asyncio.wrap_future(store.write(_hostile("hostile1")))
            async with _logged_in(up, _read_token(up)) as http:
                for path in ("/ui/history", "/ui/history/hostile1", "/ui/plots"):
                    page = await http.get(path)
                    assert page.status_code == 200, path
                    assert "<script>alert" not in page.text, path
                history = (await http.get("/ui/history", params={"q": "alert"})).text
                assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in history
                ladder = (await http.get("/ui/history/hostile1")).text
                assert "&lt;script&gt;" in ladder and "503" in ladder

    run(main(), timeout=60)


async def _first_update(http: httpx.AsyncClient, page: str) -> dict[str, str]:
    async with http.stream("GET", "/ui/events", params={"page_name": page}) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        data = ""
        lines: AsyncIterator[str] = stream.aiter_lines()
        async for line in lines:
            if line.startswith("data: "):
                data = line.removeprefix("data: ")
                break
    found: dict[str, str] = json.loads(data)
    return found


def test_a_test_call_shows_in_history_with_its_ladder_and_the_stream_updates(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        async with lab(tmp_path) as up:
            result = await call_once(up)
            assert result.ok, result
            assert up.appliance is not None and up.appliance.mediation is not None
            store = up.appliance.mediation.records
            assert store is not None
            await asyncio.to_thread(store.flush, 10)
            async with _logged_in(up, _read_token(up)) as http:
                history = (await http.get("/ui/history", params={"q": "0199"})).text
                ids = re.findall(r'data-record="([0-9a-f]+)"', history)
                assert len(ids) == 1 and "answered" in history
                call = (await http.get(f"/ui/history/{ids[0]}")).text
                # `up` captures SIP ([Traces] Capture, on by default): the ladder is the capture's
                assert "From the SIP capture" in call and "/trace.pcap" in call
                pcap = await http.get(f"/v1/calls/{ids[0]}/trace.pcap")  # the link, by cookie
                assert pcap.status_code == 200 and pcap.content[:4] == b"\xd4\xc3\xb2\xa1"
                assert "MOS" in history
                for label in ("INVITE sip:", "180 Ringing", "200 OK", "ACK sip:",
                              "BYE sip:"):  # fmt: skip
                    assert label in call, label
                assert 'class="mediapath"' in call and "anchored" in call
                answered = await http.get("/ui/history", params={"result": "answered"})
                assert ids[0] in answered.text
                failed = await http.get("/ui/history", params={"result": "failed"})
                assert ids[0] not in failed.text
                update = await _first_update(http, "overview")
                assert update["live-count"] == "0"
                assert "no calls in progress" in update["live-rows"]
                assert "overview-now" in update and "gateway-rows" in update
                plots = (await http.get("/ui/plots?hours=1")).text
                assert "1 answered, 0 failed" in plots

    run(main(), timeout=90)


PARIS = {
    "name": "par-1", "site": "Paris", "mediation_fqdn": "med.paris.example",
    "edge_fqdn": "edge.paris.example", "edge_sip_host": "192.0.2.20", "version": "0.9",
}  # fmt: skip


def _fleet_row(page: str, name: str) -> str:
    found = re.search(rf'<tr data-appliance="{name}">(.*?)</tr>', page, re.S)
    assert found is not None, page
    return re.sub(r"<[^>]+>", " ", found.group(1))


def test_the_overview_lists_every_site_and_appliance_with_their_heartbeat_summary(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        async with lab(tmp_path) as up:
            assert up.online is not None and up.online.api is not None and up.admin_token
            headers = {"Authorization": f"Bearer {up.admin_token}"}
            async with httpx.AsyncClient(base_url=up.online.api.url, headers=headers) as cloud:
                assert (await cloud.post("/v1/appliances", json=PARIS)).status_code == 201
                summary = {"calls_now": 7, "call_limit": 50, "gateways": 2, "gateways_up": 1,
                           "cert_days_left": 12}  # fmt: skip
                body = {"status": "maintenance", "summary": summary}
                beat = await cloud.post("/v1/appliances/par-1/heartbeat", json=body)
                assert beat.status_code == 200, beat.text
            assert up.appliance is not None
            async with _logged_in(up, _read_token(up)) as http:
                for _ in range(100):  # the lab appliance's own next heartbeat carries its own
                    if up.appliance.name in up.online.summaries.rows():
                        break
                    await asyncio.sleep(0.1)
                page = (await http.get("/")).text
            paris = _fleet_row(page, "par-1")
            assert "Paris" in paris and "WARN" in paris and "maintenance" in paris
            assert "7 / 50" in paris and "1 / 2" in paris and "12" in paris
            mine = _fleet_row(page, up.appliance.name)
            assert "Lab" in mine and "OK" in mine and "0 / 500" in mine and "1 / 1" in mine

    run(main(), timeout=60)


class _Captured(NamedTuple):
    time: float
    transport: str
    src: tuple[str, int]
    dst: tuple[str, int]
    data: bytes
    outgoing: bool


class _Traces:
    """What the appliance's SIP capture (issue 13's traces) offers the dashboard."""

    def __init__(self, messages: list[_Captured]) -> None:
        self.buffer = object()
        self.held = messages
        self.asked: list[tuple[str | None, ...]] = []

    def messages(self, call_ids: tuple[str | None, ...]) -> list[_Captured]:
        self.asked.append(tuple(call_ids))
        return self.held


def test_a_captured_call_is_drawn_from_its_messages_and_links_its_trace(tmp_path: Path) -> None:
    t = datetime.now(UTC).timestamp()
    edge, gateway = ("127.0.0.1", 5070), ("127.0.0.1", 5080)
    messages = [
        _Captured(t, "UDP", edge, gateway, b"INVITE sip:+15550199@gw SIP/2.0\r\nVia: x\r\n\r\n",
                  True),
        _Captured(t + 0.2, "UDP", gateway, edge, b"SIP/2.0 486 Busy <b>Here</b>\r\n\r\n", False),
    ]  # fmt: skip

    async def main() -> None:
        async with lab(tmp_path) as up:
            assert up.appliance is not None and up.appliance.mediation is not None
            store = up.appliance.mediation.records
            assert store is not None
            await asyncio.wrap_future(store.write(_hostile("captured1")))
            traces, real = _Traces(messages), up.appliance.traces
            up.appliance.traces = traces  # type: ignore[assignment]
            try:
                await _captured_pages(up, traces)
            finally:
                up.appliance.traces = real

    run(main(), timeout=60)


async def _captured_pages(up: Lab, traces: _Traces) -> None:
    async with _logged_in(up, _read_token(up)) as http:
        page = (await http.get("/ui/history/captured1")).text
        assert "From the SIP capture: 2 messages" in page
        assert "INVITE sip:+15550199@gw" in page and "486 Busy &lt;b&gt;Here" in page
        assert "127.0.0.1:5080" in page and 'href="/v1/calls/captured1/trace.pcap"' in page
        assert traces.asked == [(f"{XSS}@x", None)]
        # the cookie reaches the trace the page links to, and no other API route
        trace = await http.get("/v1/calls/captured1/trace.pcap")
        assert trace.status_code == 200 and trace.content[:4] == b"\xd4\xc3\xb2\xa1"
        assert (await http.get("/v1/calls")).status_code == 401


def test_a_call_in_progress_is_in_the_live_stream_with_its_packets(tmp_path: Path) -> None:
    async def main() -> None:
        async with lab(tmp_path) as up:
            api = _api(up)
            call = asyncio.create_task(place_test_call(
                user="alice", domain=DOMAIN, password=LAB_PASSWORD, number=LAB_PSTN_NUMBER,
                proxy=proxy_of(up), duration=8.0, appliance_url=api, timeout=30.0,
                api_token=up.admin_token,
            ))  # fmt: skip
            try:
                async with _logged_in(up, _read_token(up)) as http:
                    row = ""
                    for _ in range(200):  # until the call talks and packets flowed
                        update = await _first_update(http, "live")
                        row = update["live-rows"]
                        if "talking" in row and re.search(r'class="num">[1-9]\d*</td>', row):
                            break
                        await asyncio.sleep(0.1)
                    assert update["live-count"] == "1", row
                    assert "+15550100" in row and LAB_PSTN_NUMBER in row and "anchored" in row
                    assert (
                        "talking" in row
                        and "Gateway1" in row
                        and up.settings.common.site_name in row
                    )
                    page = (await http.get("/ui/calls")).text
                    assert 'tr data-call="' in page and 'href="/ui/history/' in page
            finally:
                result = await call
            assert result.ok, result

    run(main(), timeout=90)


def test_the_online_api_shows_the_tenant_behind_its_own_tokens(tmp_path: Path) -> None:
    async def main() -> None:
        async with lab(tmp_path) as up:
            assert up.online is not None and up.online.api is not None
            async with httpx.AsyncClient(base_url=up.online.api.url) as anonymous:
                page = await anonymous.get("/")
                assert page.status_code == 401 and "/ui/login" in page.text
                assert "appliance1" not in page.text
            _, read = up.online.store.access.tokens.create("noc", "read")
            async with httpx.AsyncClient(base_url=up.online.api.url) as http:
                login = await http.post("/ui/login", data={"token": read})
                assert login.status_code == 303
                for _ in range(100):  # the appliance's next heartbeat brings its summary
                    page = (await http.get("/")).text
                    if "0 / 500" in page:
                        break
                    await asyncio.sleep(0.1)
                row = _fleet_row(page, "appliance1")
                assert "Lab" in row and "OK" in row and "0 / 500" in row
                assert "online service" in page and 'id="roles"' not in page
                assert (await http.get("/ui/calls")).status_code == 200

    run(main(), timeout=60)


def test_the_appliance_and_the_tenant_dashboards_of_one_host_keep_their_own_logins(
    tmp_path: Path,
) -> None:
    """A browser sends a host's cookies to every port of it: the two dashboards of `up` (one
    host, two ports, different tokens) must not log each other out."""

    async def main() -> None:
        async with lab(tmp_path) as up:
            assert up.online is not None and up.online.api is not None
            appliance_token = _read_token(up)
            _, online_token = up.online.store.access.tokens.create("noc", "read")
            async with httpx.AsyncClient() as browser:  # one cookie jar, as in a browser
                tenant, mine = up.online.api.url, _api(up)
                await browser.post(f"{mine}/ui/login", data={"token": appliance_token})
                await browser.post(f"{tenant}/ui/login", data={"token": online_token})
                assert (await browser.get(f"{mine}/")).status_code == 200
                assert (await browser.get(f"{tenant}/")).status_code == 200

    run(main(), timeout=60)
