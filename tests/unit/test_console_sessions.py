"""Console session cookies and CSRF tokens (SPEC 13): signed, expiring, bound to a key."""

from __future__ import annotations

import base64
import json

from subledger.http.console.sessions import Signer, key_fingerprint

KEY_HASH = "ab" * 32


def test_a_cookie_names_its_app_and_key_fingerprint_and_never_the_key() -> None:
    cookie = Signer(b"k" * 32).cookie("app_1", KEY_HASH)
    session = Signer(b"k" * 32).session(cookie)
    assert session is not None
    assert (session.app_id, session.key_fp) == ("app_1", key_fingerprint(KEY_HASH))
    assert KEY_HASH not in cookie


def test_another_server_key_an_altered_payload_or_an_expired_cookie_is_no_session() -> None:
    signer = Signer(b"k" * 32)
    cookie = signer.cookie("app_1", KEY_HASH)
    assert Signer(b"x" * 32).session(cookie) is None
    payload, _, mac = cookie.partition(".")
    fields = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    fields[0] = "app_2"
    forged = base64.urlsafe_b64encode(json.dumps(fields).encode()).rstrip(b"=").decode()
    assert signer.session(f"{forged}.{mac}") is None
    assert signer.session(signer.cookie("app_1", KEY_HASH, ttl_s=-1)) is None
    assert signer.session("") is None
    assert signer.session("garbage.garbage") is None


def test_a_csrf_token_belongs_to_one_session() -> None:
    signer = Signer(b"k" * 32)
    assert signer.csrf_ok("sid-1", signer.csrf("sid-1"))
    assert not signer.csrf_ok("sid-2", signer.csrf("sid-1"))
    assert not signer.csrf_ok("sid-1", None)
    assert not Signer(b"x" * 32).csrf_ok("sid-1", signer.csrf("sid-1"))
