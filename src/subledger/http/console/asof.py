"""The customer document as of a timeline entry (SPEC 12), beside the entry before it, with
what changed marked line by line. Both documents come from the as-of read model (the
versions the fold recorded at each fact), as `GET /v1/subscribers/{id}?as_of=` reads them."""

from __future__ import annotations

import difflib
import json

import msgspec

from projections.reader import Reader


class DiffLine(msgspec.Struct, frozen=True):
    text: str
    status: str  # same | added | removed


class AsOfView(msgspec.Struct, frozen=True):
    position: int
    before: int  # the position compared with (0: the empty log)
    lines: list[DiffLine]
    exists: bool


def _document(reader: Reader, app_id: str, app_user_id: str, position: int) -> str | None:
    if not position:
        return None
    return reader.document_as_of(app_id, app_user_id, position=position, time_ms=None)


def _lines(raw: str | None) -> list[str]:
    if raw is None:
        return []
    return json.dumps(json.loads(raw), indent=2, sort_keys=True).splitlines()


def as_of_view(
    reader: Reader, app_id: str, app_user_id: str, before: int, position: int
) -> AsOfView:
    earlier = _document(reader, app_id, app_user_id, before)
    now = _document(reader, app_id, app_user_id, position)
    lines = [
        DiffLine(text=line[2:], status={"+": "added", "-": "removed"}.get(line[0], "same"))
        for line in difflib.ndiff(_lines(earlier), _lines(now))
        if not line.startswith("?")
    ]
    return AsOfView(position=position, before=before, lines=lines, exists=now is not None)
