"""Configuration: the only module that reads the process environment."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qs, unquote, urlsplit

import msgspec

DEFAULT_DATABASE_URL = "sqlite:///./var/subledger.db"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


ProjectorChoice = Literal["auto", "thread", "process", "external"]
DeliveryChoice = Literal["thread", "external"]
# RevenueCat's retries after a failed delivery: 5, 10, 20, 40 and 80 minutes (SPEC 10).
DEFAULT_RETRIES_S = (300.0, 600.0, 1200.0, 2400.0, 4800.0)


class SettingsError(ValueError):
    """A setting has a value subledger cannot use; the message says which and why."""


class Database(msgspec.Struct, frozen=True, kw_only=True):
    """Where the event store and the read models live (one database, two kinds)."""

    kind: Literal["sqlite", "postgresql"]
    url: str
    path: str = ""
    host: str = ""
    port: int = 5432
    user: str = ""
    password: str = ""
    dbname: str = ""
    schema: str = "public"

    @property
    def redacted_url(self) -> str:
        """The URL without its password, for logs and error messages."""
        return _redact(self.url)


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    database: Database
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "INFO"
    max_body_bytes: int = 1024 * 1024
    projection_wait_s: float = 5.0
    store_timeout_s: float = 5.0
    secrets_key: str = ""
    stripe_api_base: str = ""
    stripe_timeout_s: float = 3.0
    ingest_max_group: int = 256
    projector: ProjectorChoice = "auto"
    cors_origins: tuple[str, ...] = ()
    delivery: DeliveryChoice = "thread"
    delivery_retries_s: tuple[float, ...] = DEFAULT_RETRIES_S
    delivery_timeout_s: float = 60.0
    delivery_concurrency: int = 8  # requests in flight per integration
    delivery_max_age_s: float = 86_400.0
    workers: int = 0  # HTTP worker processes of `serve`; 0: decided by the store (worker_count)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Read `SUBLEDGER_*` variables; raise SettingsError with a one-line reason."""
        url = environ.get("SUBLEDGER_DATABASE_URL", "").strip() or DEFAULT_DATABASE_URL
        schema = environ.get("SUBLEDGER_DATABASE_SCHEMA", "").strip()
        level = environ.get("SUBLEDGER_LOG_LEVEL", "INFO").strip().upper() or "INFO"
        if level not in LOG_LEVELS:
            raise SettingsError(f"SUBLEDGER_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}")
        return cls(
            database=parse_database_url(url, schema),
            host=environ.get("SUBLEDGER_HOST", "").strip() or "127.0.0.1",
            port=_int(environ, "SUBLEDGER_PORT", 8000, low=0, high=65535),
            log_level=level,
            max_body_bytes=_int(environ, "SUBLEDGER_MAX_BODY_BYTES", 1024 * 1024, low=1024),
            projection_wait_s=_float(environ, "SUBLEDGER_PROJECTION_WAIT_S", 5.0),
            store_timeout_s=_float(environ, "SUBLEDGER_STORE_TIMEOUT_S", 5.0),
            secrets_key=environ.get("SUBLEDGER_SECRETS_KEY", "").strip(),
            stripe_api_base=environ.get("SUBLEDGER_STRIPE_API_BASE", "").strip(),
            stripe_timeout_s=_float(environ, "SUBLEDGER_STRIPE_TIMEOUT_S", 3.0),
            ingest_max_group=_int(environ, "SUBLEDGER_INGEST_MAX_GROUP", 256, low=1, high=10_000),
            projector=_projector(environ.get("SUBLEDGER_PROJECTOR", "").strip() or "auto"),
            cors_origins=parse_origins(environ.get("SUBLEDGER_CORS_ORIGINS", "")),
            delivery=_delivery(environ.get("SUBLEDGER_DELIVERY", "").strip() or "thread"),
            delivery_retries_s=_retries(environ.get("SUBLEDGER_DELIVERY_RETRIES_S", "")),
            delivery_timeout_s=_float(environ, "SUBLEDGER_DELIVERY_TIMEOUT_S", 60.0),
            delivery_concurrency=_int(
                environ, "SUBLEDGER_DELIVERY_CONCURRENCY", 8, low=1, high=256
            ),
            delivery_max_age_s=_float(environ, "SUBLEDGER_DELIVERY_MAX_AGE_S", 86_400.0),
            workers=_int(environ, "SUBLEDGER_WORKERS", 0, low=0, high=256),
        )

    @property
    def projector_mode(self) -> Literal["thread", "process", "external"]:
        """`auto`: a thread on SQLite (one file, one writer process); a child process on
        PostgreSQL, so projecting uses the second core instead of the web process's GIL."""
        if self.projector != "auto":
            return self.projector
        return "thread" if self.database.kind == "sqlite" else "process"

    @property
    def worker_count(self) -> int:
        """`serve`'s HTTP worker processes: SUBLEDGER_WORKERS, else one per core this process
        may run on with PostgreSQL, and one with SQLite (docs/decisions.md "Several HTTP
        workers") or with SUBLEDGER_PROJECTOR=thread (a projector inside the one process)."""
        if self.workers:
            return self.workers
        if self.database.kind == "sqlite" or self.projector == "thread":  # one process asked
            return 1
        return usable_cores()

    def with_database(self, url: str, schema: str = "") -> Settings:
        return msgspec.structs.replace(self, database=parse_database_url(url, schema))


