"""What the boundary check (subledger.storable) costs a webhook: µs per body.

Usage: scripts/bench/storable [--repeat N]

Times `check_storable_json` next to what ingest did with every body before it (the HMAC of
`verify` and the envelope's typed decode) on the scenario's six Stripe notifications
(3.6 to 5.8 KB) and on one ~20 KB invoice (the scenario's invoice with its line repeated), and
on the same bodies with a `\\u0000` escape added (the exact walk). Best of REPEAT rounds of
2,000 calls each, so another process on the machine shows less.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import msgspec

from subledger.storable import check_storable_json
from subledger.stripe.payloads import EventEnvelope
from subledger.stripe.signature import sign
from tests.samples import SECRET, scenario_bodies

_envelope = msgspec.json.Decoder(EventEnvelope)


def best_us(call: Callable[[bytes], object], body: bytes, repeat: int, n: int = 2000) -> float:
    call(body)
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        for _ in range(n):
            call(body)
        best = min(best, (time.perf_counter() - started) / n)
    return best * 1e6


def twenty_kb() -> bytes:
    event = json.loads(scenario_bodies()[2])
    lines = event["data"]["object"]["lines"]["data"]
    while len(json.dumps(event, indent=2)) < 20_000:
        lines.append(dict(lines[0]))
    return json.dumps(event, indent=2).encode()


def with_nul(body: bytes) -> bytes:
    event = json.loads(body)
    event["data"]["object"]["metadata"] = {"note": "a\\u0000b"}  # text, not a NUL
    return json.dumps(event, indent=2).encode()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    bodies = [(f"scenario {i + 1}", b) for i, b in enumerate(scenario_bodies())]
    bodies.append(("invoice ~20 KB", twenty_kb()))
    print("| body | bytes | check µs | check µs (exact walk) | HMAC µs | envelope µs |")
    print("|---|---|---|---|---|---|")
    for name, body in bodies:
        suspect = with_nul(body)
        print(
            f"| {name} | {len(body):,} | {best_us(check_storable_json, body, args.repeat):.1f} "
            f"| {best_us(check_storable_json, suspect, args.repeat):.1f} "
            f"| {best_us(lambda b: sign(b, SECRET, 1), body, args.repeat):.1f} "
            f"| {best_us(_envelope.decode, body, args.repeat):.1f} |"
        )


if __name__ == "__main__":
    main()
