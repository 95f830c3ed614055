"""Fixtures for the end-to-end page tests: one user per role, and a senior with this month's
voucher on which one service counts and one was voided, all made through the real services."""

import datetime as dt
import os
import uuid
from dataclasses import dataclass
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone

from config.months import month_of
from config.roles import ROLE_NAMES
from eligibility.models import RegionScope
from eligibility.services import ensure_default_policy, evaluate_eligibility, register_senior
from tests.factories import (
    ProviderFactory,
    StaffMemberFactory,
    UserFactory,
    make_community,
    make_id_card_number,
    make_priced_contract,
)
from vouchers.models import Voucher
from vouchers.services import issue_vouchers, redeem, void_redemption
from vouchers.tokens import voucher_token

# Playwright's sync API runs an event loop in the test thread, where the test also uses the ORM.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

PASSWORD = "pw-for-tests-1"  # UserFactory's password
ACCOUNT_CONTEXT = "config.views.account_context"


def make_user(username: str, *roles: str, region=None, **fields):
    """A user in the role groups, working in `region` (a RegionScope) when one is given."""
    user = UserFactory(username=username, **fields)
    for role in roles:
        user.groups.add(Group.objects.get_or_create(name=role)[0])
    if region is not None:
        RegionScope.objects.create(user=user, region=region)
    return user


@pytest.fixture
def role_users(db) -> dict:
    """A user per role, named as people are (the home page greets them by name), with the
    permissions `migrate` gave the role groups; the worker and officer work in the community of
    `make_community("E")` and its subdistrict (where `senior_voucher` lives)."""
    names = {
        "bureau": "王秀英",
        "officer": "郑国华",
        "worker": "陈丽",
        "provider": "赵经理",
        "staff": "李师傅",
        "finance": "孙会计",
    }
    users = {
        role: make_user(role, role, first_name=names[role], is_staff=role == "bureau") for role in ROLE_NAMES
    }
    community = make_community("E")
    RegionScope.objects.create(user=users["worker"], region=community)
    RegionScope.objects.create(user=users["officer"], region=community.parent)
    return users


@dataclass
class SeniorVoucher:
    senior: object
    voucher: Voucher
    token: str
    provider: object

    def url(self) -> str:
        return f"/v/{self.token}/"


def serve_cleaning_and_a_voided_meal(*, token: str, staff, now) -> None:
    """On the voucher of `token`: 2 hours of cleaning that count, and a meal that was voided."""
    for item, quantity in (("cleaning", "2"), ("meal", "1")):
        result = redeem(
            token=token,
            service_item_code=item,
            quantity=Decimal(quantity),
            idempotency_key=uuid.uuid4().hex,
            staff=staff,
            now=now,
        )
    void_redemption(redemption_id=result.redemption.pk, reason="送错了", user=staff.user, now=now)


def build_senior_voucher() -> SeniorVoucher:
    """李建国 (low fee: 70 % government share, ¥200 a month) had 2 hours of cleaning at ¥40 an
    hour this month (¥56 from the voucher, ¥24 paid by him) and a meal that was voided."""
    ensure_default_policy()
    now = timezone.now()
    community = make_community("E")
    senior = register_senior(
        id_card_number=make_id_card_number(birth_date=dt.date(1950, 5, 1)),
        name="李建国",
        community=community,
        living_arrangement="empty_nest",
        children_in_city=False,
        self_care="disabled",
    )
    evaluate_eligibility(as_of=timezone.localdate())
    issue_vouchers(period=month_of(now), now=now)
    voucher = Voucher.objects.get(senior=senior, period=month_of(now))
    provider = ProviderFactory(code="kangle", name="康乐家政", name_en="Kangle Home Services")
    make_priced_contract(provider=provider, area=[community])
    staff = StaffMemberFactory(provider=provider)
    token = voucher_token(voucher)
    serve_cleaning_and_a_voided_meal(token=token, staff=staff, now=now)
    voucher.refresh_from_db()
    return SeniorVoucher(senior=senior, voucher=voucher, token=token, provider=provider)


@pytest.fixture
def senior_voucher(db) -> SeniorVoucher:
    return build_senior_voucher()


@pytest.fixture
def live_senior_voucher(transactional_db) -> SeniorVoucher:
    """The same, committed, for a browser talking to `live_server` from another thread."""
    return build_senior_voucher()
