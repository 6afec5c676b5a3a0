"""A text stream that says it is a terminal, for output that differs on a TTY."""

from __future__ import annotations

import io
import re

_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True

    def shown(self) -> str:
        """What a person would read: the text without terminal escape sequences."""
        return visible(self.getvalue())


def visible(text: str) -> str:
    """`text` without terminal escape sequences."""
    return _ESCAPES.sub("", text)
