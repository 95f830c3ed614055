"""The scanner API of DESIGN.md §5, through HTTP: every refusal is JSON {code, detail}. A service
of which the senior pays a share is recorded once the staff member confirms the quoted share
(`scan_and_confirm`); items priced per hour go through check-in and check-out instead."""

import datetime as dt
import uuid
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from rest_framework.test import APIClient

from billing.models import Adjustment
from providers.models import ServiceItem
from tests.factories import ContractItemFactory, ServiceItemFactory, UserFactory
from tests.vouchers.conftest import MONTH, balance_of, scan_and_confirm
from vouchers import services
from vouchers.models import ClosedMonth, Redemption, ScanAttempt, Voucher
from vouchers.tokens import make_token

REDEEM = "/api/v1/redemptions/"
VERIFY = "/api/v1/vouchers/verify/"


def redeem_body(token, *, item="meal", quantity="2", key="scan-0000001"):
    return {"token": token, "service_item": item, "quantity": quantity, "idempotency_key": key}


def assert_refused(response, status, code):
    assert response.status_code == status, response.content
    body = response.json()
    assert body["code"] == code
    assert body["detail"]
    return body


# --- signing in a device ------------------------------------------------------------------------


def test_staff_signs_in_a_device_and_scans_with_its_token(world):
    client = APIClient()
    response = client.post(
        "/api/v1/auth/token/",
        {"username": world.staff.user.username, "password": "pw-for-tests-1"},
        format="json",
    )
    assert response.status_code == 201
    token = response.json()["token"]
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert client.post(VERIFY, {"token": world.token()}, format="json").status_code == 200


def test_wrong_password_and_non_staff_are_refused_alike(world):
    client = APIClient()
    wrong = client.post(
        "/api/v1/auth/token/", {"username": world.staff.user.username, "password": "x"}, format="json"
    )
    assert_refused(wrong, 401, "not_authenticated")
    UserFactory(username="clerk")
    clerk = client.post(
        "/api/v1/auth/token/", {"username": "clerk", "password": "pw-for-tests-1"}, format="json"
    )
    assert_refused(clerk, 401, "not_authenticated")  # the same refusal: no password oracle


def test_sign_in_is_rate_limited(world, monkeypatch):
    from rest_framework.throttling import ScopedRateThrottle

    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {"auth_token": "2/min", "scan": "100/min"})
    # A fresh client address, so the limit is this test's own even on a shared Redis cache.
    client = APIClient(REMOTE_ADDR=f"127.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.7")
    for _ in range(2):
        client.post("/api/v1/auth/token/", {"username": "nobody", "password": "x"}, format="json")
    response = client.post("/api/v1/auth/token/", {"username": "nobody", "password": "x"}, format="json")
    assert_refused(response, 429, "rate_limited")
    assert int(response["Retry-After"]) >= 1


