"""The scanner API cannot be fooled: bounded bodies, JSON for every path and method, a record of
every refused scan, exact rate limits, per-device idempotency keys, confirmation of what the
senior pays, and no "nothing changed" after a commit."""

import json
import threading
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from config.parsers import json_depth_exceeds
from config.throttling import ExactRateMixin
from providers.services import register_device
from tests.factories import ContractItemFactory, ServiceItemFactory, StaffMemberFactory
from tests.vouchers.conftest import balance_of
from vouchers import api as vouchers_api
from vouchers.models import Redemption, ScanAttempt, Voucher

REDEEM = "/api/v1/redemptions/"
VERIFY = "/api/v1/vouchers/verify/"


def body(token, *, item="meal", quantity="1", key=None, **extra):
    return {
        "token": token,
        "service_item": item,
        "quantity": quantity,
        "idempotency_key": key or f"k-{uuid.uuid4().hex[:16]}",
        **extra,
    }


def is_json_error(response, status, code=None):
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    data = json.loads(response.content)
    assert data["code"] and data["detail"]
    if code:
        assert data["code"] == code, data
    return data


def rates(monkeypatch, **changed):
    from rest_framework.throttling import SimpleRateThrottle

    monkeypatch.setattr(
        SimpleRateThrottle, "THROTTLE_RATES", {**SimpleRateThrottle.THROTTLE_RATES, **changed}
    )


# --- bodies -------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/v1/auth/token/", REDEEM, VERIFY])
def test_a_deeply_nested_body_is_refused_before_parsing_even_unauthenticated(world, path):
    deep = "[" * 5000 + "]" * 5000
    response = world.client().post(path, deep, content_type="application/json")
    is_json_error(response, 400, "invalid_input")
    anonymous = APIClient().post(path, deep, content_type="application/json")
    assert anonymous.status_code in (400, 401)
    assert anonymous["Content-Type"].startswith("application/json")


def test_a_body_over_64_kb_is_refused(world):
    huge = json.dumps({**body(world.token()), "padding": "x" * (65 * 1024)})
    data = is_json_error(
        world.client().post(REDEEM, huge, content_type="application/json"), 400, "invalid_input"
    )
    assert "64" in data["detail"]
    assert not Redemption.objects.exists()
    sign_in = APIClient().post("/api/v1/auth/token/", huge, content_type="application/json")
    is_json_error(sign_in, 400, "invalid_input")


def test_depth_counting_skips_brackets_inside_strings():
    assert not json_depth_exceeds(b'{"a": "[[[[[[[[[[[[\\"[[[[[["}', 3)
    assert json_depth_exceeds(b'{"a": [[[[1]]]]}', 3)
    assert not json_depth_exceeds(b'{"a": {"b": [1]}}', 3)


def test_not_json_and_nan_are_invalid_input(world):
    is_json_error(
        world.client().post(REDEEM, "{not json", content_type="application/json"), 400, "invalid_input"
    )
    nan = '{"token": "x", "quantity": NaN}'
    is_json_error(world.client().post(REDEEM, nan, content_type="application/json"), 400, "invalid_input")
    form = world.client().post(REDEEM, "a=b", content_type="application/x-www-form-urlencoded")
    is_json_error(form, 415, "invalid_input")


# --- JSON everywhere ----------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["get", "post", "put", "patch", "delete", "options"])
@pytest.mark.parametrize("path", ["/api/v1/nope/", "/api/nope", "/api/v1/redemptions/12/void/x", "/api/"])
def test_unknown_api_paths_answer_json_404_for_every_method(world, client, django_user_model, method, path):
    user = django_user_model.objects.create_user("someone", password="pw-for-tests-1")
    client.force_login(user)  # a session: CSRF would answer its HTML page for a POST
    client.handler.enforce_csrf_checks = True
    response = getattr(client, method)(path)
    is_json_error(response, 404, "not_found")


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_known_api_paths_answer_json_405_for_other_methods(world, method):
    for path in (REDEEM, VERIFY, "/api/v1/visits/check-in/", "/api/v1/scanner/keys/"):
        is_json_error(getattr(world.client(), method)(path), 405, "method_not_allowed")


def test_a_session_post_without_csrf_is_json_403(world, client):
    client.handler.enforce_csrf_checks = True
    client.force_login(world.staff.user)
    response = client.post(REDEEM, body(world.token()), content_type="application/json")
    is_json_error(response, 403, "not_permitted")
    assert not Redemption.objects.exists()


def test_a_session_with_a_wrong_device_token_is_refused_not_let_through_by_its_cookie(world, client):
    # A device's API request skips the browser's session and CSRF layers; it must then be
    # authenticated by its token alone, never by a session cookie sent along with a bad token.
    client.handler.enforce_csrf_checks = True
    client.force_login(world.staff.user)
    response = client.post(
        REDEEM,
        body(world.token()),
        content_type="application/json",
        headers={"Authorization": "Bearer not-a-real-device-token"},
    )
    is_json_error(response, 401, "not_authenticated")
    assert not Redemption.objects.exists()


