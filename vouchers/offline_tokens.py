"""The voucher QR token a scanner can verify offline (DESIGN.md §6.5): Ed25519-signed, compact.

Pure: it imports the `cryptography` package and nothing of Django or the project, so a scanner
(or a test without the database) verifies a card with nothing but the public keys of
`GET /api/v1/scanner/keys/`.

The token is 120 characters of RFC 4648 base32 (A–Z, 2–7, no padding), which a QR code holds in
its compact alphanumeric mode. It encodes 75 bytes:

    offset  size  field
    0       1     key id (1–255): which signing key; several may be valid at once (rotation)
    1       6     voucher id, big-endian
    7       2     token version, big-endian (a reissued card has a higher one)
    9       2     month: (year − 2000) × 12 + (month − 1), big-endian
    11      64    Ed25519 signature of DOMAIN + bytes 0–10

It identifies the voucher, its version and its month, never the person. The month lets an
offline scanner refuse an expired or not-yet-valid card; the revocation list (GET
/api/v1/scanner/revocations/) tells it which versions were replaced since.
"""

import base64
import binascii
import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

DOMAIN = b"homecare-voucher-token-v1"  # a signature made for anything else never verifies here
PAYLOAD_BYTES = 11
SIGNATURE_BYTES = 64
TOKEN_LENGTH = 120  # base32 of 75 bytes, exactly: no padding
TOKEN_PATTERN = re.compile(r"^[A-Z2-7]{120}$")
EPOCH_YEAR = 2000
MAX_VOUCHER_ID = 2**48 - 1
MAX_VERSION = 2**16 - 1


@dataclass(frozen=True)
class TokenPayload:
    key_id: int
    voucher_id: int
    version: int
    period: dt.date  # the first day of the voucher's month


def _month_number(period: dt.date) -> int:
    return (period.year - EPOCH_YEAR) * 12 + period.month - 1


def _period(number: int) -> dt.date:
    year, month = divmod(number, 12)
    return dt.date(EPOCH_YEAR + year, month + 1, 1)


def _payload_bytes(payload: TokenPayload) -> bytes:
    if not 1 <= payload.key_id <= 255:
        raise ValueError("key_id must be 1–255")
    if not 1 <= payload.voucher_id <= MAX_VOUCHER_ID:
        raise ValueError("voucher_id out of range")
    if not 1 <= payload.version <= MAX_VERSION:
        raise ValueError("version out of range")
    if payload.period.year < EPOCH_YEAR:
        raise ValueError("period before 2000")
    return (
        payload.key_id.to_bytes(1, "big")
        + payload.voucher_id.to_bytes(6, "big")
        + payload.version.to_bytes(2, "big")
        + _month_number(payload.period).to_bytes(2, "big")
    )


def sign(payload: TokenPayload, private_key: Ed25519PrivateKey) -> str:
    """The token for `payload`, signed with `private_key` (whose id is `payload.key_id`)."""
    data = _payload_bytes(payload)
    signature = private_key.sign(DOMAIN + data)
    return base64.b32encode(data + signature).decode("ascii")


def read_unverified(token: str) -> TokenPayload | None:
    """What a well-formed token claims, before any signature check (None if malformed)."""
    if not isinstance(token, str) or not TOKEN_PATTERN.match(token):
        return None
    try:
        raw = base64.b32decode(token)
    except (binascii.Error, ValueError):
        return None
    key_id = raw[0]
    voucher_id = int.from_bytes(raw[1:7], "big")
    version = int.from_bytes(raw[7:9], "big")
    month = int.from_bytes(raw[9:11], "big")
    if not key_id or not voucher_id or not version:
        return None
    try:
        period = _period(month)
    except ValueError:
        return None
    return TokenPayload(key_id=key_id, voucher_id=voucher_id, version=version, period=period)


def verify(token: str, public_keys: Mapping[int, Ed25519PublicKey]) -> TokenPayload | None:
    """The payload of a genuine token signed by one of `public_keys` (key id → key), else None:
    malformed, altered, or signed by a key that is not (or no longer) trusted."""
    payload = read_unverified(token)
    if payload is None:
        return None
    key = public_keys.get(payload.key_id)
    if key is None:
        return None
    raw = base64.b32decode(token)
    try:
        key.verify(raw[PAYLOAD_BYTES:], DOMAIN + raw[:PAYLOAD_BYTES])
    except InvalidSignature:
        return None
    return payload


def public_key_from_text(text: str) -> Ed25519PublicKey:
    """A public key from its raw 32 bytes in base64 or base64url (what the keys API gives)."""
    raw = _b64decode(text)
    if len(raw) != 32:
        raise ValueError("an Ed25519 public key is 32 bytes")
    return Ed25519PublicKey.from_public_bytes(raw)


def private_key_from_text(text: str) -> Ed25519PrivateKey:
    """A private key from PEM (PKCS #8) or from its raw 32 bytes in base64 / base64url."""
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    text = text.strip()
    if text.startswith("-----BEGIN"):
        key = load_pem_private_key(text.encode(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError("the PEM key is not an Ed25519 key")
        return key
    raw = _b64decode(text)
    if len(raw) != 32:
        raise ValueError("an Ed25519 private key is 32 bytes")
    return Ed25519PrivateKey.from_private_bytes(raw)


def public_key_text(key: Ed25519PublicKey) -> str:
    """The raw 32 bytes of a public key, base64url without padding (what the keys API gives)."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    raw = key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def private_key_pem(key: Ed25519PrivateKey) -> str:
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

    return key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode("ascii")


def _b64decode(text: str) -> bytes:
    text = "".join(text.split())
    padded = text + "=" * (-len(text) % 4)
    try:
        return base64.urlsafe_b64decode(padded.replace("+", "-").replace("/", "_"))
    except (binascii.Error, ValueError) as error:
        raise ValueError("not base64") from error
