"""The API's JSON parser, bounded: a body over API_MAX_BODY_BYTES or nested deeper than
API_MAX_JSON_DEPTH is refused `invalid_input` before it is parsed (a 5,000-deep body would
otherwise exhaust the parser's recursion, and any size would be read)."""

import json

from django.conf import settings
from django.utils.translation import gettext as _
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

_OPENERS = frozenset(b"[{")
_CLOSERS = frozenset(b"]}")
_QUOTE, _BACKSLASH = ord('"'), ord("\\")


def json_depth_exceeds(body: bytes, limit: int) -> bool:
    """Whether `body` nests arrays and objects more than `limit` deep (strings are skipped, so
    brackets inside them do not count). One pass, no parsing."""
    depth = 0
    in_string = escaped = False
    for byte in body:
        if in_string:
            if escaped:
                escaped = False
            elif byte == _BACKSLASH:
                escaped = True
            elif byte == _QUOTE:
                in_string = False
        elif byte == _QUOTE:
            in_string = True
        elif byte in _OPENERS:
            depth += 1
            if depth > limit:
                return True
        elif byte in _CLOSERS:
            depth -= 1
    return False


class BodyTooLarge(ParseError):
    default_code = "body_too_large"


class BoundedJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.API_MAX_BODY_BYTES
        body = stream.read(limit + 1) if stream is not None else b""
        if len(body) > limit:
            raise BodyTooLarge(_("The request body is larger than %(limit)s KB.") % {"limit": limit // 1024})
        if json_depth_exceeds(body, settings.API_MAX_JSON_DEPTH):
            raise ParseError(_("The request body nests too deeply."))
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            return json.loads(body.decode(encoding), parse_constant=_refuse_constant)
        except (ValueError, UnicodeDecodeError, RecursionError) as error:
            raise ParseError(_("The request body is not valid JSON.")) from error


def _refuse_constant(name: str):
    # NaN and Infinity are not JSON.
    raise ValueError(f"{name} is not JSON")
