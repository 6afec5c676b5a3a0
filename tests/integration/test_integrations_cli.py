"""Integrations through the real CLI entry point, on SQLite and PostgreSQL (SPEC 10, issue 20
item 1): `apps add-integration | set-integration | remove-integration`, `apps show`, and the
refusals that store nothing."""

from __future__ import annotations

import pytest

from subledger.cli import main
from subledger.integrations import ID_PREFIX
from subledger.sealing import fingerprint
from tests.integration.test_apps_cli import Cli

UNKNOWN_APP = "app_00000000000000000000000000000000"


def test_add_show_change_and_remove(cli: Cli) -> None:
    app_id = cli.json("apps", "create", "--name", "Hooks")["app_id"]
    code, out, err = cli(
        "apps",
        "add-integration",
        app_id,
        "--url",
        "https://api.example.com/hooks",
        "--authorization",
        "Bearer top-secret",
        "--events",
        "renewal,CANCELLATION",
        "--environment",
        "production",
    )
    assert code == 0, err
    integration_id = out.splitlines()[0]  # the id first, alone on its line
    assert integration_id.startswith(ID_PREFIX)
    shown = cli.json("apps", "show", app_id)["settings"]["integrations"]
    assert shown == [
        {
            "id": integration_id,
            "url": "https://api.example.com/hooks",
            "authorization": shown[0]["authorization"],
            "event_types": ["CANCELLATION", "RENEWAL"],
            "environment": "production",
        }
    ]
    assert shown[0]["authorization"] == fingerprint("Bearer top-secret")  # never the value
    code, human, _ = cli("apps", "show", app_id)
    assert "top-secret" not in human and integration_id in human

    changed = cli.json(
        "apps",
        "set-integration",
        app_id,
        integration_id,
        "--url",
        "https://api.example.com/v2/hooks",
        "--events",
        "all",
        "--authorization",
        "",
    )
    assert changed == {
        "id": integration_id,
        "url": "https://api.example.com/v2/hooks",
        "authorization": None,
        "event_types": "all",
        "environment": "production",
    }
    changed = cli.json("apps", "set-integration", app_id, integration_id, "--environment", "both")
    assert changed["environment"] == "both"
    assert changed["url"] == "https://api.example.com/v2/hooks"  # what is not given is kept
    assert cli.json("apps", "show", app_id)["settings"]["integrations"] == [changed]

    assert cli.json("apps", "remove-integration", app_id, integration_id) == {
        "removed": integration_id
    }
    assert cli.json("apps", "show", app_id)["settings"]["integrations"] == []


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--url", "ftp://example.com/x"], "is not an http(s) URL"),
        (["--url", "https://user:pw@example.com/x"], "put credentials in --authorization"),
        (["--url", "https://example.com/x", "--events", "RENEWAL,REFUND"], "unknown event type"),
        (["--url", "https://example.com/x", "--events", "TEST"], "unknown event type"),
    ],
)
def test_bad_integrations_are_refused_in_one_line_and_store_nothing(
    cli: Cli, argv: list[str], fragment: str
) -> None:
    app_id = cli.json("apps", "create", "--name", "Hooks")["app_id"]
    integration_id = cli.json("apps", "add-integration", app_id, "--url", "https://ok.example/h")[
        "id"
    ]
    before = cli.position()
    for command in (["add-integration", app_id], ["set-integration", app_id, integration_id]):
        code, out, err = cli("apps", *command, *argv)
        assert (code, out) == (1, "")
        assert fragment in err
        assert len(err.strip().splitlines()) == 1
    assert cli.position() == before
    assert [i["url"] for i in cli.json("apps", "show", app_id)["settings"]["integrations"]] == [
        "https://ok.example/h"
    ]


def test_unknown_apps_integrations_and_events_are_refused(cli: Cli) -> None:
    app_id = cli.json("apps", "create", "--name", "Hooks")["app_id"]
    before = cli.position()
    for argv, fragment in (
        (["apps", "add-integration", UNKNOWN_APP, "--url", "https://a.example/h"], "no app"),
        (
            ["apps", "set-integration", UNKNOWN_APP, "int_x", "--url", "https://a.example/h"],
            "no app",
        ),
        (["apps", "remove-integration", app_id, "int_nope"], "has no integration int_nope"),
        (["apps", "set-integration", app_id, "int_nope", "--environment", "both"], "int_nope"),
        (["apps", "test-integration", app_id, "int_nope"], "has no integration int_nope"),
        (["deliveries", "--app", UNKNOWN_APP], "no app"),
        (["deliveries", "resend", "0F8C5A9B-0000-5000-8000-000000000000"], "no delivery of"),
    ):
        code, _, err = cli(*argv)
        assert code == 1, argv
        assert fragment in err
        assert len(err.strip().splitlines()) == 1
    assert cli.position() == before


def test_usage_errors_exit_2(cli: Cli) -> None:
    app_id = cli.json("apps", "create", "--name", "Hooks")["app_id"]
    for argv in (
        ["apps", "add-integration", app_id],  # --url is required
        ["apps", "add-integration", app_id, "--url", "https://a.example", "--environment", "dev"],
        ["deliveries", "--status", "lost"],
    ):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
    code, _, err = cli("deliveries", "resend")
    assert code == 2 and "event ids" in err
    code, _, err = cli("apps", "set-integration", app_id, "int_x")
    assert code == 1 and "nothing to change" in err
