"""A scanner without network (DESIGN.md §5, §6.5): after one sync of the keys and the revocations
it checks a card itself: genuine, this month's, not replaced. And the cards printed before the
switch to Ed25519 keep working online until their month ends."""

import datetime as dt

from rest_framework.test import APIClient

from tests.vouchers.conftest import scan_and_confirm
from tests.vouchers.test_api import REDEEM, VERIFY, assert_refused, redeem_body
from tests.vouchers.test_reissue import REVOCATIONS, user_with_role
from vouchers import offline_tokens
from vouchers.services import reissue_voucher
from vouchers.tokens import make_legacy_token

KEYS = "/api/v1/scanner/keys/"


class OfflineScanner:
    """What the scanner app keeps after a sync, and its offline check (no server, no database)."""

    def __init__(self, client):
        body = client.get(KEYS).json()
        self.keys = {
            key["key_id"]: offline_tokens.public_key_from_text(key["public_key"])
            for key in body["keys"]
            if key["algorithm"] == "Ed25519"
        }
        feed = client.get(REVOCATIONS).json()
        self.valid_version = {
            row["voucher_id"]: (0 if row["revoked"] else row["valid_version"]) for row in feed["revocations"]
        }

    def check(self, scanned: str, today: dt.date) -> str:
        payload = offline_tokens.verify(scanned.rsplit("/v/", 1)[-1].strip("/"), self.keys)
        if payload is None:
            return "invalid_token"
        if (
            payload.version < self.valid_version.get(payload.voucher_id, 0)
            or self.valid_version.get(payload.voucher_id) == 0
        ):
            return "voucher_revoked"
        if today < payload.period:
            return "voucher_not_yet_valid"
        if (today.year, today.month) != (payload.period.year, payload.period.month):
            return "voucher_expired"
        return "ok"


def test_the_keys_api_gives_what_verifies_a_card_offline(world):
    body = world.client().get(KEYS).json()
    assert [(key["key_id"], key["current"], key["algorithm"]) for key in body["keys"]] == [
        (1, True, "Ed25519")
    ]
    assert "base32" in body["token_format"]

    scanner = OfflineScanner(world.client())
    today = dt.date(2026, 11, 16)
    assert scanner.check(world.token(), today) == "ok"
    assert scanner.check(f"http://127.0.0.1:8000/v/{world.token()}/", today) == "ok"
    token = world.token()
    tampered = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")  # a code that ends in AA by chance
    assert scanner.check(tampered, today) == "invalid_token"
    assert scanner.check(world.token(), dt.date(2026, 12, 1)) == "voucher_expired"
    assert scanner.check(world.token(), dt.date(2026, 10, 31)) == "voucher_not_yet_valid"


def test_after_a_reissue_and_the_next_sync_the_old_card_is_refused_offline(world):
    worker = user_with_role("community-worker", "worker", world.community)
    old = world.token("low_fee")
    reissue_voucher(voucher_id=world.vouchers["low_fee"].pk, reason="遗失", by=worker)
    world.vouchers["low_fee"].refresh_from_db()

    scanner = OfflineScanner(world.client())  # the next sync
    today = dt.date(2026, 11, 16)
    assert scanner.check(old, today) == "voucher_revoked"
    assert scanner.check(world.token("low_fee"), today) == "ok"
    assert scanner.check(world.token("paid"), today) == "ok"


def test_the_keys_are_for_scanning_staff(world, api_client):
    assert APIClient().get(KEYS).status_code == 401
    api_client.force_authenticate(user_with_role("community-worker", "worker", world.community))
    assert_refused(api_client.get(KEYS), 403, "not_permitted")


def test_a_card_printed_before_the_switch_still_redeems_until_it_is_replaced(world):
    voucher = world.vouchers["low_fee"]
    legacy = make_legacy_token(voucher_id=voucher.pk, version=voucher.token_version)
    assert world.client().post(VERIFY, {"token": legacy}, format="json").status_code == 200
    assert scan_and_confirm(world.client(), redeem_body(legacy)).status_code == 201

    worker = user_with_role("community-worker", "worker", world.community)
    reissue_voucher(voucher_id=voucher.pk, reason="遗失", by=worker)
    again = world.client().post(REDEEM, redeem_body(legacy, key="scan-0000002"), format="json")
    assert_refused(again, 409, "voucher_revoked")


def test_an_earlier_format_code_for_a_voucher_after_the_switch_is_refused(world, client):
    """SECRET_KEY alone must not make a working code for a voucher issued after the switch."""
    from django.test import override_settings

    voucher = world.vouchers["low_fee"]  # November 2026
    legacy = make_legacy_token(voucher_id=voucher.pk, version=voucher.token_version)
    with override_settings(VOUCHER_LEGACY_CODES_UNTIL="2026-10"):
        assert_refused(world.client().post(VERIFY, {"token": legacy}, format="json"), 400, "invalid_token")
        assert client.get(f"/v/{legacy}/").status_code == 404
    with override_settings(VOUCHER_LEGACY_CODES_UNTIL=""):
        assert_refused(world.client().post(REDEEM, redeem_body(legacy), format="json"), 400, "invalid_token")
    assert client.get(f"/v/{legacy}/").status_code == 200  # the default: up to 2026-12
