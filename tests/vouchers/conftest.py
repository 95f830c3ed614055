"""A small world for voucher tests: a community, the default policy, a contracted provider, a
staff member with a signed-in device, and seniors of each tier with this month's vouchers."""

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from eligibility.models import Region
from eligibility.services import ensure_default_policy, evaluate_eligibility, register_senior
from providers.services import register_device
from tests.factories import (
    StaffMemberFactory,
    make_community,
    make_id_card_number,
    make_priced_contract,
)
from vouchers.models import Voucher
from vouchers.services import issue_vouchers
from vouchers.tokens import voucher_token

# A fixed "now" in the middle of a month, Asia/Shanghai.
NOW = dt.datetime(2026, 11, 16, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
MONTH = dt.date(2026, 11, 1)
REDEEM = "/api/v1/redemptions/"
CHECK_IN = "/api/v1/visits/check-in/"


@dataclass
class World:
    community: Region
    other_community: Region
    staff: object
    device: object
    device_token: str
    contract: object
    vouchers: dict  # tier code -> Voucher

    def token(self, tier="low_fee") -> str:
        return voucher_token(self.vouchers[tier])

    def client(self, language="zh-hans") -> APIClient:
        client = APIClient(HTTP_ACCEPT_LANGUAGE=language)
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {self.device_token}")
        return client


def build_world(now=NOW) -> World:
    ensure_default_policy()
    community = make_community("W")
    other_community = make_community("Z")  # a different district, outside the contract's area
    seniors = {
        "subsidized": register_senior(
            id_card_number=make_id_card_number(birth_date=dt.date(1940, 5, 1)),
            name="张秀兰",
            community=community,
            three_no=True,
        ),
        "low_fee": register_senior(
            id_card_number=make_id_card_number(birth_date=dt.date(1950, 5, 1)),
            name="李建国",
            community=community,
            living_arrangement="empty_nest",
            children_in_city=False,
            self_care="disabled",
        ),
        "paid": register_senior(
            id_card_number=make_id_card_number(birth_date=dt.date(1955, 5, 1)),
            name="王芳",
            community=community,
        ),
        "far_away": register_senior(
            id_card_number=make_id_card_number(birth_date=dt.date(1948, 5, 1)),
            name="赵强",
            community=other_community,
            three_no=True,
        ),
    }
    evaluate_eligibility(as_of=MONTH)
    issue_vouchers(period=MONTH, now=now)
    contract = make_priced_contract(area=[community.parent])  # the subdistrict covers the community
    staff = StaffMemberFactory(provider=contract.provider)
    device, raw_token = register_device(user=staff.user, name="test phone")
    vouchers = {tier: Voucher.objects.get(senior=senior, period=MONTH) for tier, senior in seniors.items()}
    return World(community, other_community, staff, device, raw_token, contract, vouchers)


@pytest.fixture
def world(db, monkeypatch) -> World:
    monkeypatch.setattr("django.utils.timezone.now", lambda: NOW)
    return build_world()


def balance_of(voucher) -> Decimal:
    return Voucher.objects.get(pk=voucher.pk).balance.amount


def scan_and_confirm(client, body, url=REDEEM):
    """Send a recording scan as the scanner does: when the senior pays a share (409
    `confirmation_required`), the staff member confirms the quoted share and the same request
    goes again with `confirm_senior_share`. Returns the final response, with the quote asked
    for, if one was, as `response.quote` (None otherwise)."""
    response = client.post(url, body, format="json")
    quote = None
    if response.status_code == 409 and response.json().get("code") == "confirmation_required":
        quote = response.json()["quote"]
        response = client.post(url, {**body, "confirm_senior_share": quote["senior_share"]}, format="json")
    response.quote = quote
    return response


def check_in_and_out(world, monkeypatch, *, minutes, tier="low_fee", item="cleaning", key="visit-0001"):
    """An item priced per hour as the scanner records it: check in at the senior's door now,
    then, `minutes` later (the clock is left there), check out scanning the card again,
    confirming the senior's share if asked. Returns the check-out's response."""
    client = world.client()
    checked_in = client.post(
        CHECK_IN,
        {"token": world.token(tier), "service_item": item, "idempotency_key": f"{key}-in"},
        format="json",
    )
    assert checked_in.status_code == 201, checked_in.content
    departure = timezone.now() + dt.timedelta(minutes=minutes)
    monkeypatch.setattr("django.utils.timezone.now", lambda: departure)
    return scan_and_confirm(
        client,
        {"token": world.token(tier), "idempotency_key": f"{key}-out"},
        url=f"/api/v1/visits/{checked_in.json()['id']}/check-out/",
    )
