"""Explain, history, replay and events on SQLite and PostgreSQL (SPEC 9, issue 5)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest

from projections.replay import REBUILD_TRACKING, Replay, ReplayConflictError, drop_projection
from projections.runner import Projector
from projections.storage.db import ViewDb
from projections.storage.tables import REBUILD
from subledger.cli import main
from subledger.identity import anonymous_id
from subledger.sealing import fingerprint
from subledger.settings import Settings
from tests.harness import AppKeys, Harness
from tests.samples import DAY, SECRET, scenario_bodies, subscription_created

NOW = int(time.time())

SUB = "sub_1SLr4eQx7RtY2pLmVb2NcQ8s"


def history(h: Harness, keys: AppKeys, user: str, key: str | None = None) -> Any:
    from urllib.parse import quote

    return h.client.get(
        f"/v1/subscribers/{quote(user, safe='')}/history",
        headers={"authorization": f"Bearer {key or keys.secret_key}"},
    )


def texts(h: Harness, keys: AppKeys, user: str) -> list[str]:
    response = history(h, keys, user)
    assert response.status_code == 200, response.text
    return [e["what_changed"] for e in response.json()["history"]]


def in_order(found: list[str], *expected: str) -> None:
    """Each expected fragment appears in the history, in this order."""
    text = "\n".join(found)
    at = 0
    for fragment in expected:
        index = text.find(fragment, at)
        assert index >= 0, f"{fragment!r} not found in order in:\n{text}"
        at = index + len(fragment)


def test_token_first_history(h: Harness) -> None:
    keys = h.app()
    h.receipt(keys, "user_123", SUB)
    for body in scenario_bodies():
        h.webhook(keys, body)
    h.webhook(keys, scenario_bodies()[3])  # Stripe retries one
    h.settle()
    found = texts(h, keys, "user_123")
    in_order(
        found,
        f"user_123 now owns {SUB}",
        f"subscription {SUB} active (prod_TKbE3nVq8YhXcM); access to pro runs until 2026-11-01 09:00 UTC",
        "unsubscribe detected at 2026-10-11 09:10 UTC",
        "charge ch_3SLr4fQx7RtY2pLm1Xq0sE4m refunded 999 of 999: linked to invoice",
        "access to pro ends 2026-10-11 10:11 UTC",
        f"subscription {SUB} active → canceled",
        "duplicate delivery of evt_1SN1VwQx7RtY2pLmHd5kS9eU",
    )
    entries = history(h, keys, "user_123").json()["history"]
    refund = next(e for e in entries if e["kind"] == "stripe:charge.refunded")
    assert {
        "field": "expires_date",
        "before": "2026-11-01T09:00:00Z",
        "after": "2026-10-11T10:11:00Z",
    } in refund["changes"]
    assert refund["stripe_created"] == "2026-10-11T10:11:00Z"
    assert refund["ids"]["event"] == "evt_3SLr4fQx7RtY2pLm1Tf4aL0r"
    positions = [e["position"] for e in entries]
    assert positions == sorted(positions)


def test_webhook_first_history_shows_the_wait(h: Harness) -> None:
    keys = h.app()
    for body in scenario_bodies()[:2]:
        h.webhook(keys, body)
    h.settle()
    h.receipt(keys, "user_123", SUB)
    entries = history(h, keys, "user_123").json()["history"]
    waits = [e for e in entries if "waits for a token" in e["what_changed"]]
    assert len(waits) == 2
    [claim] = [e for e in entries if e["kind"] == "token"]  # one entry for the token's fact
    assert [p["what_changed"] for p in claim["parts"][1:]] == [
        f"waited since position {w['position']} for a token, applied at position "
        f"{claim['position']}"
        for w in waits
    ]
    # The token is where this customer's access starts: its entry says so.
    first = claim["parts"][0]["what_changed"]
    assert first.startswith(f"user_123 now owns {SUB}; subscription {SUB} ")
    assert "access to pro runs until" in first
    assert {"field": "status", "before": None, "after": "active"} in claim["changes"]


def test_alias_history(h: Harness) -> None:
    keys = h.app(track_new_purchases=True)
    h.webhook(keys, scenario_bodies()[1])
    h.settle()
    h.receipt(keys, "user_123", SUB)
    anonymous = anonymous_id(keys.app_id, SUB)
    in_order(
        texts(h, keys, "user_123"),
        f"owner {anonymous} detected from an anonymous id",
        f"owner {anonymous} aliased with user_123",
    )
    assert texts(h, keys, anonymous) == texts(h, keys, "user_123")


@pytest.mark.parametrize(
    ("behavior", "fragment"),
    [
        ("transfer", f"{SUB} transferred to other_2"),
        (
            "keep_with_original",
            f"transfer refused by keep_with_original: {SUB} stays with user_123",
        ),
    ],
)
def test_transfer_histories(h: Harness, behavior: str, fragment: str) -> None:
    keys = h.app(transfer_behavior=behavior)
    h.receipt(keys, "user_123", SUB)
    for body in scenario_bodies()[:3]:
        h.webhook(keys, body)
    h.receipt(keys, "other_2", SUB)
    in_order(texts(h, keys, "other_2"), fragment)
    in_order(texts(h, keys, "user_123"), f"user_123 now owns {SUB}", fragment)
    recorded = [
        part["ids"]
        for e in history(h, keys, "user_123").json()["history"]
        for part in e["parts"]
        if "from" in part["ids"]
    ]
    moved = behavior == "transfer"
    assert recorded == ([{"purchase": SUB, "from": "user_123", "to": "other_2"}] if moved else [])
    owner = "other_2" if moved else "user_123"
    assert h.subscriber(keys, owner)["subscriber"]["subscriptions"]


def test_a_transfer_records_every_id_of_both_customers(h: Harness) -> None:
    """SPEC 7.4: `transferred_from` = O's ids, `transferred_to` = U's ids, aliases included."""
    keys = h.app(track_new_purchases=True)
    h.webhook(keys, scenario_bodies()[1])  # SUB, owned by its anonymous id
    h.receipt(keys, "user_123", SUB)  # alias: O = {anonymous, user_123}
    other = "sub_Test0002"
    h.webhook(
        keys,
        subscription_created(
            event_id="evt_other_1",
            created=NOW,
            sub_id=other,
            period=(NOW, NOW + 30 * DAY),
        ),
    )
    h.receipt(keys, "other_2", other)  # alias: U = {anonymous of other, other_2}
    assert h.receipt(keys, "other_2", SUB).status_code == 200  # transfer (the default)
    record = {
        "transferred_from": [anonymous_id(keys.app_id, SUB), "user_123"],
        "transferred_to": [anonymous_id(keys.app_id, other), "other_2"],
    }
    for side in ("user_123", "other_2"):  # both customers' histories show the record
        entries = history(h, keys, side).json()["history"]
        assert [e["transfer"] for e in entries if e["transfer"]] == [record]


def second_replay_starts(ledger: Any) -> None:
    """What a second `subledger replay` does first: drop the rebuild tables, create them."""
    drop_projection(live := Projector(ledger), REBUILD, REBUILD_TRACKING)
    live.close()
    Projector(ledger, prefix=REBUILD, tracking_name=REBUILD_TRACKING).close()


@pytest.mark.parametrize("second", ["starts", "completes"])
def test_a_replay_refuses_to_finish_when_another_ran_meanwhile(h: Harness, second: str) -> None:
    """Two `subledger replay` at once, the second beginning after the first caught up: the
    first must stop, not fold the log again onto its row cache and swap that in."""
    keys = h.app()
    h.receipt(keys, "user_123", SUB)
    for body in scenario_bodies():
        h.webhook(keys, body)
    h.settle()
    end = h.ledger.last_position()
    ran: list[bool] = []

    def meanwhile(position: int, target: int) -> None:
        if position >= end and not ran:
            ran.append(True)
            if second == "starts":
                second_replay_starts(h.ledger)
            else:
                assert Replay(h.ledger).run().swapped  # swaps and drops its tables

    with pytest.raises(ReplayConflictError, match="another `subledger replay`"):
        Replay(h.ledger, progress=meanwhile).run()
    assert ran
    assert Replay(h.ledger).run(verify=True).verified  # the live tables are intact


def test_history_never_shows_another_users_facts_through_a_stripe_customer_id(
    h: Harness,
) -> None:
    """With stripe_customer_id detection `cus_…` is an App User ID *and* the purchase's
    Stripe customer. After a transfer the new owner's history must not list that user's
    own tokens and attributes (they are filed under the same string)."""
    keys = h.app(track_new_purchases=True, app_user_id_detection="stripe_customer_id")
    stripe_customer = "cus_Leak0001"
    h.webhook(
        keys,
        subscription_created(
            event_id="evt_leak_1", created=NOW, period=(NOW, NOW + DAY), customer=stripe_customer
        ),
    )
    h.webhook(  # a second purchase of the same user, which stays theirs
        keys,
        subscription_created(
            event_id="evt_leak_2",
            created=NOW,
            period=(NOW, NOW + DAY),
            customer=stripe_customer,
            sub_id="sub_Test0002",
        ),
    )
    assert h.attributes(keys, stripe_customer, {"secret_plan": {"value": "x"}}).status_code == 200
    assert h.receipt(keys, "bob", "sub_Test0001").status_code == 200  # transfer to bob
    bob = texts(h, keys, "bob")
    assert any("transferred" in t for t in bob)
    assert not any("secret_plan" in t for t in bob)
    assert not any("sub_Test0002" in t for t in bob)  # the other purchase is not bob's
    assert any("secret_plan" in t for t in texts(h, keys, stripe_customer))  # still its own


def test_history_needs_the_secret_key(h: Harness) -> None:
    keys = h.app()
    response = history(h, keys, "user_123", key=keys.public_key)
    assert response.status_code == 403
    assert response.json()["code"] == 7244
    other = h.app()
    assert history(h, keys, "user_123", key=other.secret_key).json()["history"] == []
    assert history(h, keys, "user_123", key="slsk_nope").status_code == 401


Cli = Callable[..., tuple[int, str, str]]


@pytest.fixture
def cli(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Cli:
    """`subledger ARGV…` in this process against the test's store: (exit code, out, err)."""
    monkeypatch.setenv("SUBLEDGER_DATABASE_URL", database_url)

    def run(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def test_explain_cli_tells_the_story(h: Harness, cli: Cli) -> None:
    keys = h.app()
    for body in scenario_bodies():
        h.webhook(keys, body)
    h.receipt(keys, "user_123", SUB)
    code, out, _ = cli("explain", "--app", keys.app_id, "user_123")
    assert code == 0
    assert "waits for a token" in out
    assert "applied at position" in out
    assert out.index("waits for a token") < out.index("user_123 now owns")
    code, out, _ = cli("explain", "--app", keys.app_id, "user_123", "--json")
    assert json.loads(out)["customer"]["purchases"] == [SUB]


def test_replay_verify_names_a_tampered_row(
    h: Harness,
    settings: Settings,
    cli: Cli,
) -> None:
    keys = h.app()
    h.receipt(keys, "user_123", SUB)
    for body in scenario_bodies():
        h.webhook(keys, body)
    h.settle()
    code, out, _ = cli("replay", "--verify", "--json")
    assert code == 0, out
    clean = json.loads(out)
    assert clean["verified"] is True
    db = ViewDb(settings.database)
    with db.write() as cur:
        cur.execute(
            db.q("UPDATE sl_documents SET state = ? WHERE app_id = ? AND id = ?"),
            ('{"tampered":true}', keys.app_id, "user_123"),
        )
    db.close()
    code, out, _ = cli("replay", "--verify")
    assert code == 1
    assert "DIFFERENT" in out
    assert f"documents {keys.app_id}/user_123" in out
    assert '{"tampered":true}' in out
    assert live_document(settings, keys.app_id) == '{"tampered":true}'  # compared, not swapped
    code, out, _ = cli("replay", "--projection", "customers", "--json")
    assert code == 0
    rebuilt = json.loads(out)
    assert rebuilt["swapped"] is True
    assert [c["projection"] for c in rebuilt["checksums"]] == ["customers"]
    assert live_document(settings, keys.app_id) != '{"tampered":true}'
    code, out, _ = cli("replay", "--verify", "--json")
    assert code == 0
    assert [c["checksum"] for c in json.loads(out)["checksums"]] == [
        c["checksum"] for c in clean["checksums"]
    ]
    assert h.subscriber(keys, "user_123")["subscriber"]["original_app_user_id"] == "user_123"


def live_document(settings: Settings, app_id: str) -> str:
    db = ViewDb(settings.database)
    with db.read() as cur:
        cur.execute(
            db.q("SELECT state FROM sl_documents WHERE app_id = ? AND id = ?"), (app_id, "user_123")
        )
        row = cur.fetchone()
    db.close()
    assert row is not None
    return str(row[0])


def test_events_cli_lists_the_raw_facts(h: Harness, cli: Cli) -> None:
    keys = h.app()
    body = scenario_bodies()[1]
    h.webhook(keys, body)
    h.receipt(keys, "user_123", SUB)
    code, out, _ = cli("events", "--app", keys.app_id, "--raw", "--json")
    assert code == 0
    rows = json.loads(out)
    kinds = [r["kind"] for r in rows]
    assert kinds[-2:] == ["stripe:customer.subscription.created", "token"]
    assert rows[-2]["raw_body"].encode() == body
    code, out, _ = cli("events", "--since", str(rows[-1]["position"]))
    assert code == 0
    assert "token" in out and "user_123" in out
    assert "customer.subscription.created" not in out  # before --since


def test_events_cli_filters_by_app_and_position_and_shows_bodies_only_on_request(
    h: Harness, cli: Cli
) -> None:
    first, second = h.app(), h.app()
    h.webhook(first, scenario_bodies()[1])
    h.receipt(second, "user_b", SUB)
    h.receipt(first, "user_a", SUB)
    code, out, _ = cli("events", "--json")
    assert code == 0
    everything = json.loads(out)
    assert all("raw_body" not in row for row in everything)
    positions = [row["position"] for row in everything]
    assert positions == sorted(positions)
    code, out, _ = cli("events", "--app", first.app_id, "--json")
    mine = json.loads(out)
    assert {row["app_id"] for row in mine} == {first.app_id}
    assert [row["kind"] for row in mine][-2:] == ["stripe:customer.subscription.created", "token"]
    assert [row["summary"] for row in mine][-1] == f"user_a {SUB}"
    since = mine[-1]["position"]
    code, out, _ = cli("events", "--since", str(since), "--json")
    assert [row["position"] for row in json.loads(out)] == [p for p in positions if p >= since]


def test_events_cli_says_when_its_limit_cuts_the_list(h: Harness, cli: Cli) -> None:
    keys = h.app()
    for user in ("user_a", "user_b", "user_c"):
        h.receipt(keys, user, SUB)
    listed = ["events", "--app", keys.app_id, "--json"]
    code, out, err = cli(*listed)
    everything = json.loads(out)
    assert code == 0 and err == ""  # all shown: no note
    code, out, err = cli(*listed, "--limit", "2")
    assert json.loads(out) == everything[:2]
    following = everything[2]["position"]
    assert f"more follow from position {following} (--since {following}" in err
    code, out, err = cli(*listed, "--limit", "0")
    assert (json.loads(out), err) == (everything, "")


def test_events_cli_with_nothing_to_show_and_a_negative_limit(cli: Cli) -> None:
    nobody = ["events", "--app", "app_nobody"]
    assert cli(*nobody, "--json") == (0, "[]\n", "")
    assert cli(*nobody) == (0, "no facts\n", "")
    with pytest.raises(SystemExit) as usage:
        cli(*nobody, "--limit", "-1")
    assert usage.value.code == 2


def test_events_cli_stops_quietly_when_its_reader_goes_away(h: Harness, database_url: str) -> None:
    """`subledger events --raw --json | head -c 100`: no traceback, exit 0."""
    keys = h.app()
    for n in range(40):  # ~120 KB of raw bodies: more than a pipe holds
        body = subscription_created(event_id=f"evt_pipe_{n}", created=NOW, period=(NOW, NOW + DAY))
        h.webhook(keys, body)
    child = subprocess.Popen(
        [sys.executable, "-m", "subledger.cli", "events", "--limit", "0", "--raw", "--json"],
        env={**os.environ, "SUBLEDGER_DATABASE_URL": database_url},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert child.stdout is not None and child.stderr is not None
    assert child.stdout.read(100)
    child.stdout.close()
    assert child.wait(timeout=60) == 0
    assert child.stderr.read() == b""


def test_events_cli_never_prints_a_stored_secret(h: Harness, cli: Cli) -> None:
    """Without SUBLEDGER_SECRETS_KEY secrets are stored `plain`: the listing shows their
    fingerprints, never the bytes (not even base64-encoded)."""
    keys = h.app(stripe_api_key="rk_test_auditsecret0001")
    h.ledger.change_app(keys.app_id, add_secrets=["whsec_added_auditsecret"])
    h.ledger.change_app(keys.app_id, stripe_api_key="rk_test_auditsecret0002")
    code, out, _ = cli("events", "--app", keys.app_id, "--raw", "--json")
    assert code == 0
    for secret in (
        SECRET,
        "whsec_added_auditsecret",
        "rk_test_auditsecret0001",
        "rk_test_auditsecret0002",
    ):
        assert secret not in out
        assert base64.b64encode(secret.encode()).decode()[:16] not in out
        assert fingerprint(secret) in out


def test_history_shows_attributes_and_settings_facts(h: Harness) -> None:
    keys = h.app()
    h.receipt(keys, "user_123", SUB)
    for body in scenario_bodies():
        h.webhook(keys, body)
    response = h.attributes(keys, "user_123", {"$email": {"value": "a@example.com"}})
    assert response.status_code == 200, response.text
    h.service.ledger.change_app(keys.app_id, entitlements={"premium": ["prod_TKbE3nVq8YhXcM"]})
    h.settle()
    entries = history(h, keys, "user_123").json()["history"]
    kinds = [e["kind"] for e in entries]
    assert kinds.index("token") < kinds.index("attributes") < kinds.index("settings")
    by_kind = {e["kind"]: e for e in entries}
    assert by_kind["attributes"]["what_changed"] == "attributes $email updated"
    assert "entitlement mapping changed" in by_kind["settings"]["what_changed"]
    assert all(e["received_at"].endswith("Z") for e in entries)
    assert set(h.subscriber(keys, "user_123")["subscriber"]["entitlements"]) == {"premium"}


def test_sqlite_read_models_skip_zeroing_freed_pages(tmp_path: Any) -> None:
    """Decision 41: a swap must not rewrite the dropped tables' pages (secure_delete=FAST:
    deleted content is zeroed only where the page is written anyway)."""
    from subledger.settings import parse_database_url

    db = ViewDb(parse_database_url(f"sqlite:///{tmp_path / 'views.db'}"))
    try:
        with db.read() as cur:
            cur.execute("PRAGMA secure_delete")
            assert cur.fetchone()[0] == 2  # 0 off, 1 on (Debian's default), 2 fast
    finally:
        db.close()


def test_the_live_tables_keep_answering_during_a_rebuild(h: Harness) -> None:
    """Replay builds fresh tables beside the live ones: requests made while it runs (here,
    from its progress callback, after each rebuilt batch) see the full live document."""
    keys = h.app()
    h.receipt(keys, "user_123", SUB)
    for body in scenario_bodies():
        h.webhook(keys, body)
    h.settle()

    def document() -> dict[str, Any]:
        found: dict[str, Any] = h.subscriber(keys, "user_123")["subscriber"]
        return found

    expected = document()
    assert expected["entitlements"]
    seen: list[dict[str, Any]] = []

    def during(position: int, end: int) -> None:
        if 0 < position < end:
            seen.append(document())

    result = Replay(h.service.ledger, batch_size=2, progress=during).run()
    assert result.swapped
    assert len(seen) >= 3
    assert all(doc == expected for doc in seen)
    assert document() == expected


@pytest.mark.tampers_read_models
def test_replay_verify_names_only_rows_that_differ(
    h: Harness, settings: Settings, cli: Cli
) -> None:
    """History keys hold positions: compared as the joined text, "…/10" came before "…/9",
    so the merge of the two ordered streams named rows present on both sides as missing.
    A deleted row must be the one difference named."""
    keys = h.app()
    h.receipt(keys, "user_123", SUB)
    for n in range(12):  # the customer's history reaches two-digit positions
        h.attributes(keys, "user_123", {"plan": {"value": f"p{n}"}})
    h.settle()
    db = ViewDb(settings.database)
    with db.write() as cur:
        cur.execute(
            db.q("SELECT position FROM sl_history_subjects WHERE app_id = ? AND subject = ?"),
            (keys.app_id, "user_123"),
        )
        positions = sorted(row[0] for row in cur.fetchall())
        gone = max(p for p in positions if p < 10)
        assert max(positions) >= 10
        cur.execute(
            db.q(
                "DELETE FROM sl_history_subjects WHERE app_id = ? AND subject = ? AND position = ?"
            ),
            (keys.app_id, "user_123", gone),
        )
    db.close()
    code, out, _ = cli("replay", "--verify", "--json")
    assert code == 1
    [difference] = json.loads(out)["differences"]
    assert difference["key"] == f"{keys.app_id}/user_123/{gone}"
    assert difference["live"] is None and difference["rebuilt"] is not None


def test_explain_refuses_an_unknown_app(h: Harness, cli: Cli) -> None:
    """A mistyped app id used to print "no facts touched this customer" and exit 0."""
    h.app()
    code, _, err = cli("explain", "--app", "app_doesnotexist", "user_123")
    assert code == 1
    assert "no app 'app_doesnotexist'" in err


def test_a_projection_named_twice_is_rebuilt_once(h: Harness, cli: Cli) -> None:
    """`--projection history --projection history` swapped the history tables twice: the
    second found no rebuilt table and failed with a traceback, leaving slr_* behind."""
    keys = h.app()
    h.receipt(keys, "user_123", SUB)
    h.settle()
    code, out, _ = cli("replay", "--projection", "history", "--projection", "history", "--json")
    assert code == 0, out
    assert [c["projection"] for c in json.loads(out)["checksums"]] == ["history"]
    code, out, _ = cli("replay", "--verify", "--json")
    assert code == 0 and json.loads(out)["verified"] is True
