"""The App aggregate: a tenant's settings (SPEC section 2), every change an event."""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from collections.abc import Iterable
from typing import ClassVar, Literal

import msgspec

from subledger.integrations import Integration
from subledger.sealing import SealedSecret

Detection = Literal["anonymous", "stripe_customer_id", "metadata"]
TransferBehavior = Literal["transfer", "transfer_if_no_active", "keep_with_original"]
DETECTIONS: tuple[str, ...] = ("anonymous", "stripe_customer_id", "metadata")
TRANSFER_BEHAVIORS: tuple[str, ...] = ("transfer", "transfer_if_no_active", "keep_with_original")
_ENTITLEMENT_ID = re.compile(r"^[A-Za-z0-9_.\-]{1,100}$")
_PRODUCT_ID = re.compile(r"^prod_[A-Za-z0-9]{1,250}$")
_METADATA_KEY = re.compile(r"^[A-Za-z0-9_\-]{1,40}$")


class AppConfigError(ValueError):
    """A setting value is refused; the message is the one-line reason shown to operators."""


class AppConfig(msgspec.Struct, frozen=True, kw_only=True):
    track_new_purchases: bool = False
    app_user_id_detection: Detection = "anonymous"
    metadata_key: str = "rc_app_user_id"
    transfer_behavior: TransferBehavior = "transfer"
    signature_tolerance_s: int = 300

    def validated(self) -> AppConfig:
        if self.app_user_id_detection not in DETECTIONS:
            raise AppConfigError(
                f"unknown detection method {self.app_user_id_detection!r}: "
                f"use one of {', '.join(DETECTIONS)}"
            )
        if self.transfer_behavior not in TRANSFER_BEHAVIORS:
            raise AppConfigError(
                f"unknown transfer behavior {self.transfer_behavior!r}: "
                f"use one of {', '.join(TRANSFER_BEHAVIORS)}"
            )
        if not _METADATA_KEY.match(self.metadata_key or ""):
            raise AppConfigError(
                "metadata detection needs a metadata key of 1-40 letters, digits, _ or -"
            )
        if not 1 <= self.signature_tolerance_s <= 86_400:
            raise AppConfigError("signature tolerance must be between 1 and 86400 seconds")
        return self


class AppEvent(msgspec.Struct, frozen=True, kw_only=True):
    """Settings facts: the moment a change applies, also in a rebuild."""

    originator_id: uuid.UUID
    originator_version: int
    received_at_ms: int

    kind: ClassVar[str] = "settings"


class AppCreated(AppEvent, frozen=True, kw_only=True):
    name: str
    config: AppConfig
    public_key_hash: str
    secret_key_hash: str


class AppSettingsChanged(AppEvent, frozen=True, kw_only=True):
    config: AppConfig


class WebhookSecretAdded(AppEvent, frozen=True, kw_only=True):
    secret: SealedSecret


class WebhookSecretRemoved(AppEvent, frozen=True, kw_only=True):
    fingerprint: str


class ApiKeysRotated(AppEvent, frozen=True, kw_only=True):
    public_key_hash: str
    secret_key_hash: str


class EntitlementsMapped(AppEvent, frozen=True, kw_only=True):
    entitlements: dict[str, list[str]]


class StripeApiKeySet(AppEvent, frozen=True, kw_only=True):
    key: SealedSecret | None


class IntegrationAdded(AppEvent, frozen=True, kw_only=True):
    """Outbound webhooks to `integration.url` from this point of the log on (SPEC 10)."""

    integration: Integration


class IntegrationRemoved(AppEvent, frozen=True, kw_only=True):
    integration_id: str


class IntegrationChanged(AppEvent, frozen=True, kw_only=True):
    """An integration's URL, Authorization, event types or environment changed: the whole
    integration as it is from this point of the log on (same id; pending deliveries stay)."""

    integration: Integration


APP_EVENT_CLASSES: tuple[type[AppEvent], ...] = (
    AppCreated,
    AppSettingsChanged,
    WebhookSecretAdded,
    WebhookSecretRemoved,
    ApiKeysRotated,
    EntitlementsMapped,
    StripeApiKeySet,
    IntegrationAdded,
    IntegrationRemoved,
    IntegrationChanged,
)


