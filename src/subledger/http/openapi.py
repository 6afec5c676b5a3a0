"""The served OpenAPI document: what litestar derives from the handlers, plus what it cannot
express (a Stripe event as a request body read as raw bytes, the limits of storable JSON,
a field with a default that the handler still requires, `Retry-After` on 503s)."""

from __future__ import annotations

import copy
import json
from collections import defaultdict
from typing import Any

from litestar import Request
from litestar.openapi.config import OpenAPIConfig
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme

from subledger.codes import CODES, Code
from subledger.http.answers import CustomerInfo, ErrorBody
from subledger.storable import INT64_MAX, INT64_MIN, MAX_DEPTH
from subledger.stripe.payloads import SUPPORTED_EVENT_TYPES

BEARER: list[dict[str, list[str]]] = [{"apiKey": []}]
NO_NUL = {"type": "string", "pattern": "^[^\\u0000]*$"}
JSON_REF = {"$ref": "#/components/schemas/StorableJson"}
STORABLE_JSON = {
    "description": (
        "Any JSON value subledger can store: UTF-8, no NUL in a string or key, integers "
        f"within signed 64 bits, no value inside more than {MAX_DEPTH} objects or arrays."
    ),
    "anyOf": [
        {"type": "null"},
        {"type": "boolean"},
        {"type": "integer", "minimum": INT64_MIN, "maximum": INT64_MAX},
        {"type": "number", "not": {"type": "integer"}},
        NO_NUL,
        {"type": "array", "items": JSON_REF},
        {"type": "object", "propertyNames": NO_NUL, "additionalProperties": JSON_REF},
    ],
}
STRIPE_EVENT = {
    "description": "A Stripe event, signed in `Stripe-Signature` over these exact bytes.",
    "type": "object",
    "required": ["id", "object", "type", "created", "data"],
    "properties": {
        "id": {"type": "string", "pattern": "^evt_[^\\u0000]*$"},
        "object": {"const": "event"},
        "type": {"enum": list(SUPPORTED_EVENT_TYPES)},
        "created": {"type": "integer", "minimum": INT64_MIN, "maximum": INT64_MAX},
        "livemode": {"type": "boolean"},
        "api_version": {"anyOf": [NO_NUL, {"type": "null"}]},
        "data": {
            "type": "object",
            "required": ["object"],
            "properties": {
                "object": {
                    "type": "object",
                    "properties": {"object": NO_NUL, "id": {"anyOf": [NO_NUL, {"type": "null"}]}},
                    "propertyNames": NO_NUL,
                    "additionalProperties": JSON_REF,
                }
            },
            "propertyNames": NO_NUL,
            "additionalProperties": JSON_REF,
        },
    },
    "propertyNames": NO_NUL,
    "additionalProperties": JSON_REF,
}
CUSTOMER_INFO = ResponseSpec(
    data_container=CustomerInfo,
    description="the customer document (subscriber_attributes only for the secret key)",
    generate_examples=False,
)
WEBHOOK_PATH = "/v1/incoming-webhooks/stripe/{app_id}"
# Fields with a default the handler still refuses to do without (7220 for a missing id).
REQUIRED_ANYWAY = {
    "ReceiptBody": ["app_user_id"],
    "IdentifyBody": ["app_user_id", "new_app_user_id"],
}
# Request bodies: unknown fields are ignored, if the body can be stored at all.
REQUEST_BODIES = ("ReceiptBody", "IdentifyBody", "AttributesBody", "AttributeValue")


def errors(*codes: Code) -> dict[int, ResponseSpec]:
    """The error responses of an operation, one per status, naming each of its codes."""
    by_status: dict[int, list[Code]] = defaultdict(list)
    for code in (*codes, Code.STORE_UNAVAILABLE):
        by_status[CODES[code][0]].append(code)
    return {
        status: ResponseSpec(
            data_container=ErrorBody,
            description="; ".join(f"{int(c)}: {CODES[c][1]}" for c in sorted(found)),
            generate_examples=False,
        )
        for status, found in by_status.items()
    }


# What every post that records a customer fact may answer besides its own refusals.
WRITE_ERRORS = (
    Code.INVALID_API_KEY,
    Code.MALFORMED_BODY,
    Code.EMPTY_APP_USER_ID,
    Code.INVALID_APP_USER_ID,
    Code.INVALID_ATTRIBUTES,
    Code.BODY_TOO_LARGE,
    Code.PROJECTION_LAGGING,
)


def customer_info_or(*codes: Code) -> dict[int, ResponseSpec]:
    """The responses of a route answering the customer document, or one of `codes`."""
    return {200: CUSTOMER_INFO, **errors(*codes)}


def complete(document: dict[str, Any]) -> dict[str, Any]:
    """`document` (litestar's, as a dict) with what litestar cannot derive."""
    done = copy.deepcopy(document)
    schemas = done.setdefault("components", {}).setdefault("schemas", {})
    schemas["StorableJson"] = STORABLE_JSON
    for name, fields in REQUIRED_ANYWAY.items():
        schemas[name]["required"] = sorted({*schemas[name].get("required", []), *fields})
    for name in REQUEST_BODIES:
        _storable_unknown_fields(schemas[name])
    webhook = done["paths"][WEBHOOK_PATH]["post"]
    webhook["requestBody"] = {
        "required": True,
        "content": {"application/json": {"schema": STRIPE_EVENT}},
    }
    _drop_unreferenced(schemas, done)
    for item in done["paths"].values():
        for operation in item.values():
            answer = operation.get("responses", {}).get("503")
            if isinstance(answer, dict):
                answer["headers"] = {"Retry-After": {"schema": {"type": "string"}}}
    return done


def _storable_unknown_fields(node: Any) -> None:
    """Every object schema with named fields, here or nested, also takes other fields,
    of any storable JSON (the decoders skip them; the boundary check refuses the rest)."""
    if isinstance(node, list):
        for item in node:
            _storable_unknown_fields(item)
    if not isinstance(node, dict):
        return
    if "properties" in node and "additionalProperties" not in node:
        node["additionalProperties"] = JSON_REF
        node["propertyNames"] = NO_NUL
    for value in node.values():
        _storable_unknown_fields(value)


def _drop_unreferenced(schemas: dict[str, Any], document: dict[str, Any]) -> None:
    """Components no operation reaches: the `Raw`-holding answers whose documented
    shape replaced them."""
    text = json.dumps(document["paths"])
    reached = {name for name in schemas if f'/schemas/{name}"' in text}
    while True:
        found = json.dumps([schemas[name] for name in reached])
        more = {name for name in schemas if f'/schemas/{name}"' in found} - reached
        if not more:
            break
        reached |= more
    for name in set(schemas) - reached:
        del schemas[name]


class CompletedJsonPlugin(JsonRenderPlugin):
    """Serves `complete(litestar's document)` at /schema/openapi.json (built once)."""

    def __init__(self) -> None:
        super().__init__(path="/openapi.json")
        self._rendered: bytes | None = None

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        if self._rendered is None:
            self._rendered = self.render_json(request, complete(openapi_schema))
        return self._rendered


def openapi_config() -> OpenAPIConfig:
    return OpenAPIConfig(
        title="subledger",
        version="0.1.0",
        path="/schema",
        components=Components(
            security_schemes={
                "apiKey": SecurityScheme(
                    type="http",
                    scheme="bearer",
                    description="the app's public key, or its secret key (slsk_…)",
                )
            }
        ),
        render_plugins=[CompletedJsonPlugin()],
    )