def test_a_device_scan_skips_the_browser_layers_and_needs_no_csrf_token(world):
    client = world.client()
    client.handler.enforce_csrf_checks = True
    response = client.post(VERIFY, {"token": world.token()}, format="json")
    assert response.status_code == 200, response.content
    request = response.wsgi_request
    assert not hasattr(request, "session") and not hasattr(request, "_messages")
    assert not response.cookies
    assert response["Content-Security-Policy"]  # the outer layers still run


@pytest.mark.parametrize(
    "path, authorization, device",
    [
        ("/api/v1/redemptions/", "Bearer abc", True),
        ("/api/v1/redemptions/", "token abc", True),
        ("/api/v1/redemptions/", "Basic abc", False),
        ("/api/v1/redemptions/", "", False),
        ("/api/v1/redemptions/", "Bearer", False),
        ("/registry/", "Bearer abc", False),
        ("/scan/", "Bearer abc", False),
    ],
)
def test_only_device_api_requests_skip_the_browser_layers(rf, path, authorization, device):
    from config.middleware import is_device_api_request

    headers = {"HTTP_AUTHORIZATION": authorization} if authorization else {}
    assert is_device_api_request(rf.post(path, **headers)) is device


# --- refused scans are recorded ------------------------------------------------------------------


def test_malformed_and_invalid_bodies_leave_a_scan_attempt(world):
    client = world.client()
    client.post(REDEEM, "[[[[[[[[[[[[]]]]]]]]]]]]", content_type="application/json")
    client.post(REDEEM, {"token": world.token(), "quantity": "-1"}, format="json")
    client.post(VERIFY, {}, format="json")
    outcomes = list(ScanAttempt.objects.order_by("id").values_list("action", "outcome", "staff"))
    assert outcomes == [
        ("redeem", "invalid_input", world.staff.pk),
        ("redeem", "invalid_input", world.staff.pk),
        ("verify", "invalid_input", world.staff.pk),
    ]
    assert ScanAttempt.objects.filter(device=world.device).count() == 3