class App(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    version: int
    name: str
    created_at_ms: int
    config: AppConfig
    public_key_hash: str
    secret_key_hash: str
    webhook_secrets: tuple[SealedSecret, ...] = ()
    entitlements: dict[str, list[str]] = {}
    stripe_api_key: SealedSecret | None = None
    integrations: tuple[Integration, ...] = ()

    @property
    def app_id(self) -> str:
        return app_id_of(self.id)


def evolve(app: App | None, event: AppEvent) -> App:  # noqa: PLR0911 - one case per event
    """Fold one settings event into the app state."""
    if isinstance(event, AppCreated):
        return App(
            id=event.originator_id,
            version=event.originator_version,
            name=event.name,
            created_at_ms=event.received_at_ms,
            config=event.config,
            public_key_hash=event.public_key_hash,
            secret_key_hash=event.secret_key_hash,
        )
    if app is None:
        raise ValueError(f"{type(event).__name__} before AppCreated")
    app = msgspec.structs.replace(app, version=event.originator_version)
    match event:
        case AppSettingsChanged(config=config):
            return msgspec.structs.replace(app, config=config)
        case WebhookSecretAdded(secret=secret):
            kept = tuple(s for s in app.webhook_secrets if s.fingerprint != secret.fingerprint)
            return msgspec.structs.replace(app, webhook_secrets=(*kept, secret))
        case WebhookSecretRemoved(fingerprint=fp):
            kept = tuple(s for s in app.webhook_secrets if s.fingerprint != fp)
            return msgspec.structs.replace(app, webhook_secrets=kept)
        case ApiKeysRotated(public_key_hash=pk, secret_key_hash=sk):
            return msgspec.structs.replace(app, public_key_hash=pk, secret_key_hash=sk)
        case EntitlementsMapped(entitlements=ents):
            return msgspec.structs.replace(app, entitlements=ents)
        case StripeApiKeySet(key=key):
            return msgspec.structs.replace(app, stripe_api_key=key)
        case IntegrationAdded(integration=added):
            others = tuple(i for i in app.integrations if i.id != added.id)
            return msgspec.structs.replace(app, integrations=(*others, added))
        case IntegrationChanged(integration=changed):
            now = tuple(changed if i.id == changed.id else i for i in app.integrations)
            return msgspec.structs.replace(app, integrations=now)
        case IntegrationRemoved(integration_id=gone):
            others = tuple(i for i in app.integrations if i.id != gone)
            return msgspec.structs.replace(app, integrations=others)
        case _:
            return app


def project_app(app: App | None, events: Iterable[AppEvent]) -> App | None:
    for event in events:
        app = evolve(app, event)
    return app


def app_id_of(aggregate_id: uuid.UUID) -> str:
    return f"app_{aggregate_id.hex}"


def aggregate_id_of(app_id: str) -> uuid.UUID | None:
    """The aggregate id inside an app id, or None when the text is not an app id."""
    if not app_id.startswith("app_") or len(app_id) != 36:
        return None
    try:
        return uuid.UUID(hex=app_id[4:])
    except ValueError:
        return None


# RevenueCat's web SDK accepts only keys matching ^(rcb|test|pdl|strp)_[A-Za-z0-9_.-]+$;
# `strp_` is its prefix for Stripe apps (docs/decisions.md, "Public keys carry RevenueCat's
# Stripe prefix"). Public keys issued before were `slpk_…`: they stay valid, so the registry
# still looks them up.
PUBLIC_KEY_PREFIX = "strp_"
SECRET_KEY_PREFIX = "slsk_"  # noqa: S105 - a prefix, not a secret
KEY_PREFIXES = (PUBLIC_KEY_PREFIX, SECRET_KEY_PREFIX, "slpk_")
SANDBOX_LOOKALIKE = "strp_sb_"


def new_api_keys() -> tuple[str, str]:
    """A public and a secret key; only their hashes are stored."""
    public = SANDBOX_LOOKALIKE
    while public.startswith(SANDBOX_LOOKALIKE):  # the SDK's isSandbox() would say true
        public = PUBLIC_KEY_PREFIX + secrets.token_urlsafe(24)
    return public, SECRET_KEY_PREFIX + secrets.token_urlsafe(32)


def key_hash(key: str) -> str:
    """Keys carry 192+ random bits, so an unsalted SHA-256 cannot be brute-forced."""
    return hashlib.sha256(key.encode()).hexdigest()


def parse_entitlement(spec: str) -> tuple[str, list[str]]:
    """`pro=prod_a,prod_b` → ("pro", ["prod_a", "prod_b"])."""
    name, sep, products = spec.partition("=")
    ids = [p.strip() for p in products.split(",") if p.strip()]
    if not sep or not _ENTITLEMENT_ID.match(name.strip()) or not ids:
        raise AppConfigError(f"bad entitlement {spec!r}: use ID=prod_a,prod_b")
    bad = [p for p in ids if not _PRODUCT_ID.match(p)]
    if bad:
        raise AppConfigError(f"bad product id(s) {', '.join(bad)}: Stripe product ids start prod_")
    return name.strip(), sorted(set(ids))


def check_webhook_secret(secret: str) -> str:
    if not secret.startswith("whsec_") or len(secret) < 10 or any(c.isspace() for c in secret):
        raise AppConfigError("a webhook secret starts with whsec_ (copy it from Stripe)")
    return secret


def check_stripe_api_key(key: str) -> str:
    if not re.match(r"^(rk|sk)_(test|live)_[A-Za-z0-9]{8,}$", key):
        raise AppConfigError("a Stripe API key looks like rk_test_… or rk_live_… (restricted)")
    return key
