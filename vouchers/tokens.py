"""Voucher QR tokens: the signing keys of this installation, and the two token formats.

The current format (`offline_tokens`) is Ed25519-signed: 120 base32 characters identifying the
voucher, its version and its month, which a scanner verifies offline with the public keys of
GET /api/v1/scanner/keys/. Bumping the voucher's token version (a reissued card) revokes every
code printed before.

The earlier format, `<voucher id in base 36>.<version>.<HMAC>`, keyed from SECRET_KEY, is still
accepted online for vouchers of the months up to VOUCHER_LEGACY_CODES_UNTIL, so the cards printed
before the switch keep working until their month ends; it is no longer made, and a scanner cannot
check it offline.

Keys come from the environment (settings `VOUCHER_SIGNING_KEY*`, `VOUCHER_PREVIOUS_KEYS`), never
from the repository.
"""

import base64
import datetime as dt
import functools
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.urls import reverse
from django.utils import timezone
from django.utils.crypto import constant_time_compare, salted_hmac

from vouchers import offline_tokens

SALT = "vouchers.qr-token.v1"
MAC_BYTES = 15
_LEGACY_TOKEN = re.compile(r"^([0-9a-z]{1,13})\.([0-9]{1,6})\.([A-Za-z0-9_-]{20})$")
_URL_PATH = re.compile(r"/v/([^/?#\s]+)/?(?:[?#].*)?$")
ALGORITHM = "Ed25519"


@dataclass(frozen=True)
class ParsedToken:
    voucher_id: int
    version: int
    # The month the token was made for and the key that signed it (None: the earlier format).
    period: dt.date | None = None
    key_id: int | None = None


# --- Keys ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VerificationKey:
    key_id: int
    public_key: Ed25519PublicKey
    current: bool
    valid_until: dt.date | None  # the last day a previous key's cards are accepted (None: open)

    @property
    def public_key_text(self) -> str:
        return offline_tokens.public_key_text(self.public_key)


@dataclass(frozen=True)
class Keys:
    signing_key: Ed25519PrivateKey
    key_id: int
    verification: tuple[VerificationKey, ...]


def _development_key() -> Ed25519PrivateKey:
    """DEBUG only, when no key is set: `make run`'s generated file, or a key derived from the
    (development) SECRET_KEY, so that a demo's printed cards survive a restart."""
    generated = Path(settings.BASE_DIR) / "var" / "voucher-signing.key"
    if generated.exists():
        return offline_tokens.private_key_from_text(generated.read_text())
    seed = hashlib.sha256(b"voucher-signing-key-for-development:" + settings.SECRET_KEY.encode()).digest()
    return Ed25519PrivateKey.from_private_bytes(seed)


def _signing_key() -> Ed25519PrivateKey:
    text, path = settings.VOUCHER_SIGNING_KEY, settings.VOUCHER_SIGNING_KEY_FILE
    if text and path:
        raise ImproperlyConfigured("Set VOUCHER_SIGNING_KEY or VOUCHER_SIGNING_KEY_FILE, not both.")
    if path:
        try:
            text = Path(path).read_text()
        except OSError as error:
            raise ImproperlyConfigured(f"VOUCHER_SIGNING_KEY_FILE cannot be read: {error}") from None
    if not text:
        if not settings.DEBUG:
            raise ImproperlyConfigured(
                "VOUCHER_SIGNING_KEY or VOUCHER_SIGNING_KEY_FILE must be set unless DEBUG=1 "
                "(make one with `openssl genpkey -algorithm ed25519` or manage.py voucher_signing_key)."
            )
        return _development_key()
    try:
        return offline_tokens.private_key_from_text(text)
    except ValueError as error:
        raise ImproperlyConfigured(f"VOUCHER_SIGNING_KEY is not an Ed25519 key: {error}") from None


def _previous_keys(entries, current_id: int) -> list[VerificationKey]:
    keys = []
    for entry in entries:
        parts = entry.strip().split(":")
        try:
            if len(parts) not in (2, 3):
                raise ValueError("expected KEY_ID:PUBLIC_KEY[:LAST_DAY]")
            key_id = int(parts[0])
            if not 1 <= key_id <= 255 or key_id == current_id:
                raise ValueError("the key id must be 1–255 and not the current key's")
            public_key = offline_tokens.public_key_from_text(parts[1])
            until = dt.date.fromisoformat(parts[2]) if len(parts) == 3 and parts[2] else None
        except ValueError as error:
            raise ImproperlyConfigured(f"VOUCHER_PREVIOUS_KEYS entry {entry!r}: {error}") from None
        keys.append(VerificationKey(key_id=key_id, public_key=public_key, current=False, valid_until=until))
    if len({key.key_id for key in keys}) != len(keys):
        raise ImproperlyConfigured("VOUCHER_PREVIOUS_KEYS names a key id twice.")
    return keys


