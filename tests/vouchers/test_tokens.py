"""Signed QR tokens (DESIGN.md §6.5): the Ed25519 format a scanner verifies offline, the earlier
HMAC format old cards still carry, key rotation, and the voucher_qr command."""

import datetime as dt

import pytest
import qrcode
import qrcode.constants
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.test import override_settings
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from vouchers import offline_tokens
from vouchers.tokens import extract_token, keys, make_legacy_token, make_token, parse_token, verification_keys

MONTH = dt.date(2026, 12, 1)
periods = st.dates(min_value=dt.date(2000, 1, 1), max_value=dt.date(2199, 12, 31)).map(
    lambda d: d.replace(day=1)
)


def key_text(key: Ed25519PrivateKey) -> str:
    return offline_tokens.private_key_pem(key)


@given(
    voucher_id=st.integers(min_value=1, max_value=2**48 - 1),
    version=st.integers(min_value=1, max_value=2**16 - 1),
    period=periods,
)
def test_a_genuine_token_round_trips(voucher_id, version, period):
    token = make_token(voucher_id=voucher_id, version=version, period=period)
    assert offline_tokens.TOKEN_PATTERN.match(token)  # QR alphanumeric characters only
    parsed = parse_token(token)
    assert (parsed.voucher_id, parsed.version, parsed.period) == (voucher_id, version, period)


@given(voucher_id=st.integers(min_value=1, max_value=10**9), position=st.integers(min_value=0, max_value=119))
def test_any_single_character_change_is_refused(voucher_id, position):
    token = make_token(voucher_id=voucher_id, version=1, period=MONTH)
    replacement = "B" if token[position] != "B" else "C"
    assert parse_token(token[:position] + replacement + token[position + 1 :]) is None


@pytest.mark.parametrize(
    "token",
    ["", "A" * 120, "a" * 120, "A" * 119, "A" * 121, "1" * 120, "AAAA====" * 15, "v/../", "\x00" * 120],
)
def test_malformed_tokens_are_refused(token):
    assert parse_token(token) is None


def test_a_token_verifies_offline_with_only_the_public_key():
    """What a scanner without network does: no database, no Django settings, one public key."""
    private = Ed25519PrivateKey.generate()
    payload = offline_tokens.TokenPayload(key_id=7, voucher_id=123_456_789, version=2, period=MONTH)
    token = offline_tokens.sign(payload, private)
    public = offline_tokens.public_key_from_text(offline_tokens.public_key_text(private.public_key()))

    assert offline_tokens.verify(token, {7: public}) == payload
    assert offline_tokens.verify(token, {8: public}) is None  # the token names key 7
    assert offline_tokens.verify(token, {7: Ed25519PrivateKey.generate().public_key()}) is None
    altered = offline_tokens.sign(
        offline_tokens.TokenPayload(key_id=7, voucher_id=123_456_790, version=2, period=MONTH), private
    )
    # The payload of one token with the signature of another: refused.
    assert offline_tokens.verify(altered[:18] + token[18:], {7: public}) is None


def test_the_senior_page_url_fits_a_qr_of_version_10_at_level_m():
    token = make_token(voucher_id=2**48 - 1, version=2**16 - 1, period=MONTH)
    for base in (
        "http://127.0.0.1:8000",
        "https://ylfw.mzj.hangzhou.gov.cn",
        "https://jjyl.example-city.gov.cn:8443",
    ):
        code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M)
        code.add_data(f"{base}/v/{token}/")
        code.make(fit=True)
        assert code.version <= 10, (base, code.version)


def test_a_token_signed_with_another_installations_key_is_refused():
    with override_settings(VOUCHER_SIGNING_KEY=key_text(Ed25519PrivateKey.generate())):
        foreign = make_token(voucher_id=42, version=1, period=MONTH)
    assert parse_token(foreign) is None


def test_after_a_rotation_old_cards_verify_until_the_previous_keys_last_day():
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    with override_settings(VOUCHER_SIGNING_KEY=key_text(old), VOUCHER_SIGNING_KEY_ID=1):
        old_card = make_token(voucher_id=42, version=1, period=MONTH)
    old_public = offline_tokens.public_key_text(old.public_key())
    with override_settings(
        VOUCHER_SIGNING_KEY=key_text(new),
        VOUCHER_SIGNING_KEY_ID=2,
        VOUCHER_PREVIOUS_KEYS=[f"1:{old_public}:2026-12-31"],
    ):
        new_card = make_token(voucher_id=42, version=1, period=MONTH)
        assert new_card != old_card and parse_token(new_card).key_id == 2
        assert parse_token(old_card).key_id == 1
        assert [k.key_id for k in verification_keys(dt.date(2026, 12, 31))] == [2, 1]
        assert [k.key_id for k in verification_keys(dt.date(2027, 1, 1))] == [2]
    with override_settings(VOUCHER_SIGNING_KEY=key_text(new), VOUCHER_SIGNING_KEY_ID=2):
        assert parse_token(old_card) is None  # the old key dropped: its cards are refused


