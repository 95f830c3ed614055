"""Signed QR tokens (DESIGN.md §6.5) and the voucher_qr command."""

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from vouchers.tokens import extract_token, make_token, parse_token


@given(
    voucher_id=st.integers(min_value=1, max_value=10**12), version=st.integers(min_value=1, max_value=999_999)
)
def test_a_genuine_token_round_trips(voucher_id, version):
    parsed = parse_token(make_token(voucher_id=voucher_id, version=version))
    assert (parsed.voucher_id, parsed.version) == (voucher_id, version)


@given(voucher_id=st.integers(min_value=1, max_value=10**9), position=st.integers(min_value=0, max_value=40))
def test_any_single_character_change_is_refused(voucher_id, position):
    token = make_token(voucher_id=voucher_id, version=1)
    position %= len(token)
    replacement = "b" if token[position] != "b" else "c"
    assert parse_token(token[:position] + replacement + token[position + 1 :]) is None


def test_a_token_signed_with_another_key_is_refused():
    with override_settings(SECRET_KEY="another-installation-key"):
        foreign = make_token(voucher_id=42, version=1)
    assert parse_token(foreign) is None


def test_scanners_accept_the_url_or_the_bare_token():
    token = make_token(voucher_id=42, version=3)
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