@functools.cache
def keys() -> Keys:
    """The installation's signing key and every key whose cards are still accepted (cached)."""
    key_id = settings.VOUCHER_SIGNING_KEY_ID
    if not 1 <= key_id <= 255:
        raise ImproperlyConfigured("VOUCHER_SIGNING_KEY_ID must be 1–255.")
    signing_key = _signing_key()
    current = VerificationKey(
        key_id=key_id, public_key=signing_key.public_key(), current=True, valid_until=None
    )
    previous = _previous_keys(settings.VOUCHER_PREVIOUS_KEYS, key_id)
    return Keys(signing_key=signing_key, key_id=key_id, verification=(current, *previous))


@receiver(setting_changed)
def _forget_keys(*, setting, **_kwargs):
    if setting.startswith("VOUCHER_") or setting in ("SECRET_KEY", "DEBUG"):
        keys.cache_clear()


def verification_keys(today: dt.date | None = None) -> list[VerificationKey]:
    """The keys whose cards are accepted today: the current one and previous ones until their day."""
    today = today or timezone.localdate()
    return [key for key in keys().verification if key.valid_until is None or today <= key.valid_until]


# --- Tokens ----------------------------------------------------------------------------------------


def make_token(*, voucher_id: int, version: int, period: dt.date) -> str:
    """The current format, signed with the current key."""
    current = keys()
    payload = offline_tokens.TokenPayload(
        key_id=current.key_id, voucher_id=voucher_id, version=version, period=period
    )
    return offline_tokens.sign(payload, current.signing_key)


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


def make_legacy_token(*, voucher_id: int, version: int) -> str:
    """The earlier HMAC format: no longer printed; kept to test that old cards still work."""
    payload = f"{_base36(voucher_id)}.{version}"
    return f"{payload}.{_mac(payload)}"


def extract_token(scanned: str) -> str:
    """What a scanner read (the senior-page URL or the bare token) -> the bare token."""
    text = (scanned or "").strip()
    match = _URL_PATH.search(text)
    return match.group(1) if match else text


def _parse_legacy(token: str) -> ParsedToken | None:
    match = _LEGACY_TOKEN.match(token)
    if not match:
        return None
    id_text, version_text, mac = match.groups()
    if not constant_time_compare(_mac(f"{id_text}.{version_text}"), mac):
        return None
    return ParsedToken(voucher_id=int(id_text, 36), version=int(version_text))


def parse_token(scanned: str) -> ParsedToken | None:
    """The voucher id and version of a genuine token, or None for anything forged, altered,
    malformed or signed by a key no longer trusted."""
    token = extract_token(scanned)
    if len(token) != offline_tokens.TOKEN_LENGTH:
        return _parse_legacy(token)
    trusted = {key.key_id: key.public_key for key in verification_keys()}
    payload = offline_tokens.verify(token, trusted)
    if payload is None:
        return None
    return ParsedToken(
        voucher_id=payload.voucher_id, version=payload.version, period=payload.period, key_id=payload.key_id
    )


def legacy_code_accepted(period: dt.date) -> bool:
    """Whether a voucher of `period` still accepts the earlier HMAC format: only the months up to
    VOUCHER_LEGACY_CODES_UNTIL (YYYY-MM; cards printed before the switch), so SECRET_KEY alone
    can never make a code for a later voucher."""
    until = settings.VOUCHER_LEGACY_CODES_UNTIL
    if not until:
        return False
    try:
        last = dt.date.fromisoformat(f"{until}-01")
    except ValueError:
        raise ImproperlyConfigured("VOUCHER_LEGACY_CODES_UNTIL is a month, YYYY-MM.") from None
    return period <= last


def voucher_token(voucher) -> str:
    return make_token(voucher_id=voucher.pk, version=voucher.token_version, period=voucher.period)


def voucher_url(voucher) -> str:
    """The absolute URL of the senior's page, which the QR code encodes."""
    path = reverse("senior-voucher", kwargs={"token": voucher_token(voucher)})
    return settings.PUBLIC_BASE_URL.rstrip("/") + path
