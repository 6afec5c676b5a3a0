"""Live-only worker: link refunds Stripe sent without an invoice by reading Stripe (SPEC 6).

Follows `charge.refunded` notifications with a cursor kept next to the read models. For
apps with an API key, a charge that carries no `invoice` and is not linked yet gets its
invoice payments and invoices read; the answers become facts and the projection links them.
Replays never run this: they only see the recorded answers.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import msgspec
from eventsourcing.utils import get_topic

from projections.reader import Reader
from subledger.facts import NotificationReceived
from subledger.ledger import Ledger
from subledger.reads import StripeReads
from subledger.registry import AppRegistry
from subledger.stripe import objects

log = logging.getLogger("subledger.refunds")
CURSOR = "refund_reads"
TOPICS = (get_topic(NotificationReceived),)


class RefundLinker:
    def __init__(
        self,
        ledger: Ledger,
        reader: Reader,
        registry: AppRegistry,
        reads: StripeReads,
        appended: Callable[[], None],
    ) -> None:
        self.ledger = ledger
        self.reader = reader
        self.registry = registry
        self.reads = reads
        self.appended = appended

    def step(self) -> int:
        """Handle refunds after the cursor; returns how many reads were recorded."""
        if not self.registry.any_stripe_key():
            return 0
        start = self.reader.meta(CURSOR) + 1
        stop = self.ledger.last_position()
        if stop < start:
            return 0
        recorded = 0
        for _, fact in self.ledger.records(start, stop=stop, topics=TOPICS):
            if fact.type == "charge.refunded":
                recorded += self._link(fact)
        self.reader.set_meta(CURSOR, stop)  # a crash before this re-reads: reads are idempotent
        return recorded

    def _link(self, fact: NotificationReceived) -> int:
        loaded = self.registry.cached(fact.app_id)
        if loaded is None or not loaded.stripe_api_key:
            return 0
        try:
            charge = objects.decode_event_object(fact.type, fact.body)
        except msgspec.ValidationError:
            return 0
        if not isinstance(charge, objects.Charge) or charge.invoice or not charge.payment_intent:
            return 0
        if self.reader.charge_linked(fact.app_id, charge):
            return 0
        facts = self.reads.for_refund(fact.app_id, loaded.stripe_api_key, charge)
        self.ledger.record(*facts)
        self.appended()
        return len(facts)

    def run(self, stop: threading.Event, interval_s: float = 0.5) -> None:
        while not stop.wait(interval_s):
            try:
                self.step()
            except Exception as error:  # noqa: BLE001 - retried next tick; refunds stay unlinked
                log.warning("refund linking failed: %s", error)