def test_missing_or_revoked_device_token_is_not_authenticated(world):
    assert_refused(
        APIClient().post(VERIFY, {"token": world.token()}, format="json"), 401, "not_authenticated"
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer not-a-real-token")
    assert_refused(client.post(VERIFY, {"token": world.token()}, format="json"), 401, "not_authenticated")
    world.device.revoked_at = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    world.device.save()
    assert_refused(
        world.client().post(VERIFY, {"token": world.token()}, format="json"), 401, "not_authenticated"
    )


# --- verify -------------------------------------------------------------------------------------


def test_verify_shows_what_the_scanner_may_see_and_changes_nothing(world):
    response = world.client().post(VERIFY, {"token": world.token("low_fee")}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert body["masked_name"] == "李*国"
    assert body["tier"] == "low_fee" and body["balance"] == "200.00"
    assert {item["code"] for item in body["service_items"]} == {"cleaning", "meal"}
    # each item says the steps its quantity goes in (data on the service item)
    steps = {item["code"]: item["quantity_step"] for item in body["service_items"]}
    assert steps["meal"] == "1"
    assert steps["cleaning"] == f"{ServiceItem.objects.get(code='cleaning').quantity_step.normalize():f}"
    assert "id_card_number" not in str(body) and world.vouchers["low_fee"].senior.id_card_number not in str(
        body
    )
    assert balance_of(world.vouchers["low_fee"]) == Decimal("200.00")


def test_verify_accepts_the_senior_page_url_the_qr_encodes(world):
    url = f"https://care.example.gov.cn/v/{world.token()}/"
    assert world.client().post(VERIFY, {"token": url}, format="json").status_code == 200


# --- redeem -------------------------------------------------------------------------------------


def quote_of(*, amount, government, senior, remaining, shortfall="0.00") -> dict:
    return {
        "amount": amount,
        "government_share": government,
        "senior_share": senior,
        "remaining_balance": remaining,
        "shortfall": shortfall,
    }


def test_redeem_prices_the_service_and_debits_the_balance(world):
    # Two meals at ¥15 for the low-fee senior: the voucher pays 70 %, he pays ¥9.00 once asked
    response = scan_and_confirm(world.client(), redeem_body(world.token("low_fee")))
    assert response.quote == quote_of(amount="30.00", government="21.00", senior="9.00", remaining="179.00")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["amount"], body["government_share"], body["senior_share"]) == ("30.00", "21.00", "9.00")
    assert body["remaining_balance"] == "179.00"
    assert balance_of(world.vouchers["low_fee"]) == Decimal("179.00")


def test_a_senior_share_is_recorded_only_once_that_exact_amount_is_confirmed(world):
    # Asked, nothing is recorded yet
    asked = assert_refused(
        world.client().post(REDEEM, redeem_body(world.token()), format="json"), 409, "confirmation_required"
    )
    assert asked["quote"]["senior_share"] == "9.00"
    # A confirmation of another amount (the quote changed, or a wrong figure) is asked again
    wrong = {**redeem_body(world.token()), "confirm_senior_share": "8.00"}
    assert_refused(world.client().post(REDEEM, wrong, format="json"), 409, "confirmation_required")
    assert Redemption.objects.count() == 0
    assert balance_of(world.vouchers["low_fee"]) == Decimal("200.00")
    # A senior who pays nothing is never asked
    free = world.client().post(
        REDEEM, redeem_body(world.token("subsidized"), key="scan-0000002"), format="json"
    )
    assert free.status_code == 201, free.content
    assert free.json()["senior_share"] == "0.00"


def test_an_item_priced_per_hour_goes_through_check_in_not_a_quantity(world):
    response = world.client().post(
        REDEEM, redeem_body(world.token("subsidized"), item="cleaning", quantity="1.5"), format="json"
    )
    assert_refused(response, 409, "use_check_in")
    assert Redemption.objects.count() == 0
    assert balance_of(world.vouchers["subsidized"]) == Decimal("300.00")
    # Recorded directly (the demo's history, scripts), a per-hour quantity is still taken
    recorded = services.redeem(
        token=world.token("subsidized"),
        service_item_code="cleaning",
        quantity="1.5",
        idempotency_key="script-0000001",
        staff=world.staff,
    )
    assert recorded.redemption.amount.amount == Decimal("60.00")


def test_repeating_an_idempotency_key_returns_the_same_redemption(world):
    first = scan_and_confirm(world.client(), redeem_body(world.token()))
    again = scan_and_confirm(world.client(), redeem_body(world.token()))
    assert first.status_code == 201 and again.status_code == 200
    assert again.quote is None  # a replay is answered at once, not asked again
    assert again.json()["id"] == first.json()["id"]
    assert Redemption.objects.count() == 1
    assert balance_of(world.vouchers["low_fee"]) == Decimal("179.00")
    different = world.client().post(REDEEM, redeem_body(world.token(), quantity="3"), format="json")
    assert_refused(different, 409, "idempotency_conflict")


def test_a_short_balance_is_paid_by_the_senior_at_the_contract_price(world):
    voucher = world.vouchers["subsidized"]
    Voucher.objects.filter(pk=voucher.pk).update(balance=Decimal("10.00"))
    response = scan_and_confirm(world.client(), redeem_body(world.token("subsidized")))
    # The subsidized tier pays nothing itself: all ¥20.00 the senior pays is the balance's shortfall
    assert response.quote == quote_of(
        amount="30.00", government="10.00", senior="20.00", remaining="0.00", shortfall="20.00"
    )
    body = response.json()
    assert (body["amount"], body["government_share"], body["senior_share"]) == ("30.00", "10.00", "20.00")
    assert body["remaining_balance"] == "0.00"


def test_paid_tier_pays_everything_and_still_records_the_service(world):
    response = scan_and_confirm(world.client(), redeem_body(world.token("paid"), quantity="4"))
    assert response.quote == quote_of(amount="60.00", government="0.00", senior="60.00", remaining="0.00")
    body = response.json()
    assert response.status_code == 201, response.content
    assert (body["amount"], body["government_share"], body["senior_share"]) == ("60.00", "0.00", "60.00")


def test_redemptions_list_shows_the_devices_own_history(world):
    scan_and_confirm(world.client(), redeem_body(world.token()))
    rows = world.client().get(REDEEM).json()
    assert len(rows) == 1 and rows[0]["masked_name"] == "李*国" and rows[0]["voided"] is False


# --- every refusal code of this slice -----------------------------------------------------------


@pytest.mark.parametrize(
    "token_of",
    [
        lambda w: "garbage",
        lambda w: w.token()[:-1] + ("A" if w.token()[-1] != "A" else "B"),  # altered MAC
        lambda w: make_token(
            voucher_id=w.vouchers["low_fee"].pk + 999, version=1, period=MONTH
        ),  # no such voucher
        lambda w: make_token(voucher_id=999_999, version=1, period=MONTH),
        # A genuine signature over the right voucher and version, but another month
        lambda w: make_token(voucher_id=w.vouchers["low_fee"].pk, version=1, period=dt.date(2026, 12, 1)),
    ],
)
def test_forged_or_altered_tokens_are_invalid_and_change_nothing(world, token_of):
    token = token_of(world)
    response = world.client().post(REDEEM, redeem_body(token), format="json")
    assert_refused(response, 400, "invalid_token")
    assert Redemption.objects.count() == 0
    assert ScanAttempt.objects.filter(outcome="invalid_token", action="redeem").count() == 1


def test_revoked_token_version_is_refused(world):
    voucher = world.vouchers["low_fee"]
    old_token = world.token()
    Voucher.objects.filter(pk=voucher.pk).update(token_version=2)
    assert_refused(world.client().post(REDEEM, redeem_body(old_token), format="json"), 409, "voucher_revoked")


def test_expired_voucher_is_refused(world, monkeypatch):
    later = dt.datetime(2026, 12, 2, 9, 0, tzinfo=dt.UTC)
    monkeypatch.setattr("django.utils.timezone.now", lambda: later)
    assert_refused(
        world.client().post(REDEEM, redeem_body(world.token()), format="json"), 409, "voucher_expired"
    )


def test_voucher_not_yet_valid_is_refused(world):
    Voucher.objects.filter(pk=world.vouchers["low_fee"].pk).update(
        valid_from=dt.date(2026, 11, 20), period=dt.date(2026, 11, 1)
    )
    body = assert_refused(
        world.client().post(VERIFY, {"token": world.token()}, format="json"), 409, "voucher_not_yet_valid"
    )
    assert "2026-11-20" in body["detail"]


def test_service_not_in_the_contract_is_not_contracted(world):
    ServiceItemFactory(code="bathing", name="助浴", unit="visit")
    response = world.client().post(
        REDEEM, redeem_body(world.token(), item="bathing", quantity="1"), format="json"
    )
    assert_refused(response, 403, "not_contracted")


def test_senior_outside_the_contract_area_is_refused(world):
    token = world.token("far_away")
    assert_refused(
        world.client().post(REDEEM, redeem_body(token), format="json"), 403, "outside_service_area"
    )
    assert_refused(world.client().post(VERIFY, {"token": token}, format="json"), 403, "outside_service_area")


def test_non_staff_session_user_is_not_permitted(world):
    client = APIClient()
    client.force_authenticate(UserFactory(username="officer"))
    assert_refused(client.post(REDEEM, redeem_body(world.token()), format="json"), 403, "not_permitted")


def test_redeem_into_a_settled_month_is_refused(world):
    ClosedMonth.objects.create(month=MONTH)
    assert_refused(
        world.client().post(REDEEM, redeem_body(world.token()), format="json"), 409, "period_closed"
    )


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"token": "x", "service_item": "cleaning", "quantity": "abc", "idempotency_key": "scan-0000001"},
        {"token": "x", "service_item": "cleaning", "quantity": "-1", "idempotency_key": "scan-0000001"},
        {"token": "x", "service_item": "cleaning", "quantity": "1", "idempotency_key": "short"},
    ],
)
def test_malformed_bodies_are_invalid_input(world, body):
    if body.get("token") == "x":
        body["token"] = world.token()
    assert_refused(world.client().post(REDEEM, body, format="json"), 400, "invalid_input")


