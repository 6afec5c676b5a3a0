"""The event store application: record facts and settings events, nothing else."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import msgspec
from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import IntegrityError, PersistenceError
from eventsourcing.utils import Environment, EnvType, get_topic

from subledger import apps
from subledger.apps import App, AppConfig, AppEvent
from subledger.facts import Fact, NotificationReceived, NotificationRedelivered
from subledger.integrations import (
    Integration,
    IntegrationError,
    check_authorization,
    check_environment,
    check_event_types,
    check_url,
    new_integration_id,
)
from subledger.sealing import SealedSecret, Sealer, fingerprint
from subledger.settings import Database
from subledger.store import (
    LogEntry,
    StoreUnavailableError,
    UnreadableRecord,
    build_decoders,
    ddl_lock,
    decode_record,
    ensure_schema,
    ledger_env,
    read_log,
)

log = logging.getLogger("subledger.ledger")
APP_TOPICS: tuple[str, ...] = tuple(get_topic(cls) for cls in apps.APP_EVENT_CLASSES)


class UnknownAppError(LookupError):
    """No app has this id."""


class ConcurrentChangeError(RuntimeError):
    """Another operator changed the same app at the same moment; retry."""


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Ledger(Application[uuid.UUID]):
    """Appends verified Stripe notifications, tokens, attributes, Stripe reads and app settings."""

    name = "Ledger"

    def __init__(
        self,
        database: Database,
        *,
        sealer: Sealer | None = None,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        ensure_schema(database)
        self.database = database
        self.sealer = sealer or Sealer()
        self.clock = clock
        with ddl_lock(database):
            super().__init__(env=ledger_env(database))

    def construct_env(self, name: str, env: EnvType | None = None) -> Environment:
        """Only the given settings: Settings.from_env is the one reader of os.environ."""
        return Environment(name, dict(env or {}))

    # --- facts -------------------------------------------------------------------------

    def record_new(self, facts: Sequence[Fact]) -> list[int | None]:
        """Append facts in one transaction; None marks a duplicate (its id already stored).

        The store's primary key decides what is a duplicate, so concurrent copies of one
        Stripe event cannot both be appended; the rest of a group still commits.
        """
        positions: dict[uuid.UUID, int | None] = {}
        pending: list[Fact] = []
        for fact in facts:
            if fact.originator_id not in positions:
                positions[fact.originator_id] = None
                pending.append(fact)
        first_copy = {id(f) for f in pending}
        while pending:
            try:
                recordings = self.save(*pending)
            except IntegrityError:
                stored = {f.originator_id for f in pending if self._exists(f.originator_id)}
                if not stored:
                    raise
                pending = [f for f in pending if f.originator_id not in stored]
                continue
            except PersistenceError as error:
                raise StoreUnavailableError(str(error)) from error
            for recording in recordings:
                positions[recording.domain_event.originator_id] = recording.notification.id
            break
        return [positions[f.originator_id] if id(f) in first_copy else None for f in facts]

    def note_redeliveries(self, copies: Sequence[Fact]) -> None:
        """Record that already-stored notifications were delivered again."""
        notes = [
            NotificationRedelivered(
                originator_id=uuid.uuid4(),
                app_id=c.app_id,
                received_at_ms=c.received_at_ms,
                event_id=c.event_id,
                type=c.type,
                secret_fingerprint=c.secret_fingerprint,
            )
            for c in copies
            if isinstance(c, NotificationReceived)
        ]
        if notes:
            self.record(*notes)

    def record(self, *facts: Fact) -> int:
        """Append facts that are new by construction (random ids); return the last position."""
        try:
            recordings = self.save(*facts)
        except PersistenceError as error:
            raise StoreUnavailableError(str(error)) from error
        return max(r.notification.id for r in recordings)

    def _exists(self, originator_id: uuid.UUID) -> bool:
        try:
            return bool(self.recorder.select_events(originator_id, limit=1))
        except PersistenceError as error:  # 503 like the save it follows, not a 500
            raise StoreUnavailableError(str(error)) from error

    def last_position(self) -> int:
        return self.recorder.max_notification_id() or 0

    def log_page(self, start: int, limit: int, *, stop: int | None = None) -> list[LogEntry]:
        """Positions, topics and states from `start` (what projections read)."""
        return read_log(self.recorder, self.database, start, limit, stop)

    def records(
        self,
        start: int = 1,
        *,
        stop: int | None = None,
        topics: Sequence[str] = (),
        batch: int = 1000,
        unreadable: bool = False,
    ) -> Iterator[tuple[int, Any]]:
        """(position, decoded record) from `start` to `stop` (default: the current end). A
        record that does not decode is skipped with a warning, or given as an
        `UnreadableRecord` when `unreadable`: one damaged record must not stop a reader."""
        stop = self.last_position() if stop is None else stop
        while start <= stop:
            page = self.recorder.select_notifications(start, batch, stop=stop, topics=topics)
            if not page:
                return
            for n in page:
                try:
                    record = decode_record(n.topic, n.state)
                except Exception as error:  # noqa: BLE001 - any decoding failure
                    reason = f"{type(error).__name__}: {error}"
                    log.warning("record at position %s is unreadable: %s", n.id, reason)
                    if unreadable:
                        yield n.id, UnreadableRecord(topic=n.topic, reason=reason)
                    continue
                yield n.id, record
            start = page[-1].id + 1

    # --- apps ------------------------------------------------------------------------

    def create_app(
        self,
        name: str,
        config: AppConfig,
        *,
        webhook_secrets: Sequence[str] = (),
        entitlements: dict[str, list[str]] | None = None,
        stripe_api_key: str | None = None,
    ) -> tuple[App, str, str]:
        """Create an app; returns it with its public and secret key (shown once)."""
        public_key, secret_key = apps.new_api_keys()
        created = apps.AppCreated(
            originator_id=uuid.uuid4(),
            originator_version=1,
            received_at_ms=self.clock(),
            name=name,
            config=config.validated(),
            public_key_hash=apps.key_hash(public_key),
            secret_key_hash=apps.key_hash(secret_key),
        )
        app = apps.evolve(None, created)
        events = [created, *self._changes(app, webhook_secrets, entitlements, stripe_api_key)]
        return self._save_app(app, events), public_key, secret_key

    def change_app(
        self,
        app_id: str,
        *,
        config: AppConfig | None = None,
        add_secrets: Sequence[str] = (),
        remove_secrets: Sequence[str] = (),
        entitlements: dict[str, list[str]] | None = None,
        stripe_api_key: str | None = None,
        rotate_keys: bool = False,
    ) -> tuple[App, tuple[str, str] | None]:
        """Apply settings changes as events; returns the app and new keys when rotated."""
        app = self.get_app(app_id)
        events: list[AppEvent] = []
        if config is not None and config.validated() != app.config:
            events.append(self._event(apps.AppSettingsChanged, app, len(events), config=config))
        for secret in remove_secrets:
            fp = fingerprint(secret) if secret.startswith("whsec_") else secret
            if fp not in {s.fingerprint for s in app.webhook_secrets}:
                raise apps.AppConfigError(f"app {app_id} has no webhook secret {fp}")
            events.append(self._event(apps.WebhookSecretRemoved, app, len(events), fingerprint=fp))
        events += self._changes(app, add_secrets, entitlements, stripe_api_key, offset=len(events))
        keys: tuple[str, str] | None = None
        if rotate_keys:
            keys = apps.new_api_keys()
            events.append(
                self._event(
                    apps.ApiKeysRotated,
                    app,
                    len(events),
                    public_key_hash=apps.key_hash(keys[0]),
                    secret_key_hash=apps.key_hash(keys[1]),
                )
            )
        return self._save_app(app, events), keys

    def add_integration(
        self,
        app_id: str,
        url: str,
        *,
        authorization: str | None = None,
        event_types: Sequence[str] = (),
        environment: str = "both",
    ) -> tuple[App, Integration]:
        """A new outbound webhook receiver (SPEC 10); its Authorization value is sealed."""
        app = self.get_app(app_id)
        integration = Integration(
            id=new_integration_id(),
            url=check_url(url.strip()),
            authorization=self._sealed_authorization(app, authorization),
            event_types=check_event_types(list(event_types)),
            environment=check_environment(environment),
        )
        event = self._event(apps.IntegrationAdded, app, 0, integration=integration)
        return self._save_app(app, [event]), integration

    def set_integration(
        self,
        app_id: str,
        integration_id: str,
        *,
        url: str | None = None,
        authorization: str | None = None,
        event_types: Sequence[str] | None = None,
        environment: str | None = None,
    ) -> tuple[App, Integration]:
        """Change what is given (None: kept; an empty Authorization removes it). The
        integration keeps its id and its pending deliveries; new settings apply to what is
        derived, and sent, from now on."""
        if url is None and authorization is None and event_types is None and environment is None:
            raise IntegrationError(
                "nothing to change: give --url, --authorization, --events or --environment"
            )
        app = self.get_app(app_id)
        current = self._integration(app, integration_id)
        changed = Integration(
            id=current.id,
            url=current.url if url is None else check_url(url.strip()),
            authorization=(
                current.authorization
                if authorization is None
                else self._sealed_authorization(app, authorization or None)
            ),
            event_types=(
                current.event_types if event_types is None else check_event_types(list(event_types))
            ),
            environment=(
                current.environment if environment is None else check_environment(environment)
            ),
        )
        if changed == current:
            return app, current
        event = self._event(apps.IntegrationChanged, app, 0, integration=changed)
        return self._save_app(app, [event]), changed

    def _sealed_authorization(self, app: App, value: str | None) -> SealedSecret | None:
        if value is None:
            return None
        if not self.sealer.encrypts:
            _refuse_plain_beside_sealed(app)
        return self.sealer.seal(check_authorization(value))

    @staticmethod
    def _integration(app: App, integration_id: str) -> Integration:
        for integration in app.integrations:
            if integration.id == integration_id:
                return integration
        raise apps.AppConfigError(f"app {app.app_id} has no integration {integration_id}")

    def remove_integration(self, app_id: str, integration_id: str) -> App:
        """Stop sending to an integration; its pending deliveries are dropped by the fold."""
        app = self.get_app(app_id)
        self._integration(app, integration_id)
        event = self._event(apps.IntegrationRemoved, app, 0, integration_id=integration_id)
        return self._save_app(app, [event])

    def _changes(
        self,
        app: App,
        secrets: Sequence[str],
        entitlements: dict[str, list[str]] | None,
        stripe_api_key: str | None,
        offset: int = 0,
    ) -> list[AppEvent]:
        events: list[AppEvent] = []
        if (secrets or stripe_api_key) and not self.sealer.encrypts:
            _refuse_plain_beside_sealed(app)
        known = {s.fingerprint for s in app.webhook_secrets}
        for secret in secrets:
            apps.check_webhook_secret(secret)
            if fingerprint(secret) in known:
                continue
            known.add(fingerprint(secret))
            sealed = self.sealer.seal(secret)
            events.append(
                self._event(apps.WebhookSecretAdded, app, offset + len(events), secret=sealed)
            )
        if entitlements is not None and entitlements != app.entitlements:
            events.append(
                self._event(
                    apps.EntitlementsMapped, app, offset + len(events), entitlements=entitlements
                )
            )
        if stripe_api_key is not None:
            key = (
                self.sealer.seal(apps.check_stripe_api_key(stripe_api_key))
                if stripe_api_key
                else None
            )
            events.append(self._event(apps.StripeApiKeySet, app, offset + len(events), key=key))
        return events

    def _event(self, cls: type[AppEvent], app: App, offset: int, **fields: Any) -> AppEvent:
        return cls(
            originator_id=app.id,
            originator_version=app.version + 1 + offset,
            received_at_ms=self.clock(),
            **fields,
        )

    def _save_app(self, app: App, events: Sequence[AppEvent]) -> App:
        for event in events:
            if event.originator_version > app.version:
                app = apps.evolve(app, event)
        if not events:
            return app
        try:
            self.save(*events)
        except IntegrityError:
            raise ConcurrentChangeError(
                f"app {app.app_id} was changed concurrently; nothing was stored, try again"
            ) from None
        except PersistenceError as error:
            raise StoreUnavailableError(str(error)) from error
        return app

    def get_app(self, app_id: str) -> App:
        aggregate_id = apps.aggregate_id_of(app_id)
        if aggregate_id is None:
            raise UnknownAppError(f"no app {app_id!r}")
        try:
            app: App = self.repository.get(aggregate_id, projector_func=apps.project_app)
        except AggregateNotFoundError:
            raise UnknownAppError(f"no app {app_id!r}") from None
        return app

    def list_apps(self) -> list[App]:
        found: dict[uuid.UUID, App] = {}
        for _, event in self.records(topics=APP_TOPICS):
            found[event.originator_id] = apps.evolve(found.get(event.originator_id), event)
        return sorted(found.values(), key=lambda a: (a.created_at_ms, a.app_id))


def _refuse_plain_beside_sealed(app: App) -> None:
    """A process without SUBLEDGER_SECRETS_KEY would store a new secret in plain text, for
    good (the log is append-only). Where the app already keeps its secrets encrypted, that
    is an operator running the CLI from the wrong shell: refuse, and say why."""
    held = [
        *app.webhook_secrets,
        *([app.stripe_api_key] if app.stripe_api_key else []),
        *(i.authorization for i in app.integrations if i.authorization),
    ]
    if any(secret.scheme != "plain" for secret in held):
        raise apps.AppConfigError(
            f"app {app.app_id} keeps its secrets encrypted: set SUBLEDGER_SECRETS_KEY "
            "before adding one (without it the new secret would be stored in plain text)"
        )


def app_settings(app: App) -> dict[str, Any]:
    """Public view of an app's settings: secrets appear as fingerprints only."""
    return {
        "name": app.name,
        **msgspec.structs.asdict(app.config),
        "webhook_secrets": [s.fingerprint for s in app.webhook_secrets],
        "entitlements": app.entitlements,
        "stripe_api_key": app.stripe_api_key.fingerprint if app.stripe_api_key else None,
        "integrations": [integration_settings(i) for i in app.integrations],
    }


def integration_settings(integration: Integration) -> dict[str, Any]:
    """An integration as listings show it: the Authorization value as its fingerprint."""
    sealed = integration.authorization
    return {
        "id": integration.id,
        "url": integration.url,
        "authorization": sealed.fingerprint if sealed else None,
        "event_types": list(integration.event_types) or "all",
        "environment": integration.environment,
    }


def _classes(base: type) -> list[type]:
    found: list[type] = []
    sub: type
    for sub in base.__subclasses__():
        found += [sub, *_classes(sub)]
    return found


# Every class the log holds gets its decoder now, while importing (one thread at a time):
# see store._decoder for the crash lazily built decoders risked.
build_decoders([*_classes(Fact), *_classes(AppEvent)])
