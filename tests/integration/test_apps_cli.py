"""App lifecycle through the real CLI entry point, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re

import pytest

from subledger.apps import key_hash
from subledger.cli import main
from subledger.ledger import Ledger
from subledger.sealing import new_secrets_key
from subledger.settings import parse_database_url

# The key check of RevenueCat's web SDK (@revenuecat/purchases-js): a public key must pass it.
WEB_SDK_KEY = re.compile(r"^(rcb|test|pdl|strp)_[a-zA-Z0-9_.-]+$")


class Cli:
    def __init__(
        self, url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ):
        monkeypatch.setenv("SUBLEDGER_DATABASE_URL", url)
        self.url = url
        self.capsys = capsys

    def __call__(self, *argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        captured = self.capsys.readouterr()
        return code, captured.out, captured.err

    def json(self, *argv: str) -> dict:  # type: ignore[type-arg]
        code, out, err = self(*argv, "--json")
        assert code == 0, err
        return json.loads(out)  # type: ignore[no-any-return]

    def position(self) -> int:
        ledger = Ledger(parse_database_url(self.url))
        try:
            return ledger.last_position()
        finally:
            ledger.close()


def test_create_set_rotate_show(cli: Cli) -> None:
    created = cli.json(
        "apps",
        "create",
        "--name",
        "Acme",
        "--webhook-secret",
        "whsec_first0001",
        "--entitlement",
        "pro=prod_TKbE3nVq8YhXcM",
        "--track-new-purchases",
    )
    app_id = created["app_id"]
    assert WEB_SDK_KEY.match(created["public_key"]), created["public_key"]
    assert created["secret_key"].startswith("slsk_")
    assert created["settings"]["track_new_purchases"] is True
    assert created["settings"]["entitlements"] == {"pro": ["prod_TKbE3nVq8YhXcM"]}
    assert len(created["settings"]["webhook_secrets"]) == 1
    assert "whsec_first0001" not in json.dumps(created["settings"])

    changed = cli.json(
        "apps",
        "set",
        app_id,
        "--detection",
        "metadata",
        "--metadata-key",
        "uid",
        "--transfer-behavior",
        "keep_with_original",
        "--no-track-new-purchases",
    )["settings"]
    assert (changed["app_user_id_detection"], changed["metadata_key"]) == ("metadata", "uid")
    assert changed["transfer_behavior"] == "keep_with_original"
    assert changed["track_new_purchases"] is False

    rotated = cli.json("apps", "rotate-keys", app_id)
    assert rotated["public_key"] != created["public_key"]
    assert WEB_SDK_KEY.match(rotated["public_key"]), rotated["public_key"]
    assert rotated["secret_key"] != created["secret_key"]

    cli.json("apps", "add-webhook-secret", app_id, "whsec_second002")
    shown = cli.json("apps", "remove-webhook-secret", app_id, "whsec_first0001")["settings"]
    assert len(shown["webhook_secrets"]) == 1

    shown = cli.json("apps", "show", app_id)
    assert shown["settings"]["transfer_behavior"] == "keep_with_original"
    assert "secret_key" not in shown
    listed = cli.json("apps", "list")
    assert [a["app_id"] for a in listed] == [app_id]  # type: ignore[index]

    ledger = Ledger(parse_database_url(cli.url))
    try:
        app = ledger.get_app(app_id)
    finally:
        ledger.close()
    assert app.public_key_hash == key_hash(rotated["public_key"])
    assert app.secret_key_hash == key_hash(rotated["secret_key"])


def test_human_output_names_the_app_and_shows_keys_once(cli: Cli) -> None:
    code, out, _ = cli("apps", "create", "--name", "Human")
    assert code == 0
    assert "app_id:" in out and "shown once" in out
    app_id = out.split("app_id:")[1].split()[0]
    code, out, _ = cli("apps", "show", app_id)
    assert code == 0 and "slsk_" not in out and app_id in out


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--detection", "email"], "unknown detection method"),
        (["--detection", "metadata"], "needs --metadata-key"),
        (["--webhook-secret", "sk_live_nope"], "whsec_"),
        (["--transfer-behavior", "steal"], "unknown transfer behavior"),
        (["--entitlement", "pro=price_123"], "prod_"),
        (["--stripe-api-key", "pk_test_123"], "rk_test_"),
    ],
)
def test_bad_values_are_refused_and_store_nothing(cli: Cli, argv: list[str], fragment: str) -> None:
    before = cli.position()
    code, _, err = cli("apps", "create", "--name", "Bad", *argv)
    assert code == 1
    assert fragment in err
    assert len(err.strip().splitlines()) == 1
    assert cli.position() == before


def test_changes_to_unknown_apps_are_refused(cli: Cli) -> None:
    for argv in (
        ["apps", "show", "app_00000000000000000000000000000000"],
        ["apps", "set", "app_00000000000000000000000000000000", "--track-new-purchases"],
        ["apps", "rotate-keys", "nonsense"],
        ["apps", "add-webhook-secret", "app_00000000000000000000000000000000", "whsec_x1234567"],
    ):
        code, _, err = cli(*argv)
        assert code == 1
        assert "no app" in err
    assert cli.position() == 0


def test_a_bad_set_on_an_existing_app_changes_nothing(cli: Cli) -> None:
    app_id = cli.json("apps", "create", "--name", "Keep")["app_id"]
    before = cli.position()
    code, _, err = cli("apps", "set", app_id, "--webhook-secret", "nope")
    assert code == 1 and "whsec_" in err
    code, _, err = cli("apps", "remove-webhook-secret", app_id, "whsec_never_added")
    assert code == 1 and "has no webhook secret" in err
    assert cli.position() == before


def test_usage_errors_exit_2(cli: Cli) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["apps", "create"])
    assert exit_info.value.code == 2


def test_a_secret_is_never_added_in_plain_text_beside_encrypted_ones(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUBLEDGER_SECRETS_KEY", new_secrets_key())
    app_id = cli.json("apps", "create", "--name", "Sealed", "--webhook-secret", "whsec_sealed01")[
        "app_id"
    ]
    monkeypatch.delenv("SUBLEDGER_SECRETS_KEY")  # an operator's shell without the key
    before = cli.position()
    code, _, err = cli("apps", "add-webhook-secret", app_id, "whsec_sealed02")
    assert code == 1
    assert "set SUBLEDGER_SECRETS_KEY" in err and "plain text" in err
    code, _, err = cli("apps", "set", app_id, "--stripe-api-key", "rk_test_sealed03")
    assert code == 1
    assert cli.position() == before  # nothing stored
    code, _, _ = cli("apps", "set", app_id, "--transfer-behavior", "keep_with_original")
    assert code == 0  # settings without secrets still change
    plain = cli.json("apps", "create", "--name", "Plain", "--webhook-secret", "whsec_plain01")
    assert cli("apps", "add-webhook-secret", plain["app_id"], "whsec_plain02")[0] == 0
