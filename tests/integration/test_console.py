"""The console's routes over plain HTTP (SPEC 13), on SQLite and PostgreSQL: who may sign
in, what a session may see, the forms' CSRF tokens, the one-time links, and the pages'
data. The same routes run in headless Chromium in tests/e2e/test_console_browser.py."""

from __future__ import annotations

import html
import re
import time
from collections.abc import Iterator
from urllib.parse import quote

import httpx
import pytest

from projections.model import Delivery
from subledger.facts import RedeliveryRequested
from subledger.settings import Settings
from tests.harness import AppKeys, Harness, harness
from tests.integration.test_apps_cli import Cli
from tests.integration.test_outbound import integrate, quick, settled
from tests.receiver import Receiver, running_receiver
from tests.samples import DAY, invoice_event, subscription_created, subscription_event

NOW = int(time.time())
PERIOD = (NOW - DAY, NOW + 29 * DAY)
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(page: httpx.Response) -> str:
    found = CSRF.search(page.text)
    assert found, page.text
    return found.group(1)


def sign_in(client: httpx.Client, key: str) -> httpx.Response:
    form = client.get("/console/sign-in")
    return client.post(
        "/console/sign-in",
        data={"csrf": csrf_of(form), "key": key},
        follow_redirects=False,
    )


def bought(h: Harness, keys: AppKeys, user: str = "user_1") -> None:
    """A token, the subscription's creation, a paid invoice, then a cancellation."""
    assert h.receipt(keys, user, "sub_Test0001").status_code == 200
    h.webhook(keys, subscription_created(event_id="evt_1", created=NOW, period=PERIOD))
    h.webhook(keys, invoice_event(event_id="evt_2", created=NOW, period=PERIOD, paid_at=NOW))
    h.webhook(
        keys,
        subscription_event(
            event_id="evt_3", created=NOW + 5, period=PERIOD, cancel_at_period_end=True
        ),
    )
    h.settle()


@pytest.fixture
def rx() -> Iterator[Receiver]:
    with running_receiver() as receiver:
        yield receiver


@pytest.fixture
def h(settings: Settings, rx: Receiver) -> Iterator[Harness]:
    rx.answers["/hook"] = [503] * 6  # every attempt of both events (retries 0.1, 0.2 s)
    with harness(quick(settings)) as running:
        yield running