def usable_cores() -> int:
    """Cores this process may run on (taskset and cgroup cpusets count, not the machine's)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def parse_database_url(url: str, schema: str = "") -> Database:
    """`sqlite:///relative/or//absolute/path` or `postgresql://user:pass@host:port/db?schema=s`."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        if parts.netloc or not parts.path.startswith("/") or len(parts.path) < 2:
            raise SettingsError(
                f"bad SQLite URL {url!r}: use sqlite:///relative/path.db or sqlite:////abs/path.db"
            )
        if schema:
            raise SettingsError("a schema only applies to PostgreSQL URLs")
        return Database(kind="sqlite", url=url, path=unquote(parts.path[1:]))
    if parts.scheme in ("postgresql", "postgres"):
        return _postgres(url, parts.query, schema)
    raise SettingsError(
        f"unsupported database URL {_redact(url)!r}: expected sqlite:///… or postgresql://…"
    )


def _postgres(url: str, query: str, schema: str) -> Database:
    parts = urlsplit(url)
    try:
        port = parts.port or 5432
    except ValueError:
        raise SettingsError(f"bad port in database URL {_redact(url)!r}") from None
    dbname = unquote(parts.path.lstrip("/"))
    if not parts.hostname or not dbname:
        raise SettingsError(f"database URL {_redact(url)!r} needs a host and a database name")
    options = parse_qs(query)
    unknown = set(options) - {"schema"}
    if unknown:
        raise SettingsError(f"unknown database URL option(s): {', '.join(sorted(unknown))}")
    chosen = schema or options.get("schema", ["public"])[0]
    if not _SCHEMA_NAME.match(chosen):
        raise SettingsError(f"bad schema name {chosen!r}: use lowercase letters, digits and _")
    return Database(
        kind="postgresql",
        url=url,
        host=parts.hostname,
        port=port,
        user=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
        dbname=dbname,
        schema=chosen,
    )


