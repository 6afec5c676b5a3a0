"""Generated subscription lifecycles for the charts (SPEC 11): the facts Stripe and an app
backend would send, and, computed by hand from the same few parameters, what each chart
must show. The expectations never call the fold's chart rules."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from subledger.facts import Fact
from tests.samples import (
    DAY,
    charge_event,
    invoice_event,
    notification,
    subscription_event,
    token,
)

KINDS = (
    "trial_convert",
    "trial_abandon",
    "renew",
    "cancel",
    "refund",
    "billing_issue",
    "upgrade",
)
MONTH0 = 1_796_083_200  # 2026-12-01T00:00:00Z
TRIAL = 7 * DAY


@dataclass(frozen=True)
class Lifecycle:
    n: int
    start: int  # Stripe seconds
    kind: str
    currency: str = "usd"
    amount: int = 999
    interval: str = "month"

    @property
    def period(self) -> int:
        return 365 * DAY if self.interval == "year" else 30 * DAY

    @property
    def sub(self) -> str:
        return f"sub_C{self.n:05d}"

    @property
    def user(self) -> str:
        return f"user_{self.n}"

    def mrr_milli(self, amount: int) -> int:
        """RevenueCat's normalisation, by hand: a year is 1/12 of a month, rounded half up."""
        return amount * 1000 if self.interval == "month" else (amount * 1000 + 6) // 12


@dataclass(frozen=True)
class Expected:
    """One lifecycle's contribution, in the chart's own terms."""

    first_seen: int
    trials: list[tuple[int, int]]
    paid: list[tuple[int, int, int]]  # start, end, MRR (thousandths)
    txns: list[tuple[int, int, int]]  # paid at, amount, refunded
    lapses: list[int]
    trial_outcome: str | None


def facts(app_id: str, lc: Lifecycle) -> list[Fact]:
    """Token first (the app backend posts it at checkout), then Stripe's notifications."""
    s, p, n = lc.start, lc.period, lc.n
    price = {
        "unit_amount": lc.amount,
        "currency": lc.currency,
        "recurring": {"interval": lc.interval, "interval_count": 1},
    }
    common = {"sub_id": lc.sub, "customer": f"cus_C{n}", "start_date": s, "price": price}
    k = iter(range(100))

    def sub(created: int, status: str, period: tuple[int, int], **extra: object) -> bytes:
        fields = {**common, **extra}
        return subscription_event(
            event_id=f"evt_C{n}_{next(k)}", created=created, status=status, period=period, **fields
        )

    def paid(created: int, number: int, period: tuple[int, int], status: str = "paid") -> bytes:
        return invoice_event(
            event_id=f"evt_C{n}_{next(k)}",
            created=created,
            invoice_id=f"in_C{n}_{number}",
            sub_id=lc.sub,
            customer=f"cus_C{n}",
            status=status,
            amount_paid=lc.amount if status == "paid" else 0,
            paid_at=created if status == "paid" else None,
            period=period,
            currency=lc.currency,
        )

    bodies: list[tuple[int, bytes]] = []
    if lc.kind.startswith("trial"):
        bodies.append((s, sub(s, "trialing", (s, s + TRIAL))))
        if lc.kind == "trial_convert":
            first = (s + TRIAL, s + TRIAL + p)
            bodies += [(s + TRIAL, sub(s + TRIAL, "active", first))]
            bodies += [(s + TRIAL, paid(s + TRIAL, 1, first))]
        else:
            cancel = sub(s + 2 * DAY, "trialing", (s, s + TRIAL), cancel_at_period_end=True)
            ended = s + TRIAL
            gone = sub(ended, "canceled", (s, s + TRIAL), canceled_at=ended, ended_at=ended)
            bodies += [(s + 2 * DAY, cancel), (ended, gone)]
    else:
        first = (s, s + p)
        bodies += [(s, sub(s, "active", first)), (s, paid(s, 1, first))]
        second = (s + p, s + 2 * p)
        if lc.kind == "renew":
            bodies += [(s + p, sub(s + p, "active", second)), (s + p, paid(s + p, 2, second))]
        elif lc.kind == "cancel":
            bodies.append(
                (s + 3 * DAY, sub(s + 3 * DAY, "active", first, cancel_at_period_end=True))
            )
            bodies.append((s + p, sub(s + p, "canceled", first, canceled_at=s + p, ended_at=s + p)))
        elif lc.kind == "refund":
            refund = charge_event(
                event_id=f"evt_C{n}_{next(k)}",
                created=s + 10 * DAY,
                charge_id=f"ch_C{n}",
                customer=f"cus_C{n}",
                amount=lc.amount,
                amount_refunded=lc.amount,
                charge_created=s,
                payment_intent=f"pi_C{n}",
                invoice=f"in_C{n}_1",
            )
            bodies.append((s + 10 * DAY, refund))
        elif lc.kind == "billing_issue":
            bodies.append((s + p, sub(s + p, "past_due", second)))
            bodies.append((s + p, paid(s + p, 2, second, status="open")))
            bodies.append((s + p + 3 * DAY, sub(s + p + 3 * DAY, "unpaid", second)))
        elif lc.kind == "upgrade":
            doubled = {**price, "unit_amount": 2 * lc.amount}
            change = sub(s + 5 * DAY, "active", first, product="prod_Pro", price=doubled)
            bodies.append((s + 5 * DAY, change))
    found: list[Fact] = [token(app_id, s * 1000, user=lc.user, fetch=lc.sub)]
    found += [notification(app_id, body, at * 1000 + 1) for at, body in bodies]
    return found