def test_a_link_signs_in_once(
    h: Harness,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    keys = h.app()
    cli = Cli(database_url, monkeypatch, capsys)
    url = cli.json("console-link", keys.app_id, "--base-url", "http://x")["url"]
    path = url.removeprefix("http://x")
    assert path.startswith("/console/link/")

    def use() -> httpx.Response:
        form = h.client.get(path)
        token = re.search(r'name="token" value="([^"]+)"', form.text)
        assert token
        return h.client.post(
            "/console/link",
            data={"csrf": csrf_of(form), "token": token.group(1)},
            follow_redirects=False,
        )

    assert use().headers["location"] == "/console/"
    assert keys.app_id in h.client.get("/console/").text
    h.client.cookies.clear()
    assert use().headers["location"].endswith("the+link+is+used+or+expired")
    assert cli("console-link", "app_nope")[0] == 1


def test_resend_is_csrf_protected_and_recorded_as_a_fact(h: Harness, rx: Receiver) -> None:
    keys = h.app()
    integration = integrate(h, keys, rx.url())
    bought(h, keys)
    failed: list[Delivery] = [d for d in settled(h, keys, 2) if d.status == "failed"]
    assert failed
    sign_in(h.client, keys.secret_key)
    page = h.client.get("/console/deliveries?status=failed")
    assert f"Re-send {failed[0].event}" in page.text
    form = {"integration": integration, "event": failed[0].event}
    before = h.ledger.last_position()
    refused = h.client.post("/console/deliveries/resend", data=form, follow_redirects=False)
    assert refused.status_code == 403
    assert h.ledger.last_position() == before
    done = h.client.post(
        "/console/deliveries/resend", data={**form, "csrf": csrf_of(page)}, follow_redirects=False
    )
    assert done.status_code == 303
    ((_, fact),) = list(h.ledger.records(before + 1, topics=()))[:1]
    assert isinstance(fact, RedeliveryRequested)
    assert (fact.app_id, fact.integration_id, fact.outbound_event_id) == (
        keys.app_id,
        integration,
        failed[0].event,
    )
    assert "recorded at position" in h.client.get(done.headers["location"]).text
    other = h.app()
    sign_in(h.client, other.secret_key)
    page = h.client.get("/console/deliveries")
    assert failed[0].event not in page.text
    stolen = h.client.post(
        "/console/deliveries/resend", data={**form, "csrf": csrf_of(page)}, follow_redirects=False
    )
    assert stolen.status_code == 404


def test_only_an_apps_secret_key_signs_in_and_a_session_ends_at_sign_out_or_rotation(
    h: Harness,
) -> None:
    for path in ("/console/", "/console/customers/x", "/console/deliveries", "/console/charts"):
        answer = h.client.get(path, follow_redirects=False)
        assert answer.status_code == 303, path
        assert answer.headers["location"] == "/console/sign-in"
    page = h.client.get("/console/sign-in")
    csp = page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert "<script" not in page.text
    keys = h.app()
    assert sign_in(h.client, keys.public_key).status_code == 401
    assert sign_in(h.client, "sk_not_a_key").status_code == 401
    assert h.client.get("/console/", follow_redirects=False).status_code == 303
    answer = sign_in(h.client, keys.secret_key)
    assert answer.status_code == 303
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert keys.secret_key not in cookie
    page = h.client.get("/console/")
    assert page.status_code == 200
    assert keys.app_id in page.text
    assert keys.secret_key not in page.text
    assert keys.public_key not in page.text
    answer = h.client.post(
        "/console/sign-in", data={"csrf": "forged", "key": keys.secret_key}, follow_redirects=False
    )
    assert answer.status_code == 401
    assert "expired" in answer.text
    real = h.client.cookies["sl_console"]
    payload, _, mac = real.partition(".")
    h.client.cookies.clear()
    h.client.cookies.set("sl_console", f"{payload}.{mac[::-1]}", path="/console")
    assert h.client.get("/console/", follow_redirects=False).status_code == 303
    h.client.cookies.clear()
    sign_in(h.client, keys.secret_key)
    page = h.client.get("/console/")
    refused = h.client.post("/console/sign-out", data={"csrf": "x"}, follow_redirects=False)
    assert refused.status_code == 403
    out = h.client.post("/console/sign-out", data={"csrf": csrf_of(page)}, follow_redirects=False)
    assert out.status_code == 303
    assert h.client.get("/console/", follow_redirects=False).status_code == 303
    sign_in(h.client, keys.secret_key)
    assert h.client.get("/console/").status_code == 200
    h.ledger.change_app(keys.app_id, rotate_keys=True)
    h.refresh()
    assert h.client.get("/console/", follow_redirects=False).status_code == 303


def test_one_apps_session_never_shows_another_apps_customer(h: Harness) -> None:
    mine, theirs = h.app(), h.app()
    bought(h, theirs, user="their_user")
    sign_in(h.client, mine.secret_key)
    for path in (
        "/console/customers/their_user",
        "/console/purchases/sub_Test0001",
        "/console/customers/their_user?at=1",
    ):
        assert h.client.get(path).status_code == 404, path
    for query in ("their_user", "cus_Test0001", "sub_Test0001"):
        assert "Nothing in this app" in h.client.get("/console/", params={"q": query}).text
    user = "<b>x<b>&"
    assert h.receipt(theirs, user, "sub_Test0001").status_code == 200
    h.settle()
    sign_in(h.client, theirs.secret_key)
    page = h.client.get(f"/console/customers/{quote(user, safe='')}").text
    assert "<b>x" not in page
    assert "&lt;b&gt;x&lt;b&gt;&amp;" in page


def test_search_customer_as_of_purchase_and_chart_pages(h: Harness) -> None:
    keys = h.app()
    bought(h, keys)
    sign_in(h.client, keys.secret_key)
    for query in ("user_1", "sub_Test0001", "cus_Test0001", "in_Test0001"):
        page = h.client.get("/console/", params={"q": query})
        assert 'href="/console/customers/user_1"' in page.text, query
        assert 'href="/console/purchases/sub_Test0001"' in page.text, query
    assert "Nothing in this app" in h.client.get("/console/?q=nobody").text
    history = h.history(keys, "user_1")
    page = h.client.get("/console/customers/user_1")
    assert page.text.count('class="entry') == len(history) == 4
    assert '"store_transaction_id": "sub_Test0001"' in html.unescape(page.text)
    created, cancel = history[1]["position"], history[3]["position"]
    first = html.unescape(h.client.get(f"/console/customers/user_1?at={created}").text)
    assert f"As of #{created}" in first
    assert '<span class="added">' in first and "prod_TKbE3nVq8YhXcM" in first
    later = html.unescape(h.client.get(f"/console/customers/user_1?at={cancel}").text)
    changed = re.findall(r'<span class="(added|removed)">(.*?)</span>', later)
    assert any("unsubscribe_detected_at" in text for kind, text in changed if kind == "added")
    assert any("unsubscribe_detected_at" in text for kind, text in changed if kind == "removed")
    assert '"store_transaction_id"' not in "".join(text for _, text in changed)
    page = h.client.get("/console/purchases/sub_Test0001").text
    rows = re.findall(r"<tr( class=\"winner\")?>\s*<td>(\d+)", page)
    assert [(bool(w), n) for w, n in rows] == [(False, "1"), (True, "2")]
    assert page.index("evt_1") < page.index("evt_3")
    assert "user_1 now owns sub_Test0001" in page
    page = h.client.get("/console/charts?name=mrr&resolution=month").text
    assert '<option value="mrr" selected>' in page
    assert '<option value="month" selected>' in page
    page = h.client.get("/console/charts?name=active_subscriptions").text
    drill = re.findall(r'href="([^"]*bucket=[^"#]*)#drill"', page)
    assert len(drill) == 2 * 30  # a bar and a table row for each of the 30 days
    counted = h.client.get(html.unescape(drill[-1])).text
    assert 'href="/console/purchases/sub_Test0001"' in counted.split('id="drill"')[1]