@pytest.mark.parametrize(
    "settings_change",
    [
        {"VOUCHER_SIGNING_KEY": "", "VOUCHER_SIGNING_KEY_FILE": "", "DEBUG": False},
        {"VOUCHER_SIGNING_KEY": "not a key"},
        {"VOUCHER_SIGNING_KEY_FILE": "/nonexistent/key.pem", "VOUCHER_SIGNING_KEY": ""},
        {"VOUCHER_SIGNING_KEY_ID": 0},
        {"VOUCHER_PREVIOUS_KEYS": ["1:abc"]},
        {"VOUCHER_PREVIOUS_KEYS": ["9"]},
    ],
)
def test_a_missing_or_broken_key_setting_is_a_clear_configuration_error(settings_change):
    with override_settings(**settings_change), pytest.raises(ImproperlyConfigured, match="VOUCHER_"):
        keys()


def test_a_key_from_a_pem_file(tmp_path):
    private = Ed25519PrivateKey.generate()
    path = tmp_path / "signing.pem"
    path.write_text(key_text(private))
    with override_settings(VOUCHER_SIGNING_KEY="", VOUCHER_SIGNING_KEY_FILE=str(path)):
        token = make_token(voucher_id=5, version=1, period=MONTH)
    public = private.public_key()
    assert offline_tokens.verify(token, {1: public}).voucher_id == 5


def test_cards_printed_before_the_switch_still_parse_online():
    legacy = make_legacy_token(voucher_id=42, version=3)
    parsed = parse_token(legacy)
    assert (parsed.voucher_id, parsed.version, parsed.period) == (42, 3, None)
    assert parse_token(legacy[:-1] + ("A" if legacy[-1] != "A" else "B")) is None
    with override_settings(SECRET_KEY="another-installation-key"):
        assert parse_token(legacy) is None


def test_scanners_accept_the_url_or_the_bare_token():
    token = make_token(voucher_id=42, version=3, period=MONTH)
    for scanned in (
        token,
        f" {token}\n",
        f"https://x.gov.cn/v/{token}/",
        f"http://127.0.0.1:8000/v/{token}?s=1",
    ):
        assert extract_token(scanned) == token
        assert parse_token(scanned).voucher_id == 42


def test_voucher_qr_prints_the_url_and_writes_a_png(world, tmp_path, capsys):
    voucher = world.vouchers["low_fee"]
    png = tmp_path / "qr.png"
    call_command("voucher_qr", "--voucher", str(voucher.pk), "--png", str(png))
    out = capsys.readouterr().out
    assert world.token() in out and f"/v/{world.token()}/" in out
    assert voucher.senior.id_card_number not in out
    assert Image.open(png).size[0] >= 200
    call_command("voucher_qr", "--senior", voucher.senior.id_card_number, "--period", "2026-11")
    assert world.token() in capsys.readouterr().out
    with pytest.raises(Exception, match="No such voucher"):
        call_command("voucher_qr", "--voucher", "999999")
    with pytest.raises(CommandError, match="cannot write"):
        call_command(
            "voucher_qr", "--voucher", str(voucher.pk), "--png", str(tmp_path / "missing" / "qr.png")
        )


def test_voucher_signing_key_writes_a_private_file_once_and_prints_the_public_key(tmp_path, capsys):
    path = tmp_path / "var" / "signing.key"
    call_command("voucher_signing_key", "--out", str(path))
    assert path.stat().st_mode & 0o777 == 0o600
    key = offline_tokens.private_key_from_text(path.read_text())
    before = path.read_text()
    call_command("voucher_signing_key", "--out", str(path), "--if-missing")
    assert path.read_text() == before
    with pytest.raises(CommandError, match="never overwritten"):
        call_command("voucher_signing_key", "--out", str(path))
    with override_settings(
        VOUCHER_SIGNING_KEY="", VOUCHER_SIGNING_KEY_FILE=str(path), VOUCHER_SIGNING_KEY_ID=3
    ):
        capsys.readouterr()
        call_command("voucher_signing_key", "--public")
        assert capsys.readouterr().out.startswith(f"3:{offline_tokens.public_key_text(key.public_key())}")
