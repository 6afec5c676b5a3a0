"""Console sessions (SPEC 13): a signed, expiring cookie naming the app and the fingerprint
of its secret key, and one-time sign-in links issued by `subledger console-link`.

The cookie never holds a key: it holds the app id, a prefix of the secret key's hash (a key
rotation ends every session) and a random session id the CSRF token is derived from. It is
signed with a server key: derived from SUBLEDGER_SECRETS_KEY when set, otherwise a random
key generated once and kept in the store (`sl_console_keys`), so every process serving the
same store signs alike. One-time links are rows of `sl_console_links` keyed by the hash of
the token; using one is a single conditional UPDATE, atomic on both stores.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time

import msgspec

from projections.storage.db import ViewDb

SESSION_TTL_S = 8 * 3600
LINK_TTL_S = 600
COOKIE = "sl_console"
PRE_COOKIE = "sl_console_pre"  # the sign-in form's double-submit token (login CSRF)

_TABLES = [
    "CREATE TABLE IF NOT EXISTS sl_console_keys (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS sl_console_links (token_hash TEXT PRIMARY KEY, "
    "app_id TEXT NOT NULL, expires_ms BIGINT NOT NULL, used_ms BIGINT)",
]


class Session(msgspec.Struct, frozen=True, array_like=True):
    app_id: str
    key_fp: str  # a prefix of the app's secret-key hash when the session began
    expires_s: int
    sid: str  # random; the CSRF token of the session's forms is derived from it


_session = msgspec.json.Decoder(Session)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def key_fingerprint(secret_key_hash: str) -> str:
    return secret_key_hash[:16]


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Signer:
    """Signs and checks session cookies and CSRF tokens with the server key."""

    def __init__(self, server_key: bytes) -> None:
        self._key = server_key

    def _mac(self, purpose: str, data: str) -> str:
        return _b64(hmac.new(self._key, f"{purpose}\0{data}".encode(), hashlib.sha256).digest())

    def cookie(self, app_id: str, secret_key_hash: str, ttl_s: int = SESSION_TTL_S) -> str:
        session = Session(
            app_id=app_id,
            key_fp=key_fingerprint(secret_key_hash),
            expires_s=int(time.time()) + ttl_s,
            sid=secrets.token_urlsafe(16),
        )
        payload = _b64(msgspec.json.encode(session))
        return f"{payload}.{self._mac('session', payload)}"

    def session(self, cookie: str | None) -> Session | None:
        """The session of a cookie with a good signature that has not expired, or None."""
        payload, _, mac = (cookie or "").partition(".")
        if not mac or not hmac.compare_digest(mac, self._mac("session", payload)):
            return None
        try:
            session = _session.decode(_unb64(payload))
        except (ValueError, msgspec.DecodeError):
            return None
        return session if session.expires_s > time.time() else None

    def csrf(self, sid: str) -> str:
        return self._mac("csrf", sid)

    def csrf_ok(self, sid: str, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf(sid), token or "")


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class ConsoleStore:
    """The console's two operational tables (not projections: nothing derives them)."""

    def __init__(self, db: ViewDb) -> None:
        self.db = db
        db.execute_script(_TABLES)

    def server_key(self, secrets_key: str) -> bytes:
        if secrets_key:
            return hmac.new(secrets_key.encode(), b"subledger console sessions", "sha256").digest()
        with self.db.read() as cur:  # insert-if-absent, then read: every process agrees
            cur.execute(
                self.db.q(
                    "INSERT INTO sl_console_keys (name, value) VALUES (?, ?) "
                    "ON CONFLICT (name) DO NOTHING"
                ),
                ("session", secrets.token_hex(32)),
            )
            cur.execute(self.db.q("SELECT value FROM sl_console_keys WHERE name = ?"), ("session",))
            row = cur.fetchone()
        return bytes.fromhex(str(row[0]))

    def issue_link(self, app_id: str, ttl_s: int = LINK_TTL_S) -> str:
        """A new one-time token for `app_id`, valid for `ttl_s` seconds."""
        token = secrets.token_urlsafe(24)
        with self.db.read() as cur:
            cur.execute(
                self.db.q(
                    "INSERT INTO sl_console_links (token_hash, app_id, expires_ms) VALUES (?, ?, ?)"
                ),
                (_hash(token), app_id, now_ms() + ttl_s * 1000),
            )
        return token

    def use_link(self, token: str) -> str | None:
        """The app of an unused, unexpired token, marking it used (once: one statement)."""
        now = now_ms()
        with self.db.read() as cur:
            cur.execute(
                self.db.q(
                    "UPDATE sl_console_links SET used_ms = ? "
                    "WHERE token_hash = ? AND used_ms IS NULL AND expires_ms > ? RETURNING app_id"
                ),
                (now, _hash(token), now),
            )
            row = cur.fetchone()
        return None if row is None else str(row[0])
