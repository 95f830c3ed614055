"""Signed voucher QR tokens.

A token is `<voucher id in base 36>.<token version>.<MAC>`: no personal data in clear, short
enough for a low-density QR code that a phone reads off worn paper. The MAC is HMAC-SHA256 keyed
from SECRET_KEY (salted), truncated to 120 bits. Bumping the voucher's token version revokes every
code printed before.
"""

import base64
import re
from dataclasses import dataclass

from django.conf import settings
from django.urls import reverse
from django.utils.crypto import constant_time_compare, salted_hmac

SALT = "vouchers.qr-token.v1"
MAC_BYTES = 15
_TOKEN = re.compile(r"^([0-9a-z]{1,13})\.([0-9]{1,6})\.([A-Za-z0-9_-]{20})$")
_URL_PATH = re.compile(r"/v/([^/?#\s]+)/?(?:[?#].*)?$")


@dataclass(frozen=True)
class ParsedToken:
    voucher_id: int
    version: int


def _mac(payload: str) -> str:
    digest = salted_hmac(SALT, payload, algorithm="sha256").digest()[:MAC_BYTES]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        number, rest = divmod(number, 36)
        out = digits[rest] + out
        if number == 0:
            return out


def make_token(*, voucher_id: int, version: int) -> str:
    payload = f"{_base36(voucher_id)}.{version}"
    return f"{payload}.{_mac(payload)}"


def extract_token(scanned: str) -> str:
    """What a scanner read (the senior-page URL or the bare token) -> the bare token."""
    text = (scanned or "").strip()
    match = _URL_PATH.search(text)
    return match.group(1) if match else text


def parse_token(scanned: str) -> ParsedToken | None:
    """The voucher id and version of a genuine token, or None for anything forged or malformed."""
    token = extract_token(scanned)
    match = _TOKEN.match(token)
    if not match:
        return None
    id_text, version_text, mac = match.groups()
    if not constant_time_compare(_mac(f"{id_text}.{version_text}"), mac):
        return None
    return ParsedToken(voucher_id=int(id_text, 36), version=int(version_text))


def voucher_token(voucher) -> str:
    return make_token(voucher_id=voucher.pk, version=voucher.token_version)


def voucher_url(voucher) -> str:
    """The absolute URL of the senior's page, which the QR code encodes."""
    path = reverse("senior-voucher", kwargs={"token": voucher_token(voucher)})
    return settings.PUBLIC_BASE_URL.rstrip("/") + path
