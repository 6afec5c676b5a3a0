"""The running service's parts and their background threads, started and stopped together."""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import anyio

from projections.deliveries import DeliveryReader
from projections.model import Purchase
from projections.reader import Reader
from projections.runner import Projector
from subledger.childprojector import ChildProjector
from subledger.delivery.deliverer import Deliverer
from subledger.facts import Fact
from subledger.ingest import GroupCommitter
from subledger.ledger import Ledger
from subledger.reads import PRODUCT_REASON, TOKEN_REASON, StripeReads
from subledger.refunds import RefundLinker
from subledger.registry import AppRegistry, LoadedApp
from subledger.sealing import Sealer
from subledger.settings import Settings
from subledger.store import STORE_FAULTS, StoreUnavailableError

log = logging.getLogger("subledger.service")
T = TypeVar("T")
READ_SLOTS = 8  # Stripe reads in flight at most (anyio's shared worker pool has 40 threads)
WAIT_SLOTS = 64  # receipts and attribute posts waiting for the projection at most


def lacks_product(purchase: Purchase) -> bool:
    """A one-time Checkout purchase known only from a webhook: webhook sessions carry no
    `line_items`, so its product (and entitlement) is known only through a read of the
    session. Without this, a token posted after `checkout.session.completed` left the
    purchase keyed by the session id, and one posted before it did not."""
    session = purchase.session
    return purchase.kind == "one_time" and session is not None and session.product is None


