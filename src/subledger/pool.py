"""The ledger's PostgreSQL connection pool: back as soon as PostgreSQL is (docs/reliability.md)."""

from __future__ import annotations

from typing import Any

from eventsourcing.postgres import ConnectionPool, PostgresFactory
from eventsourcing.utils import EnvType
from psycopg_pool.base import AttemptWithBackoff


class QuickAttempt(AttemptWithBackoff):
    """Reconnect every 0.1 to 0.5 s while the store is away (psycopg_pool backs off 1, 2,
    4 … s: requests failed for seconds after PostgreSQL was back)."""

    INITIAL_DELAY = 0.1
    DELAY_BACKOFF = 1.5
    MAX_DELAY = 0.5

    def update_delay(self, now: float) -> None:
        super().update_delay(now)
        self.delay = min(self.delay, self.MAX_DELAY)


class QuickReconnectPool(ConnectionPool[Any]):
    """eventsourcing's pool, recovering as soon as PostgreSQL does: replacements are tried
    on QuickAttempt's schedule, and one connection failing its check (after a restart, all
    of them are broken) drops every idle one at once, where psycopg_pool would sleep 1, 2,
    4 … s between the checks of one request."""

    def _add_connection(self, attempt: AttemptWithBackoff | None, growing: bool = False) -> None:
        super()._add_connection(attempt or QuickAttempt(timeout=self.reconnect_timeout), growing)

    def _check_connection(self, conn: Any) -> None:
        try:
            super()._check_connection(conn)
        except Exception:
            self.check()
            raise


class LedgerPostgresFactory(PostgresFactory):
    """eventsourcing's PostgreSQL infrastructure with the QuickReconnectPool."""

    def __init__(self, env: EnvType) -> None:
        super().__init__(env)
        self.datastore.pool.__class__ = QuickReconnectPool
