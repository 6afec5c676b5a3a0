"""Bounded reads of Stripe's API through stripe-python (SPEC 6).

Every answer — success or error — comes back as an `Answer` to be recorded as a fact before
anything uses it. Retries are ours, not stripe-python's: its own back-off honours a
`Retry-After` of up to a minute, and a receipt must be answered within a few seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import msgspec
import stripe

RETRYABLE = (409, 429, 500, 502, 503, 504)


class Answer(msgspec.Struct, frozen=True):
    request: str
    status: int  # 0 when Stripe could not be reached in time
    body: bytes
    error: str = ""  # Stripe's error code (resource_missing, ...) or timeout/connection


class StripeApi:
    def __init__(
        self,
        api_key: str,
        *,
        api_base: str = "",
        timeout_s: float = 3.0,
        budget_s: float = 6.0,
        retries: int = 2,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        bases: dict[str, str] = {"api": api_base} if api_base else {}
        self.client = stripe.StripeClient(
            api_key,
            base_addresses=bases,  # type: ignore[arg-type]
            max_network_retries=0,
            http_client=stripe.RequestsClient(timeout=timeout_s),
        )
        self.budget_s = budget_s
        self.retries = retries
        self.sleep = sleep

    def get(self, path: str, **params: Any) -> Answer:
        """GET with up to `retries` more tries on 429/5xx/network errors, within the budget."""
        query = "&".join(f"{k}={v}" for k, v in _flatten(params))
        request = f"GET {path}" + (f"?{query}" if query else "")
        deadline = time.monotonic() + self.budget_s
        delay = 0.25
        answer = Answer(request=request, status=0, body=b"", error="not attempted")
        for attempt in range(self.retries + 1):
            answer, retry_after = self._once(request, path, params)
            retryable = answer.status in RETRYABLE or answer.status == 0
            if not retryable or attempt == self.retries:
                return answer
            wait = retry_after if retry_after is not None else delay
            if time.monotonic() + wait >= deadline:
                return answer
            self.sleep(wait)
            delay *= 2
        return answer

    def _once(self, request: str, path: str, params: dict[str, Any]) -> tuple[Answer, float | None]:
        try:
            response = self.client.raw_request("get", path, **params)
        except stripe.APIConnectionError as error:
            reason = "timeout" if "timed out" in str(error).lower() else "connection"
            return Answer(request=request, status=0, body=b"", error=reason), None
        except stripe.StripeError as error:
            body = error.http_body or ""
            code = _error_code(error)
            retry_after = _retry_after(error.headers)
            raw = body.encode() if isinstance(body, str) else bytes(body)
            return Answer(
                request=request, status=error.http_status or 0, body=raw, error=code
            ), retry_after
        return Answer(request=request, status=response.code, body=response.body.encode()), None


def _error_code(error: stripe.StripeError) -> str:
    """Stripe's own error code from the body (stripe-python drops it for some statuses)."""
    body: Any = error.json_body or {}
    details = body.get("error") if isinstance(body, dict) else None
    if isinstance(details, dict) and (details.get("code") or details.get("type")):
        return str(details.get("code") or details.get("type"))
    return error.code or type(error).__name__


def _flatten(params: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """Stripe's form encoding, for the request line we record (`payment[type]=…`)."""
    pairs: list[tuple[str, str]] = []
    for key, value in sorted(params.items()):
        name = f"{prefix}[{key}]" if prefix else key
        if isinstance(value, dict):
            pairs += _flatten(value, name)
        elif isinstance(value, list):
            pairs += [(f"{name}[{i}]", str(v)) for i, v in enumerate(value)]
        else:
            pairs.append((name, str(value)))
    return pairs


def _retry_after(headers: Any) -> float | None:
    if not headers:
        return None
    value = headers.get("retry-after") or headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None