def expected(lc: Lifecycle) -> Expected:
    """By hand, per kind: (trials, paid spans with MRR, transactions, lapses, outcome)."""
    s, p, m = lc.start, lc.period, lc.mrr_milli(lc.amount)
    one = [(s, lc.amount, 0)]
    trial = [(s, s + TRIAL)]
    converted = s + TRIAL + p
    changed = s + 5 * DAY  # upgrade: the doubled price from the change on
    refunded = s + 10 * DAY
    unpaid = s + p + 3 * DAY
    kinds: dict[str, tuple[Any, ...]] = {
        "trial_convert": (
            trial,
            [(s + TRIAL, converted, m)],
            [(s + TRIAL, lc.amount, 0)],
            [converted],
            "converted",
        ),
        "trial_abandon": (trial, [], [], [], "abandoned"),
        "renew": ([], [(s, s + 2 * p, m)], [*one, (s + p, lc.amount, 0)], [s + 2 * p], None),
        "cancel": ([], [(s, s + p, m)], one, [s + p], None),
        "refund": ([], [(s, refunded, m)], [(s, lc.amount, lc.amount)], [refunded], None),
        "billing_issue": ([], [(s, unpaid, m)], one, [unpaid], None),
        "upgrade": (
            [],
            [(s, changed, m), (changed, s + p, lc.mrr_milli(2 * lc.amount))],
            one,
            [s + p],
            None,
        ),
    }
    return Expected(s, *kinds[lc.kind])


def day(seconds: int) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).date().isoformat()


def expected_day(
    lcs: list[Lifecycle], chart: str, on: str, currency: str = "usd"
) -> dict[str, float]:
    """One day's measures, from the lifecycles' parameters alone."""
    out: dict[str, float] = {}
    for lc in lcs:
        e = expected(lc)
        alive = (
            [(a, b) for a, b in e.trials]
            if chart == "active_trials"
            else [(a, b) for a, b, _ in e.paid]
        )
        if chart in ("active_subscriptions", "active_trials"):
            out["active"] = out.get("active", 0) + sum(day(a) <= on < day(b) for a, b in alive)
        elif chart == "mrr" and lc.currency == currency:
            mrr = sum(v for a, b, v in e.paid if day(a) <= on < day(b))
            out[currency] = out.get(currency, 0) + mrr
        elif chart == "revenue" and lc.currency == currency:
            net = sum(amount - refunded for at, amount, refunded in e.txns if day(at) == on)
            out[currency] = out.get(currency, 0) + net
        elif chart == "new_customers":
            out["customers"] = out.get("customers", 0) + (day(e.first_seen) == on)
        elif chart == "refund_rate":
            out["transactions"] = out.get("transactions", 0) + sum(day(t[0]) == on for t in e.txns)
            out["refunded"] = out.get("refunded", 0) + sum(
                day(t[0]) == on and t[2] > 0 for t in e.txns
            )
        elif chart == "churn":
            before = (dt.date.fromisoformat(on) - dt.timedelta(days=1)).isoformat()
            out["expired"] = out.get("expired", 0) + sum(day(t) == on for t in e.lapses)
            out["resubscribed"] = 0
            live = sum(day(a) <= before < day(b) for a, b, _ in e.paid)
            out["active_at_start"] = out.get("active_at_start", 0) + live
    if chart == "mrr":
        out = {k: v / 1000 for k, v in out.items()}  # summed in thousandths, as stored
    return {k: v for k, v in out.items() if v or chart not in ("mrr", "revenue")}
