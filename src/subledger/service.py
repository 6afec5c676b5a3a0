"""The running service's parts and their background threads, started and stopped together."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from subledger.ingest import GroupCommitter
from subledger.ledger import Ledger
from subledger.registry import AppRegistry
from subledger.sealing import Sealer
from subledger.settings import Settings

log = logging.getLogger("subledger.service")


class Service:
    """Ledger + app registry (+ projector and ingest batcher, added by later layers)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.sealer = Sealer(settings.secrets_key)
        self.ledger = Ledger(settings.database, sealer=self.sealer)
        self.registry = AppRegistry(self.ledger, self.sealer)
        self.committer = GroupCommitter(self.ledger.record_new, max_group=settings.ingest_max_group)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def spawn(self, name: str, target: Callable[[threading.Event], None]) -> None:
        thread = threading.Thread(target=target, args=(self._stop,), name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def start(self) -> None:
        try:
            self.registry.refresh()
        except Exception as error:  # noqa: BLE001 - the server starts; /ready reports it
            log.warning("could not load apps at startup: %s", error)
        self.spawn("app-registry", self.registry.run)

    async def close_async(self) -> None:
        """Stop accepting on the event loop (the committer's writer task lives there)."""
        await self.committer.close()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self.ledger.close()
