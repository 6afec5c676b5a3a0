import time

import pytest
import stripe

from subledger.stripe.signature import SignatureError, parse_header, sign, verify
from tests.samples import SECRET, scenario_bodies, signature_header

BODY = scenario_bodies()[0]
NOW = 1_800_000_000
SECRETS = [("fp-one", SECRET)]


def test_signatures_match_stripe_pythons_scheme() -> None:
    assert sign(BODY, SECRET, NOW) == stripe.WebhookSignature._compute_signature(
        f"{NOW}.{BODY.decode()}", SECRET
    )
    header = signature_header(BODY, timestamp=int(time.time()))
    assert stripe.WebhookSignature.verify_header(BODY, header, SECRET, tolerance=300)


def test_accepts_a_valid_signature_and_names_the_secret() -> None:
    header = signature_header(BODY, timestamp=NOW)
    assert verify(BODY, header, SECRETS, tolerance_s=300, now_s=NOW + 10) == "fp-one"


def test_any_v1_may_match_during_a_secret_roll() -> None:
    header = signature_header(BODY, "whsec_old_secret_xyz", SECRET, timestamp=NOW)
    assert verify(BODY, header, SECRETS, tolerance_s=300, now_s=NOW) == "fp-one"


def test_every_configured_secret_is_tried() -> None:
    header = signature_header(BODY, "whsec_second_secret", timestamp=NOW)
    secrets = [("a", SECRET), ("b", "whsec_second_secret")]
    assert verify(BODY, header, secrets, tolerance_s=300, now_s=NOW) == "b"


@pytest.mark.parametrize(
    "header",
    [None, "", "t=123", f"v1={'0' * 64}", "t=abc,v1=00", f"t={NOW},v0={'0' * 64}"],
)
def test_missing_or_malformed_headers(header: str | None) -> None:
    with pytest.raises(SignatureError) as error:
        verify(BODY, header, SECRETS, tolerance_s=300, now_s=NOW)
    assert error.value.reason == "malformed"


def test_v0_signatures_are_ignored_even_when_correct() -> None:
    header = f"t={NOW},v0={sign(BODY, SECRET, NOW)}"
    with pytest.raises(SignatureError, match="no v1"):
        verify(BODY, header, SECRETS, tolerance_s=300, now_s=NOW)


def test_a_reserialised_body_does_not_verify() -> None:
    import json

    header = signature_header(BODY, timestamp=NOW)
    reserialised = json.dumps(json.loads(BODY)).encode()
    with pytest.raises(SignatureError) as error:
        verify(reserialised, header, SECRETS, tolerance_s=300, now_s=NOW)
    assert error.value.reason == "mismatch"


def test_stale_timestamps_are_refused() -> None:
    header = signature_header(BODY, timestamp=NOW)
    with pytest.raises(SignatureError) as error:
        verify(BODY, header, SECRETS, tolerance_s=300, now_s=NOW + 301)
    assert error.value.reason == "too_old"


def test_parse_header_collects_all_v1() -> None:
    parsed = parse_header("t=5,v1=AA,v0=bb,v1=cc,junk")
    assert parsed.timestamp == 5
    assert parsed.signatures == (b"aa", b"cc")