def test_a_body_that_is_not_json_is_invalid_input(world):
    response = world.client().post(REDEEM, "{not json", content_type="application/json")
    assert_refused(response, 400, "invalid_input")


def test_whole_units_cannot_be_split(world):
    response = world.client().post(
        REDEEM, redeem_body(world.token(), item="meal", quantity="1.5"), format="json"
    )
    assert_refused(response, 400, "invalid_input")


# --- void ---------------------------------------------------------------------------------------


def test_void_credits_the_government_share_back_once(world):
    created = scan_and_confirm(world.client(), redeem_body(world.token())).json()
    url = f"/api/v1/redemptions/{created['id']}/void/"
    response = world.client().post(url, {"reason": "扫错了 / scanned the wrong senior"}, format="json")
    assert response.status_code == 200
    assert response.json()["credited_back"] == "21.00" and response.json()["remaining_balance"] == "200.00"
    assert_refused(world.client().post(url, {"reason": "again"}, format="json"), 409, "already_voided")
    assert balance_of(world.vouchers["low_fee"]) == Decimal("200.00")


def test_void_needs_a_reason_and_an_existing_redemption(world):
    created = scan_and_confirm(world.client(), redeem_body(world.token())).json()
    url = f"/api/v1/redemptions/{created['id']}/void/"
    assert_refused(world.client().post(url, {"reason": "  "}, format="json"), 400, "invalid_input")
    assert_refused(
        world.client().post("/api/v1/redemptions/987654/void/", {"reason": "x"}, format="json"),
        404,
        "not_found",
    )


