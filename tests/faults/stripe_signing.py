"""Schemathesis hooks (SCHEMATHESIS_HOOKS=tests.faults.stripe_signing): sign every generated
webhook like Stripe does, over the exact bytes sent, for the app the run was given."""

from __future__ import annotations

import json
import os
from typing import Any

import schemathesis

from tests.samples import signature_header

WEBHOOK = "/v1/incoming-webhooks/stripe/{app_id}"


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    if case.path != WEBHOOK:
        return
    case.path_parameters = {**(case.path_parameters or {}), "app_id": os.environ["CONTRACT_APP_ID"]}
    raw = _raw(case.body)
    case.headers = {**(case.headers or {}), "Stripe-Signature": signature_header(raw)}
    kwargs["data"] = raw


def _raw(body: Any) -> bytes:
    if type(body).__name__ == "NotSet":
        return b""
    if isinstance(body, bytes):
        return body
    return json.dumps(body).encode()
