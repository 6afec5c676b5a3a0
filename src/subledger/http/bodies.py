"""Request bodies: msgspec structs that litestar decodes, after the one boundary check.

Each field's JSON Schema comes from the rule that enforces it (identity, attributes,
storable), so the OpenAPI document and the handlers cannot drift apart. The rules that have
their own error codes (7220, 7256, 7103, 7263) are documented here, not enforced by msgspec:
the handlers keep answering with those codes.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request

from subledger.attributes import attributes_schema
from subledger.codes import Code
from subledger.facts import AttributeValue
from subledger.http.errors import ApiError
from subledger.identity import PURCHASE_TOKEN, app_user_id_pattern
from subledger.storable import UnstorableJsonError, check_storable_json

NO_NUL = "^[^\\u0000]*$"


def documented(description: str, **schema: Any) -> msgspec.Meta:
    """A field's description and JSON Schema keywords for the OpenAPI document only."""
    return msgspec.Meta(extra_json_schema={"description": description, "extra": schema})


_APP_USER_ID = (
    "1-100 characters, no '/' or NUL, not a placeholder such as 'null'; "
    "7220 when empty or missing, 7256 when invalid"
)


class ReceiptBody(msgspec.Struct, frozen=True):
    """A Stripe purchase token posted for an App User ID (SPEC 4); unknown fields ignored."""

    fetch_token: Annotated[
        str,
        documented(
            "a Stripe subscription (sub_…) or Checkout Session (cs_…) id; else 7103",
            pattern=PURCHASE_TOKEN,
        ),
    ]
    app_user_id: Annotated[
        str,
        documented(_APP_USER_ID, pattern=app_user_id_pattern()),
    ] = ""
    attributes: Annotated[
        dict[str, AttributeValue] | None,
        documented(
            "optional attributes; any invalid one refuses the post (7263)", **attributes_schema()
        ),
    ] = None
    presented_offering_identifier: Annotated[
        str | None, documented("the offering the purchase was made from", pattern=NO_NUL)
    ] = None


class IdentifyBody(msgspec.Struct, frozen=True):
    """RevenueCat's logIn/identifyUser (SPEC 5): the current id is now the new one."""

    app_user_id: Annotated[
        str, documented("the current App User ID; " + _APP_USER_ID, pattern=app_user_id_pattern())
    ] = ""
    new_app_user_id: Annotated[
        str,
        documented(
            "the App User ID to identify as; " + _APP_USER_ID, pattern=app_user_id_pattern()
        ),
    ] = ""


class AttributesBody(msgspec.Struct, frozen=True):
    """Customer attributes (SPEC 5): invalid keys are listed (7263), the valid ones kept."""

    attributes: Annotated[
        dict[str, AttributeValue],
        documented('key → value; null or "" deletes', **attributes_schema()),
    ]


class StorableJsonRequest(Request[Any, Any, Any]):
    """Litestar's request, whose JSON body first passes subledger's boundary check: what
    the fold and the stores cannot hold is refused with 7226 before anything is decoded."""

    async def json(self) -> Any:
        body = await self.body()
        try:
            check_storable_json(body)
        except UnstorableJsonError as error:
            raise ApiError(Code.MALFORMED_BODY, f"malformed request body: {error}") from None
        return await super().json()
