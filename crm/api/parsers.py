"""The API's JSON parser: DRF's, with a depth limit. Python's decoder recurses once per level,
so a body of a few thousand `[` would end in RecursionError (a 500) instead of a 400."""

from django.utils.translation import gettext as _
from rest_framework import parsers
from rest_framework.exceptions import ParseError

MAX_DEPTH = 64


def nesting_depth(text: str) -> int:
    """The deepest nesting of arrays and objects in a JSON text (outside strings)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > MAX_DEPTH:
                    break
        elif char in "]}":
            depth -= 1
    return deepest


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        raw = stream.read() if stream is not None else b""
        try:
            text = raw.decode((parser_context or {}).get("encoding") or "utf-8")
        except UnicodeDecodeError as exc:
            raise ParseError(_("The body is not valid UTF-8.")) from exc
        if nesting_depth(text) > MAX_DEPTH:
            raise ParseError(_("JSON nested deeper than %(limit)s levels.") % {"limit": MAX_DEPTH})
        return super().parse(_Stream(raw), media_type, parser_context)


class _Stream:
    """The bytes already read, for DRF's parser to read again."""

    def __init__(self, raw: bytes):
        self.raw = raw

    def read(self, *args) -> bytes:
        raw, self.raw = self.raw, b""
        return raw