def test_void_by_another_provider_is_not_permitted(world):
    created = scan_and_confirm(world.client(), redeem_body(world.token())).json()
    from providers.services import register_device
    from tests.factories import StaffMemberFactory

    outsider = StaffMemberFactory()
    _, token = register_device(user=outsider.user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    response = client.post(f"/api/v1/redemptions/{created['id']}/void/", {"reason": "x"}, format="json")
    assert_refused(response, 403, "not_permitted")


def test_a_suspended_providers_staff_can_neither_scan_nor_void(world):
    # Given a service recorded, and then the provider suspended by the bureau
    created = scan_and_confirm(world.client(), redeem_body(world.token())).json()
    world.staff.provider.__class__.objects.filter(pk=world.staff.provider_id).update(is_active=False)

    # Then the same device's void and scans are refused at once, and nothing changes
    url = f"/api/v1/redemptions/{created['id']}/void/"
    assert_refused(world.client().post(url, {"reason": "x"}, format="json"), 403, "not_permitted")
    scan = redeem_body(world.token(), key="scan-0000002")
    assert_refused(world.client().post(REDEEM, scan, format="json"), 403, "not_permitted")
    assert not Redemption.objects.filter(void__isnull=False).exists()


def test_bureau_user_with_the_permission_may_void(world):
    created = scan_and_confirm(world.client(), redeem_body(world.token())).json()
    officer = UserFactory(username="bureau-officer")
    officer.user_permissions.add(Permission.objects.get(codename="add_redemptionvoid"))
    client = APIClient()
    client.force_authenticate(officer)
    response = client.post(
        f"/api/v1/redemptions/{created['id']}/void/", {"reason": "duplicate"}, format="json"
    )
    assert response.status_code == 200


def test_void_in_a_settled_month_is_an_adjustment_of_a_later_month(world):
    created = scan_and_confirm(world.client(), redeem_body(world.token())).json()
    ClosedMonth.objects.create(month=MONTH)
    response = world.client().post(
        f"/api/v1/redemptions/{created['id']}/void/", {"reason": "late"}, format="json"
    )
    # recorded, nothing back onto the voucher: the closed month's statement does not change, and the
    # reversal is an adjustment in the next open month
    assert response.status_code == 200
    assert response.json()["credited_back"] == "0.00"
    adjustment = Adjustment.objects.get(redemption_id=created["id"])
    assert (adjustment.kind, adjustment.month > MONTH, adjustment.amount.amount) == (
        "void",
        True,
        -Decimal(created["amount"]),
    )


# --- languages and the shape of errors ----------------------------------------------------------


def test_messages_follow_accept_language(world):
    zh = world.client("zh-hans").post(REDEEM, redeem_body("not-a-voucher-code"), format="json").json()
    en = world.client("en").post(REDEEM, redeem_body("not-a-voucher-code"), format="json").json()
    assert zh["code"] == en["code"] == "invalid_token"
    assert en["detail"] == "This code is not a valid voucher code."
    assert zh["detail"] != en["detail"] and any("\u4e00" <= ch <= "\u9fff" for ch in zh["detail"])


def test_unknown_api_urls_and_methods_answer_in_json(world):
    response = world.client().get("/api/v1/no-such-thing/")
    assert_refused(response, 404, "not_found")
    assert response["Content-Type"].startswith("application/json")
    assert_refused(world.client().delete(REDEEM), 405, "method_not_allowed")


def test_second_contract_item_for_same_service_uses_the_newest_contract(world):
    from tests.factories import ContractFactory

    newer = ContractFactory(
        provider=world.contract.provider, starts_on=dt.date(2026, 1, 1), area=[world.community]
    )
    meal = ServiceItem.objects.get(code="meal")
    ContractItemFactory(contract=newer, service_item=meal, unit_price="18.00")
    response = scan_and_confirm(world.client(), redeem_body(world.token(), quantity="1"))
    assert response.quote["amount"] == "18.00"
    assert response.json()["unit_price"] == "18.00"


def test_sign_in_is_limited_per_username_whatever_the_address(world, monkeypatch):
    from providers.api import UsernameRateThrottle

    monkeypatch.setattr(UsernameRateThrottle, "THROTTLE_RATES", {"auth_username": "2/min"})
    username = f"victim-{uuid.uuid4().hex[:8]}"
    statuses = [
        APIClient(HTTP_X_FORWARDED_FOR=f"127.0.{i}.9", REMOTE_ADDR=f"127.1.{i}.9")
        .post("/api/v1/auth/token/", {"username": username, "password": "guess"}, format="json")
        .status_code
        for i in range(3)
    ]
    assert statuses == [401, 401, 429]


def test_accepted_scans_are_recorded_too(world):
    # (the subsidized senior pays nothing: no confirmation between the scans)
    world.client().post(VERIFY, {"token": world.token("subsidized")}, format="json")
    world.client().post(REDEEM, redeem_body(world.token("subsidized")), format="json")
    world.client().post(REDEEM, redeem_body(world.token("subsidized")), format="json")
    outcomes = sorted(ScanAttempt.objects.values_list("action", "outcome"))
    assert outcomes == [("redeem", "ok"), ("redeem", "replayed"), ("verify", "ok")]
    assert all(attempt.device_id == world.device.pk for attempt in ScanAttempt.objects.all())


def test_a_post_without_the_trailing_slash_still_records_the_scan(world):
    response = scan_and_confirm(world.client(), redeem_body(world.token()), url=REDEEM.rstrip("/"))
    assert response.status_code == 201 and response.quote is not None
    assert Redemption.objects.count() == 1


def test_staff_of_a_deactivated_provider_cannot_verify(world):
    provider = world.staff.provider
    provider.is_active = False
    provider.save()
    assert_refused(world.client().post(VERIFY, {"token": world.token()}, format="json"), 403, "not_permitted")
