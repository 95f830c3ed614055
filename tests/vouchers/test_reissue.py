"""Reissuing a lost card (补发): the old code is refused from that moment, online and, through the
revocations feed, on scanners offline; the worker's button; the command."""

import datetime as dt
import io

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from rest_framework.test import APIClient

from config.roles import setup_roles
from eligibility.services import change_senior_status
from tests.e2e.conftest import make_user
from tests.vouchers.conftest import NOW, balance_of, scan_and_confirm
from tests.vouchers.test_api import REDEEM, VERIFY, assert_refused, redeem_body
from vouchers.errors import VoucherError
from vouchers.models import Voucher, VoucherReissue
from vouchers.services import reissue_voucher
from vouchers.tokens import voucher_token

REVOCATIONS = "/api/v1/scanner/revocations/"


def user_with_role(username: str, role: str, region=None):
    setup_roles()  # a transactional test before this one may have flushed the role groups away
    return make_user(username, role, region=region)


@pytest.fixture
def worker(world):
    return user_with_role("community-worker", "worker", world.community)


def test_a_reissue_refuses_the_old_code_and_accepts_the_new_one(world, worker):
    # Given the low-fee senior's card, scanned once
    voucher = world.vouchers["low_fee"]
    old_token = world.token()
    assert world.client().post(VERIFY, {"token": old_token}, format="json").status_code == 200
    balance = balance_of(voucher)

    # When the worker reissues it (the card was lost)
    reissue = reissue_voucher(voucher_id=voucher.pk, reason="老人遗失卡片", by=worker)

    # Then the version went up with an audit row, the old code is refused, the new one works
    voucher.refresh_from_db()
    assert (reissue.old_version, reissue.new_version, voucher.token_version) == (1, 2, 2)
    assert (reissue.reason, reissue.reissued_by) == ("老人遗失卡片", worker)
    assert_refused(world.client().post(VERIFY, {"token": old_token}, format="json"), 409, "voucher_revoked")
    assert_refused(world.client().post(REDEEM, redeem_body(old_token), format="json"), 409, "voucher_revoked")
    new_token = voucher_token(voucher)
    assert new_token != old_token
    assert scan_and_confirm(world.client(), redeem_body(new_token)).status_code == 201
    # And the balance carried over (the reissue itself moved no money)
    assert balance_of(voucher) < balance


def test_a_reissue_needs_a_reason_a_usable_voucher_and_the_senior_in_the_users_care(world, worker):
    voucher = world.vouchers["low_fee"]
    with pytest.raises(VoucherError) as refusal:
        reissue_voucher(voucher_id=voucher.pk, reason="  ", by=worker)
    assert (refusal.value.code, refusal.value.field) == ("invalid_input", "reason")
    # A senior of another community does not exist for this worker
    with pytest.raises(VoucherError) as refusal:
        reissue_voucher(voucher_id=world.vouchers["far_away"].pk, reason="遗失", by=worker)
    assert refusal.value.code == "not_found"
    # An officer reads the registry but reissues nothing
    officer = user_with_role("officer", "officer", world.community.parent)
    with pytest.raises(VoucherError) as refusal:
        reissue_voucher(voucher_id=voucher.pk, reason="遗失", by=officer)
    assert refusal.value.code == "not_permitted"
    # A voucher revoked (the senior moved out) is not reissued
    change_senior_status(senior=voucher.senior, status="moved_away", on=dt.date(2026, 11, 10), by=worker)
    with pytest.raises(VoucherError) as refusal:
        reissue_voucher(voucher_id=voucher.pk, reason="遗失", by=worker)
    assert refusal.value.code == "invalid_input"
    assert not VoucherReissue.objects.exists()
    assert Voucher.objects.get(pk=voucher.pk).token_version == 1


def test_the_revocations_feed_tells_a_scanner_what_to_refuse_offline(world, worker, monkeypatch):
    # Given one card reissued, and a senior who moved out (their voucher revoked)
    first = reissue_voucher(voucher_id=world.vouchers["low_fee"].pk, reason="遗失", by=worker)
    change_senior_status(
        senior=world.vouchers["paid"].senior, status="moved_away", on=dt.date(2026, 11, 12), by=worker
    )

    # When the scanner syncs from scratch
    body = world.client().get(REVOCATIONS).json()

    # Then it hears of both: codes below version 2 of one voucher, and every code of the other
    rows = {row["voucher_id"]: row for row in body["revocations"]}
    assert rows[world.vouchers["low_fee"].pk] | {"at": None} == {
        "voucher_id": world.vouchers["low_fee"].pk,
        "valid_version": 2,
        "revoked": False,
        "at": None,
    }
    assert rows[world.vouchers["paid"].pk]["revoked"] is True
    assert body["complete"] is True and body["next_since"]

    # And syncing again from where it stopped brings only what is new
    later = NOW + dt.timedelta(minutes=5)
    monkeypatch.setattr("django.utils.timezone.now", lambda: later)
    second = reissue_voucher(voucher_id=world.vouchers["subsidized"].pk, reason="破损", by=worker)
    again = world.client().get(REVOCATIONS, {"since": second.reissued_at.isoformat()}).json()
    assert [row["voucher_id"] for row in again["revocations"]] == [world.vouchers["subsidized"].pk]
    assert first.reissued_at < second.reissued_at


def test_the_feed_is_for_scanning_staff_and_checks_its_date(world, worker, api_client):
    api_client.force_authenticate(worker)
    assert_refused(api_client.get(REVOCATIONS), 403, "not_permitted")
    assert_refused(world.client().get(REVOCATIONS, {"since": "yesterday"}), 400, "invalid_input")
    assert APIClient().get(REVOCATIONS).status_code == 401


def test_the_worker_reissues_from_the_seniors_page(client, world, worker):
    voucher = world.vouchers["low_fee"]
    client.force_login(worker)

    # Given the senior's page shows the reissue form for this month's card
    page = client.get(reverse("registry-senior", args=[voucher.senior_id])).content.decode()
    assert f'id="reissue-{voucher.pk}"' in page

    # When the worker reissues it, then they are back on the page with the new card's link
    response = client.post(reverse("voucher-reissue", args=[voucher.pk]), {"reason": "遗失"}, follow=True)
    voucher.refresh_from_db()
    assert voucher.token_version == 2
    assert voucher_token(voucher) in response.content.decode()

    # And an officer's post is refused, changing nothing
    client.force_login(user_with_role("officer", "officer", world.community.parent))
    assert client.post(reverse("voucher-reissue", args=[voucher.pk]), {"reason": "遗失"}).status_code == 403
    assert Voucher.objects.get(pk=voucher.pk).token_version == 2


def test_the_command_reissues_and_prints_the_new_code(world):
    voucher = world.vouchers["subsidized"]
    out = io.StringIO()
    call_command("reissue_voucher", "--voucher", str(voucher.pk), "--reason", "卡片破损", stdout=out)
    voucher.refresh_from_db()
    assert voucher.token_version == 2 and voucher_token(voucher) in out.getvalue()
    assert VoucherReissue.objects.get().reissued_by is None  # a script
    with pytest.raises(CommandError, match="没有这张服务券"):
        call_command("reissue_voucher", "--voucher", "999999", "--reason", "遗失")
