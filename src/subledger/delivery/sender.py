"""One POST of an outbound event, as RevenueCat sends its webhooks (SPEC 10): JSON, the
configured Authorization header verbatim, success is HTTP 200 only, 60 s for the whole
exchange, redirects not followed."""

from __future__ import annotations

import asyncio
import time
from typing import NamedTuple

import httpx

USER_AGENT = "subledger-webhooks/1"
MAX_ANSWER_BYTES = 64 * 1024  # a receiver's answer is read (so the exchange completes), not kept


class Outcome(NamedTuple):
    status: int  # the HTTP status; 0 when there was no answer
    error: str  # why it is not a success ("" for 200)
    duration_ms: int


async def post(
    client: httpx.AsyncClient, url: str, authorization: str | None, body: bytes, timeout_s: float
) -> Outcome:
    headers = {"content-type": "application/json", "user-agent": USER_AGENT}
    if authorization is not None:
        headers["authorization"] = authorization
    started = time.monotonic()
    status = 0
    try:
        async with asyncio.timeout(timeout_s):
            async with client.stream("POST", url, content=body, headers=headers) as answer:
                status = answer.status_code
                read = 0
                async for chunk in answer.aiter_raw():
                    read += len(chunk)
                    if read > MAX_ANSWER_BYTES:
                        break
    except TimeoutError:
        return Outcome(0, f"no complete answer within {timeout_s:g} s", _since(started))
    except Exception as error:  # noqa: BLE001 - any failure to talk to the receiver is an outcome
        return Outcome(0, f"{type(error).__name__}: {error}"[:300], _since(started))
    why = "" if status == 200 else f"HTTP {status} (only 200 is a success)"
    return Outcome(status, why, _since(started))


def _since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