def test_rate_limited_scans_leave_a_scan_attempt_and_say_when_to_retry(world, monkeypatch):
    rates(monkeypatch, scan="2/min")
    client = world.client()
    answers = [client.post(VERIFY, {"token": world.token()}, format="json") for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert int(answers[-1]["Retry-After"]) >= 1
    assert list(ScanAttempt.objects.order_by("id").values_list("outcome", flat=True)) == [
        "ok",
        "ok",
        "rate_limited",
    ]


def test_voids_are_rate_limited_too(world, monkeypatch):
    rates(monkeypatch, void="1/min")
    client = world.client()
    first = client.post(REDEEM, body(world.token("subsidized")), format="json").json()["id"]
    second = client.post(REDEEM, body(world.token("subsidized")), format="json").json()["id"]
    assert client.post(f"{REDEEM}{first}/void/", {"reason": "wrong item"}, format="json").status_code == 200
    is_json_error(client.post(f"{REDEEM}{second}/void/", {"reason": "x"}, format="json"), 429, "rate_limited")


def test_the_rate_limit_is_exact_under_concurrency():
    counter = ExactRateMixin()
    # One window for the whole test (a minute's could turn over halfway).
    counter.num_requests, counter.duration, counter.scope = 120, 10**9, "test"
    key = f"exact-test:{uuid.uuid4().hex}"
    allowed = []
    lock = threading.Lock()
    barrier = threading.Barrier(16)

    def scan():
        barrier.wait()
        for _ in range(15):
            passed = counter.within_rate(key)
            with lock:
                allowed.append(passed)

    threads = [threading.Thread(target=scan) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(allowed) == 240
    assert sum(allowed) == 120


# --- idempotency per device ---------------------------------------------------------------------


def test_two_peoples_phones_picking_the_same_key_record_two_services(world):
    other_staff = StaffMemberFactory(provider=world.staff.provider)
    _, other_token = register_device(user=other_staff.user, name="their phone")
    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Bearer {other_token}")
    same = body(world.token("subsidized"), key="same-key-0001")
    assert world.client().post(REDEEM, same, format="json").status_code == 201
    assert other.post(REDEEM, same, format="json").status_code == 201
    assert world.client().post(REDEEM, same, format="json").status_code == 200
    assert Redemption.objects.count() == 2


def test_a_phone_signed_in_again_resends_its_queue_without_recording_twice(world):
    """A new sign-in is a new device; the keys are the person's, so the resend is a replay."""
    same = body(world.token("subsidized"), key="queued-key-0001")
    first = world.client().post(REDEEM, same, format="json")
    assert first.status_code == 201
    _, again_token = register_device(user=world.staff.user, name="the same phone, signed in again")
    again = APIClient()
    again.credentials(HTTP_AUTHORIZATION=f"Bearer {again_token}")
    resent = again.post(REDEEM, same, format="json")
    assert resent.status_code == 200 and resent.json()["id"] == first.json()["id"]
    assert Redemption.objects.count() == 1


# --- confirmation of what the senior pays ---------------------------------------------------------


def test_a_service_the_balance_does_not_cover_is_recorded_only_once_confirmed(world):
    ContractItemFactory(
        contract=world.contract,
        service_item=ServiceItemFactory(code="repair", name="家电维修", unit="visit"),
        unit_price="400.00",
    )
    voucher = world.vouchers["subsidized"]
    Voucher.objects.filter(pk=voucher.pk).update(balance=Decimal("168.00"))
    client = world.client()
    request = body(world.token("subsidized"), item="repair")
    asked = client.post(REDEEM, request, format="json")
    data = is_json_error(asked, 409, "confirmation_required")
    assert data["quote"] == {
        "amount": "400.00",
        "government_share": "168.00",
        "senior_share": "232.00",
        "remaining_balance": "0.00",
        "shortfall": "232.00",
    }
    assert "232.00" in data["detail"]
    assert not Redemption.objects.exists() and balance_of(voucher) == Decimal("168.00")
    wrong = client.post(REDEEM, {**request, "confirm_senior_share": "200.00"}, format="json")
    is_json_error(wrong, 409, "confirmation_required")
    done = client.post(REDEEM, {**request, "confirm_senior_share": "232.00"}, format="json")
    assert done.status_code == 201, done.content
    assert done.json()["senior_share"] == "232.00" and balance_of(voucher) == Decimal("0.00")


def test_per_hour_items_are_checked_in_not_redeemed(world):
    data = is_json_error(
        world.client().post(REDEEM, body(world.token("subsidized"), item="cleaning"), format="json"),
        409,
        "use_check_in",
    )
    assert "签到" in data["detail"] or "check in" in data["detail"]


# --- after the commit ----------------------------------------------------------------------------


def test_a_failure_after_the_commit_says_recorded_never_nothing_changed(world, monkeypatch):
    def broken(result):
        raise RuntimeError("rendering failed")

    monkeypatch.setattr(vouchers_api, "_redemption_body", broken)
    client = world.client()
    client.raise_request_exception = False
    response = client.post(REDEEM, body(world.token("subsidized")), format="json")
    data = is_json_error(response, 500, "server_error_recorded")
    assert data["recorded"] is True
    assert Redemption.objects.count() == 1
    assert ScanAttempt.objects.get().outcome == "ok"


def test_a_failure_before_the_commit_does_not_claim_either_way(world, monkeypatch):
    def broken(**kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(vouchers_api.services, "redeem", broken)
    client = world.client()
    client.raise_request_exception = False
    data = is_json_error(
        client.post(REDEEM, body(world.token("subsidized")), format="json"), 500, "server_error"
    )
    assert data["recorded"] is None
    assert "nothing was changed" not in data["detail"] and "未作任何更改" not in data["detail"]


def test_a_check_out_past_the_maximum_leaves_one_scan_record(world):
    from vouchers.models import Visit

    client = world.client()
    token = world.token("subsidized")
    opened = client.post(
        "/api/v1/visits/check-in/",
        {"token": token, "service_item": "cleaning", "idempotency_key": "in-over-01"},
        format="json",
    )
    visit = Visit.objects.get(pk=opened.json()["id"])
    Visit.objects.filter(pk=visit.pk).update(
        started_at=visit.started_at - timedelta(hours=5), deadline=visit.deadline - timedelta(hours=5)
    )
    answer = client.post(
        f"/api/v1/visits/{visit.pk}/check-out/",
        {"token": token, "idempotency_key": "out-over-01"},
        format="json",
    )
    is_json_error(answer, 409, "visit_overdue")
    assert list(ScanAttempt.objects.filter(action="check_out").values_list("outcome", flat=True)) == [
        "visit_overdue"
    ]
    assert Visit.objects.get(pk=visit.pk).status == Visit.Status.OVERDUE


def test_the_scan_answer_is_what_the_schema_serializer_says(world):
    """`redemption_json` builds the answer without DRF's serializer; they must not drift apart."""
    from tests.vouchers.conftest import NOW
    from vouchers import services

    client = world.client()
    client.post(REDEEM, body(world.token("subsidized")), format="json")
    now = NOW
    visit = services.check_in(
        token=world.token("subsidized"),
        service_item_code="cleaning",
        idempotency_key="in-json-01",
        staff=world.staff,
        now=now - timedelta(minutes=70),
    ).visit
    services.check_out(visit_id=visit.pk, token=world.token("subsidized"), idempotency_key="out-json-01",
                       staff=world.staff, now=now)  # fmt: skip
    assert Redemption.objects.filter(started_at__isnull=False).count() == 1
    for redemption in Redemption.objects.select_related("service_item", "voucher__senior"):
        assert vouchers_api.redemption_json(redemption) == dict(
            vouchers_api.RedemptionSerializer(redemption).data
        )