def eventsourcing_env(database: Database, *, lock_timeout_s: int = 3) -> dict[str, str]:
    """Turn a database into eventsourcing's PERSISTENCE_MODULE / SQLITE_* / POSTGRES_* settings."""
    if database.kind == "sqlite":
        Path(database.path).parent.mkdir(parents=True, exist_ok=True)
        return {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": database.path,
            "SQLITE_LOCK_TIMEOUT": str(lock_timeout_s),
        }
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": database.dbname,
        "POSTGRES_HOST": database.host,
        "POSTGRES_PORT": str(database.port),
        "POSTGRES_USER": database.user,
        "POSTGRES_PASSWORD": database.password,
        "POSTGRES_SCHEMA": database.schema,
        # Off on purpose: the DB function skips the insert lock and can write into
        # another application's table of the same name.
        "POSTGRES_ENABLE_DB_FUNCTIONS": "n",
        "POSTGRES_LOCK_TIMEOUT": str(lock_timeout_s),
        "POSTGRES_CONNECT_TIMEOUT": "2",
        "POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT": "10",
        "POSTGRES_POOL_SIZE": "2",
        "POSTGRES_MAX_OVERFLOW": "8",
        "POSTGRES_PRE_PING": "y",
    }


def parse_origins(value: str) -> tuple[str, ...]:
    """`https://app.example.com,http://localhost:3000` → the origins, in the form a browser
    sends them (lowercase, no default port, no path); no wildcards."""
    origins: list[str] = []
    for raw in (part.strip() for part in value.split(",")):
        origin = _origin(raw) if raw else ""
        if origin is None:
            raise SettingsError(
                f"SUBLEDGER_CORS_ORIGINS: {raw!r} is not an origin like "
                "https://app.example.com or http://localhost:3000 (no path, no wildcard)"
            )
        if origin and origin not in origins:
            origins.append(origin)
    return tuple(origins)


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(raw: str) -> str | None:
    parts = urlsplit(raw.lower())
    try:
        port = parts.port
    except ValueError:
        return None
    host = parts.hostname or ""
    if (
        parts.scheme not in _DEFAULT_PORTS
        or not host
        or "*" in raw
        or "@" in parts.netloc
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
    ):
        return None
    host = f"[{host}]" if ":" in host else host
    shown_port = "" if port in (None, _DEFAULT_PORTS[parts.scheme]) else f":{port}"
    return f"{parts.scheme}://{host}{shown_port}"


def _projector(value: str) -> ProjectorChoice:
    for mode in ("auto", "thread", "process", "external"):
        if value == mode:
            return mode
    raise SettingsError("SUBLEDGER_PROJECTOR must be auto, thread, process or external")


def _delivery(value: str) -> DeliveryChoice:
    for mode in ("thread", "external"):
        if value == mode:
            return mode
    raise SettingsError("SUBLEDGER_DELIVERY must be thread or external")


def _retries(value: str) -> tuple[float, ...]:
    """`300,600,1200,2400,4800` (seconds after each failed attempt); `none`: no retries."""
    raw = value.strip()
    if not raw:
        return DEFAULT_RETRIES_S
    if raw.lower() == "none":
        return ()
    try:
        delays = tuple(float(part) for part in raw.split(","))
    except ValueError:
        raise SettingsError(
            f"SUBLEDGER_DELIVERY_RETRIES_S must be seconds like 300,600,1200, got {raw!r}"
        ) from None
    if any(not 0 < d <= 7 * 86_400 for d in delays) or len(delays) > 50:
        raise SettingsError("SUBLEDGER_DELIVERY_RETRIES_S: 1-50 delays, each 0-604800 seconds")
    return delays


def _redact(url: str) -> str:
    """`url` with its password as `***`. The password is matched as written in the URL
    (percent-encoded), not decoded: `p%40ss` must go, not only `p@ss`."""
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@", 1)
    return url


def _int(environ: Mapping[str, str], key: str, default: int, *, low: int, high: int = 2**31) -> int:
    raw = environ.get(key, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{key} must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise SettingsError(f"{key} must be between {low} and {high}, got {value}")
    return value


def _float(environ: Mapping[str, str], key: str, default: float) -> float:
    raw = environ.get(key, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{key} must be a number of seconds, got {raw!r}") from None
    if value <= 0:
        raise SettingsError(f"{key} must be positive, got {raw!r}")
    return value