class PositionWatch:
    """Waits for the projection's position in another process: one thread polls the
    tracking table while anyone waits and wakes every waiter it satisfies. A poll per
    waiter (2 → 50 ms back-off each) made 64 waiting receipts 64 pollers, a cost that grew
    with the waiters (its share of a receipt's CPU was not measured apart)."""

    PAUSE_S = (0.003, 0.025)  # between polls: at first and after nothing changed for a while

    def __init__(self, read_position: Callable[[], int], on_error: Callable[[], None]) -> None:
        self._read_position = read_position
        self._on_error = on_error
        self._changed = threading.Condition()
        self._known = 0
        self._failures = 0  # polls that failed: a waiter fails on one made while it waits
        self._waiting = 0
        self._poller: threading.Thread | None = None

    def wait_for(self, position: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        with self._changed:
            if self._known >= position:
                return True
            self._waiting += 1
            failures = self._failures
            if self._poller is None:
                self._poller = threading.Thread(target=self._poll, name="position", daemon=True)
                self._poller.start()
            self._changed.notify_all()  # the poller may be idle
            try:
                while self._known < position:
                    if self._failures != failures:  # as a read of the store would: 503
                        raise StoreUnavailableError("the projection's position is unreadable")
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    self._changed.wait(remaining)
                return True
            finally:
                self._waiting -= 1

    def _poll(self) -> None:
        pause, failing = self.PAUSE_S[0], False
        while True:
            with self._changed:
                while not self._waiting:
                    self._changed.wait()
            try:
                position, failing = self._read_position(), False
            except Exception as error:  # noqa: BLE001 - waiters time out; polling goes on
                if not failing:  # once an outage, not every poll
                    log.warning("projection position unreadable: %s", error)
                self._on_error()
                position, failing = 0, True
            with self._changed:
                if failing:
                    self._failures += 1
                    self._changed.notify_all()
                if position > self._known:
                    self._known = position
                    self._changed.notify_all()
                    pause = self.PAUSE_S[0]
                else:
                    pause = min(pause * 2, self.PAUSE_S[1])
            time.sleep(pause)


class ProjectionLaggingError(RuntimeError):
    """Stored, but the projection did not apply it within SUBLEDGER_PROJECTION_WAIT_S."""


class Service:
    """Ledger, app registry, ingest group committer, read models and (optionally) projector."""

    def __init__(self, settings: Settings, *, worker: bool = False) -> None:
        """`worker`: one of `serve --workers N`'s HTTP processes; the supervising parent runs
        the one projector and the one deliverer, so this process runs neither."""
        self.settings = settings
        self.sealer = Sealer(settings.secrets_key)
        self.ledger = Ledger(settings.database, sealer=self.sealer)
        self.registry = AppRegistry(self.ledger, self.sealer)
        mode = "external" if worker else settings.projector_mode
        self.projector = Projector(self.ledger) if mode == "thread" else None
        self.child = ChildProjector(settings) if mode == "process" else None
        self.reader = Reader(settings.database)
        self.watch = PositionWatch(self.reader.position, self.reader.db.discard)
        # Ingest does not wake the projector: under load it would run one tiny batch per
        # commit; its 25 ms poll gathers them (readers that wait wake it themselves).
        self.committer = GroupCommitter(
            self.ledger.record_new,
            max_group=settings.ingest_max_group,
            note_duplicates=self.ledger.note_redeliveries,
        )
        self.reads = StripeReads(
            api_base=settings.stripe_api_base, timeout_s=settings.stripe_timeout_s
        )
        self.refunds = RefundLinker(
            self.ledger, self.reader, self.registry, self.reads, self.appended
        )
        # Outbound webhooks (SPEC 10): sent from here unless SUBLEDGER_DELIVERY=external; a
        # lease in the store keeps one sender at a time across processes.
        self.deliverer = (
            Deliverer(self.ledger, self.reader, self.registry, settings, appended=self.appended)
            if settings.delivery == "thread" and not worker
            else None
        )
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._read_slots: anyio.CapacityLimiter | None = None  # made on the event loop
        self._wait_slots: anyio.CapacityLimiter | None = None

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
        if self.projector is not None:
            self.spawn("projector", self.projector.run)
        if self.child is not None:
            self.spawn("projector-process", self.child.run)
        self.spawn("refund-linker", self.refunds.run)
        if self.deliverer is not None:
            self.spawn("deliverer", self.deliverer.run)

    def appended(self) -> None:
        """Something was appended here: wake the in-process projector now, not at its poll."""
        if self.projector is not None:
            self.projector.wake.set()

    async def read(self, call: Callable[..., T], *args: Any) -> T:
        """A read of the store off the event loop, answered within the store timeout: a
        store fault becomes StoreUnavailableError (503), and a connection found broken is
        replaced and the read tried once more, so reads recover as soon as the store does."""
        try:
            with anyio.fail_after(self.settings.store_timeout_s):
                return await anyio.to_thread.run_sync(
                    functools.partial(self._read_once_more, call, *args),
                    abandon_on_cancel=True,
                )
        except TimeoutError:
            raise StoreUnavailableError("the store did not answer in time") from None

    def _read_once_more(self, call: Callable[..., T], *args: Any) -> T:
        try:
            return call(*args)
        except STORE_FAULTS:
            # The read models keep one connection per thread: a restart of PostgreSQL
            # leaves each broken until that thread uses it again. Drop this one, retry.
            self.reader.db.discard()
        try:
            return call(*args)
        except STORE_FAULTS as error:
            self.reader.db.discard()
            raise StoreUnavailableError(f"{type(error).__name__}: {error}") from error

    async def record_and_wait(self, *facts: Fact) -> int:
        """Append (in one transaction, grouped with whatever else is being committed), then
        wait until the projection has applied it (read-your-writes)."""
        try:  # at most the store timeout, like a webhook: then 503, the store is down
            async with asyncio.timeout(self.settings.store_timeout_s):
                positions = await self.committer.submit_all(facts)
        except TimeoutError:
            raise StoreUnavailableError("the store did not confirm in time; retry") from None
        # The facts have random ids: none was stored before (None would mean it was).
        position = max((p for p in positions if p is not None), default=0)
        self.appended()
        if not await self.wait_projected_async(position, self.settings.projection_wait_s):
            raise ProjectionLaggingError(
                "recorded, but the projection did not catch up in time; "
                "retry (repeating is harmless)"
            )
        return position

    def readiness(self) -> dict[str, Any]:
        """The log's end and the projection's state (blocking: the store is asked)."""
        position = self.ledger.last_position()
        projection = (
            self.projector.describe()
            if self.projector is not None
            else self.reader.projection_state()
        )
        return {
            "position": position,
            "projection": projection | self.reader.unprojectable_state(),
            "deliveries": DeliveryReader(self.reader).backlog(self.ledger.clock()),
        }

    def wait_projected(self, position: int, timeout_s: float) -> bool:
        """Read-your-writes: has the projection applied `position`?"""
        if self.projector is not None:
            return self.projector.wait_for(position, timeout_s)
        return self.watch.wait_for(position, timeout_s)

    async def wait_projected_async(self, position: int, timeout_s: float) -> bool:
        """`wait_projected` on threads of its own, WAIT_SLOTS at most: waiting receipts used
        to fill anyio's shared pool, so webhook commits queued behind them and answered 503
        while the store was fine. Past WAIT_SLOTS waits, the answer is "not yet" at once
        (the fact is stored either way)."""
        if self._wait_slots is None:
            self._wait_slots = anyio.CapacityLimiter(WAIT_SLOTS)
        if self._wait_slots.available_tokens < 1:
            log.warning(
                "projection wait skipped: all wait slots busy", extra={"position": position}
            )
            return False
        return await anyio.to_thread.run_sync(
            self.wait_projected, position, timeout_s, limiter=self._wait_slots
        )

    async def stripe_reads_before_token(self, loaded: LoadedApp, token: str) -> list[Fact]:
        """Stripe API reads to record with a token (SPEC 6): only with an API key, and only
        for a purchase subledger has no Stripe facts about yet."""
        if not loaded.stripe_api_key:
            return []
        if self._read_slots is None:
            self._read_slots = anyio.CapacityLimiter(READ_SLOTS)
        try:
            # Taken at once or not at all: a slow Stripe must not hold the worker threads
            # webhooks commit on. Past READ_SLOTS reads in flight, a token is stored without
            # reads (they are optional).
            self._read_slots.acquire_nowait()
        except anyio.WouldBlock:
            log.warning("stripe reads skipped: all read slots busy", extra={"token": token})
            return []
        try:
            return await anyio.to_thread.run_sync(self._reads_for_token, loaded, token)
        finally:
            self._read_slots.release()

    def _reads_for_token(self, loaded: LoadedApp, token: str) -> list[Fact]:
        """Reads are optional (SPEC 6): whatever goes wrong here, the token is still stored."""
        assert loaded.stripe_api_key
        try:
            purchase = self.reader.purchase(
                loaded.app_id, self.reader.linked_purchase(loaded.app_id, token)
            )
            reason = TOKEN_REASON
            if purchase is not None and (purchase.subs or purchase.session):
                if not lacks_product(purchase):
                    return []
                reason = PRODUCT_REASON
            return list(self.reads.for_token(loaded.app_id, loaded.stripe_api_key, token, reason))
        except Exception:  # logged with its traceback; the token goes on
            log.exception("stripe reads skipped", extra={"app_id": loaded.app_id, "token": token})
            return []

    async def close_async(self) -> None:
        """Stop accepting on the event loop (the committer's writer task lives there)."""
        await self.committer.close()

    def stop(self) -> None:
        self._stop.set()
        if self.child is not None:
            self.child.terminate()
        for thread in self._threads:
            thread.join(timeout=5)
        if self.projector is not None:
            self.projector.close()
        self.reader.close()
        self.ledger.close()
