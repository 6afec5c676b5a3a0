"""Integration settings (SPEC 10): what an operator may configure, and how the app's settings
fold them; the Authorization value never shows."""

from __future__ import annotations

import uuid

import pytest

from subledger import apps
from subledger.integrations import (
    Integration,
    IntegrationError,
    check_authorization,
    check_environment,
    check_event_types,
    check_url,
)
from subledger.ledger import app_settings
from subledger.sealing import Sealer


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("ftp://example.com/x", "is not an http"),
        ("https:///path", "is not an http"),
        ("https://user:pw@example.com/x", "credentials"),
        ("https://example.com/a b", "no spaces"),
    ],
)
def test_refused_urls(url: str, fragment: str) -> None:
    with pytest.raises(IntegrationError, match=fragment):
        check_url(url)


def test_accepted_settings_are_normalised() -> None:
    assert check_url("http://127.0.0.1:8080/hook?x=1") == "http://127.0.0.1:8080/hook?x=1"
    assert check_event_types(["renewal", " CANCELLATION ", "renewal", ""]) == (
        "CANCELLATION",
        "RENEWAL",
    )
    assert check_event_types([]) == ()  # every type
    assert check_environment("sandbox") == "sandbox"


@pytest.mark.parametrize("types", [["TEST"], ["SUBSCRIPTION_PAUSED"], ["renewals"]])
def test_types_subledger_never_derives_are_no_filter(types: list[str]) -> None:
    with pytest.raises(IntegrationError, match="unknown event type"):
        check_event_types(types)


@pytest.mark.parametrize("value", ["", "Bearer a\nb", "Bearer é", "x" * 4001])
def test_authorization_is_one_printable_ascii_line(value: str) -> None:
    with pytest.raises(IntegrationError):
        check_authorization(value)


def test_environment_is_one_of_three() -> None:
    with pytest.raises(IntegrationError, match="production, sandbox or both"):
        check_environment("live")


def test_the_app_folds_integrations_and_shows_no_authorization() -> None:
    aggregate = uuid.uuid4()
    sealed = Sealer().seal("Bearer top-secret")
    events = [
        apps.AppCreated(
            originator_id=aggregate,
            originator_version=1,
            received_at_ms=1,
            name="a",
            config=apps.AppConfig(),
            public_key_hash="p",
            secret_key_hash="s",
        ),
        apps.IntegrationAdded(
            originator_id=aggregate,
            originator_version=2,
            received_at_ms=2,
            integration=Integration(id="int_a", url="https://a.example/h", authorization=sealed),
        ),
        apps.IntegrationAdded(
            originator_id=aggregate,
            originator_version=3,
            received_at_ms=3,
            integration=Integration(id="int_b", url="https://b.example/h"),
        ),
        apps.IntegrationRemoved(
            originator_id=aggregate, originator_version=4, received_at_ms=4, integration_id="int_b"
        ),
        apps.IntegrationChanged(
            originator_id=aggregate,
            originator_version=5,
            received_at_ms=5,
            integration=Integration(
                id="int_a", url="https://a.example/moved", authorization=sealed
            ),
        ),
    ]
    app = apps.project_app(None, events)
    assert app is not None
    assert [(i.id, i.url) for i in app.integrations] == [("int_a", "https://a.example/moved")]
    shown = app_settings(app)
    assert shown["integrations"][0]["authorization"] == sealed.fingerprint
    assert "top-secret" not in repr(shown)
