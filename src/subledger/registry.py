"""The running service's view of apps: follows settings events so changes apply within ~1 s."""

from __future__ import annotations

import logging
import threading
import uuid

import msgspec

from subledger import apps
from subledger.apps import App
from subledger.ledger import APP_TOPICS, Ledger
from subledger.sealing import Sealer, SealingError

log = logging.getLogger("subledger.registry")


class Receiver(msgspec.Struct, frozen=True):
    """An integration as the sender needs it: where to POST, with which Authorization."""

    id: str
    url: str
    authorization: str | None


class LoadedApp(msgspec.Struct, frozen=True):
    app: App
    webhook_secrets: tuple[tuple[str, str], ...]  # (fingerprint, secret)
    stripe_api_key: str | None
    receivers: tuple[Receiver, ...] = ()

    @property
    def app_id(self) -> str:
        return self.app.app_id


class AppRegistry:
    """In-memory apps, refreshed from the log (only settings topics are read)."""

    def __init__(self, ledger: Ledger, sealer: Sealer) -> None:
        self._ledger = ledger
        self._sealer = sealer
        self._states: dict[uuid.UUID, App] = {}
        self._by_id: dict[str, LoadedApp] = {}
        self._by_key: dict[str, tuple[LoadedApp, bool]] = {}
        self._position = 0
        self._lock = threading.Lock()

    def refresh(self) -> None:
        with self._lock:
            stop = self._ledger.last_position()
            if stop <= self._position:
                return
            changed = False
            for _, event in self._ledger.records(self._position + 1, stop=stop, topics=APP_TOPICS):
                self._states[event.originator_id] = apps.evolve(
                    self._states.get(event.originator_id), event
                )
                changed = True
            self._position = stop
            if changed:
                self._rebuild_indexes()

    def _rebuild_indexes(self) -> None:
        by_id: dict[str, LoadedApp] = {}
        by_key: dict[str, tuple[LoadedApp, bool]] = {}
        for app in self._states.values():
            loaded = self._load(app)
            if loaded is None:
                continue
            by_id[app.app_id] = loaded
            by_key[app.public_key_hash] = (loaded, False)
            by_key[app.secret_key_hash] = (loaded, True)
        self._by_id, self._by_key = by_id, by_key

    def _load(self, app: App) -> LoadedApp | None:
        try:
            secrets = tuple((s.fingerprint, self._sealer.open(s)) for s in app.webhook_secrets)
            key = self._sealer.open(app.stripe_api_key) if app.stripe_api_key else None
        except SealingError as error:
            log.error("app %s cannot be loaded: %s", app.app_id, error)
            return None
        receivers = []
        for integration in app.integrations:
            try:
                sealed = integration.authorization
                value = self._sealer.open(sealed) if sealed else None
            except SealingError as error:  # its deliveries wait; the app itself still works
                log.error("integration %s cannot be loaded: %s", integration.id, error)
                continue
            receivers.append(Receiver(id=integration.id, url=integration.url, authorization=value))
        return LoadedApp(
            app=app, webhook_secrets=secrets, stripe_api_key=key, receivers=tuple(receivers)
        )

    def loaded(self) -> list[LoadedApp]:
        """Every app as of the last refresh (no I/O)."""
        return list(self._by_id.values())

    def any_stripe_key(self) -> bool:
        return any(app.stripe_api_key for app in self._by_id.values())

    def cached(self, app_id: str) -> LoadedApp | None:
        """The app as of the last refresh (no I/O: safe on the event loop)."""
        return self._by_id.get(app_id)

    def get(self, app_id: str) -> LoadedApp | None:
        """The app, refreshing once when the id is unknown (blocking I/O: call off-loop)."""
        found = self._by_id.get(app_id)
        if found is None and apps.aggregate_id_of(app_id) is not None:
            # A brand-new app may be younger than the last refresh (one cheap max() query).
            self.refresh()
            found = self._by_id.get(app_id)
        return found

    def cached_key(self, api_key: str) -> tuple[LoadedApp, bool] | None:
        return self._by_key.get(apps.key_hash(api_key))

    def authenticate(self, api_key: str) -> tuple[LoadedApp, bool] | None:
        """(app, is_secret_key) for a key, or None (blocking I/O: call off-loop)."""
        digest = apps.key_hash(api_key)
        found = self._by_key.get(digest)
        if found is None and api_key.startswith(apps.KEY_PREFIXES):
            self.refresh()
            found = self._by_key.get(digest)
        return found

    def run(self, stop: threading.Event, interval_s: float = 0.5) -> None:
        """Background refresh loop; errors are logged and retried (the store may be down)."""
        while not stop.wait(interval_s):
            try:
                self.refresh()
            except Exception as error:  # noqa: BLE001 - keep following; next tick retries
                log.warning("app registry refresh failed: %s", error)
