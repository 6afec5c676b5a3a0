import re
import uuid

import pytest

from subledger import apps
from subledger.apps import AppConfig, AppConfigError
from subledger.sealing import Sealer, SealingError, new_secrets_key


def _created() -> apps.AppCreated:
    return apps.AppCreated(
        originator_id=uuid.uuid4(),
        originator_version=1,
        received_at_ms=1,
        name="demo",
        config=AppConfig(),
        public_key_hash="p",
        secret_key_hash="s",
    )


def test_spec_defaults() -> None:
    config = AppConfig()
    assert config.track_new_purchases is False
    assert config.app_user_id_detection == "anonymous"
    assert config.metadata_key == "rc_app_user_id"
    assert config.transfer_behavior == "transfer"
    assert config.signature_tolerance_s == 300


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"app_user_id_detection": "email"}, "unknown detection method"),
        ({"transfer_behavior": "steal"}, "unknown transfer behavior"),
        ({"metadata_key": ""}, "metadata key"),
        ({"signature_tolerance_s": 0}, "tolerance"),
    ],
)
def test_invalid_settings_are_refused(changes: dict[str, object], fragment: str) -> None:
    with pytest.raises(AppConfigError, match=fragment):
        AppConfig(**changes).validated()  # type: ignore[arg-type]


def test_fold_applies_secret_rotation_and_keys() -> None:
    sealer = Sealer()
    created = _created()
    first = sealer.seal("whsec_first_secret")
    second = sealer.seal("whsec_second_secret")

    def event(cls: type[apps.AppEvent], version: int, **fields: object) -> apps.AppEvent:
        return cls(
            originator_id=created.originator_id,
            originator_version=version,
            received_at_ms=version,
            **fields,
        )

    app = apps.project_app(
        None,
        [
            created,
            event(apps.WebhookSecretAdded, 2, secret=first),
            event(apps.WebhookSecretAdded, 3, secret=second),
            event(apps.WebhookSecretRemoved, 4, fingerprint=first.fingerprint),
            event(apps.ApiKeysRotated, 5, public_key_hash="p2", secret_key_hash="s2"),
            event(apps.EntitlementsMapped, 6, entitlements={"pro": ["prod_A"]}),
        ],
    )
    assert app is not None
    assert [s.fingerprint for s in app.webhook_secrets] == [second.fingerprint]
    assert (app.public_key_hash, app.secret_key_hash, app.version) == ("p2", "s2", 6)
    assert app.entitlements == {"pro": ["prod_A"]}


def test_app_ids_round_trip_and_reject_other_text() -> None:
    aggregate_id = uuid.uuid4()
    assert apps.aggregate_id_of(apps.app_id_of(aggregate_id)) == aggregate_id
    for text in ("app_nothex", "user_123", "app_" + "0" * 31, ""):
        assert apps.aggregate_id_of(text) is None


@pytest.mark.parametrize(
    ("spec", "expected"),
    [("pro=prod_A,prod_B", ("pro", ["prod_A", "prod_B"])), ("gold=prod_Z", ("gold", ["prod_Z"]))],
)
def test_parse_entitlement(spec: str, expected: tuple[str, list[str]]) -> None:
    assert apps.parse_entitlement(spec) == expected


@pytest.mark.parametrize("spec", ["pro", "pro=", "=prod_A", "pro=price_123", "p ro=prod_A"])
def test_bad_entitlements_are_refused(spec: str) -> None:
    with pytest.raises(AppConfigError):
        apps.parse_entitlement(spec)


@pytest.mark.parametrize("secret", ["sk_test_123", "whsec_", "whsec_ab cd", "WHSEC_abcdefgh"])
def test_webhook_secrets_must_look_like_stripes(secret: str) -> None:
    with pytest.raises(AppConfigError, match="whsec_"):
        apps.check_webhook_secret(secret)


def test_sealed_secrets_open_only_with_their_key() -> None:
    key = new_secrets_key()
    sealed = Sealer(key).seal("whsec_at_rest_secret")
    assert sealed.scheme == "aes-gcm"
    assert b"at_rest" not in sealed.data
    assert Sealer(key).open(sealed) == "whsec_at_rest_secret"
    with pytest.raises(SealingError, match="set SUBLEDGER_SECRETS_KEY"):
        Sealer().open(sealed)
    with pytest.raises(SealingError, match="does not open"):
        Sealer(new_secrets_key()).open(sealed)


def test_without_a_key_secrets_are_stored_plain_but_named_by_fingerprint() -> None:
    sealed = Sealer().seal("whsec_plain_secret")
    assert sealed.scheme == "plain"
    assert Sealer().open(sealed) == "whsec_plain_secret"
    assert "whsec" not in sealed.fingerprint


def test_public_keys_pass_the_web_sdks_key_check_and_never_look_like_its_sandbox_keys() -> None:
    sdk_check = re.compile(r"^(rcb|test|pdl|strp)_[a-zA-Z0-9_.-]+$")  # purchases-js 1.63.1
    for _ in range(200):
        public, secret = apps.new_api_keys()
        assert sdk_check.match(public) and public.startswith("strp_")
        assert not public.startswith("strp_sb_")
        assert secret.startswith("slsk_") and not sdk_check.match(secret)
