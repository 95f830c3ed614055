"""A small city for settlement tests, built through the real services.

Seniors are registered and evaluated under the default policy, vouchers issued for October 2026,
and services recorded with `redeem` back-dated into that month, so every redemption is priced by
the same code path as in production.
"""

import datetime as dt
import uuid
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from djmoney.money import Money

from config.months import SHANGHAI
from eligibility.services import ensure_default_policy, evaluate_eligibility, register_senior
from tests.factories import (
    ContractFactory,
    ContractItemFactory,
    ProviderFactory,
    ServiceItemFactory,
    StaffMemberFactory,
    UserFactory,
    make_community,
    make_id_card_number,
)
from vouchers.models import Voucher
from vouchers.services import issue_vouchers, redeem, void_redemption
from vouchers.tokens import voucher_token

MONTH = dt.date(2026, 10, 1)


def at(day: int, hour: int = 10, month: dt.date = MONTH) -> dt.datetime:
    """A moment of the settlement month, in Shanghai time."""
    return dt.datetime(month.year, month.month, day, hour, tzinfo=SHANGHAI)


class City:
    """Three seniors (one per tier), three providers (C has a contract but does no work)."""

    def __init__(self, *, month: dt.date = MONTH, senior_names=None, provider_names=None):
        ensure_default_policy()
        self.month = month
        self.community = make_community()
        self.cleaning = ServiceItemFactory(code="cleaning", name="助洁", name_en="Cleaning", unit="hour")
        self.meal = ServiceItemFactory(code="meal", name="助餐", name_en="Meal", unit="meal")
        names = senior_names or {}
        facts = {
            "subsidized": {"three_no": True},
            "low_fee": {
                "living_arrangement": "empty_nest",
                "children_in_city": False,
                "self_care": "disabled",
            },
            "paid": {},
        }
        self.seniors = {
            tier: register_senior(
                id_card_number=make_id_card_number(serial=900 + i),
                name=names.get(tier, f"张{tier[:1]}明"),
                community=self.community,
                status_date=dt.date(2020, 1, 1),
                **facts[tier],
            )
            for i, tier in enumerate(facts)
        }
        evaluate_eligibility(as_of=month)
        issue_vouchers(period=month, now=at(1, 0, month))
        self.vouchers = {
            tier: Voucher.objects.get(senior=senior, period=month) for tier, senior in self.seniors.items()
        }
        provider_names = provider_names or {}
        self.providers = {}
        self.staff = {}
        for code in ("prov-a", "prov-b", "prov-c"):
            provider = ProviderFactory(
                code=code, name=provider_names.get(code, f"康乐家政{code[-1].upper()}")
            )
            contract = ContractFactory(provider=provider, area=[self.community])
            ContractItemFactory(
                contract=contract, service_item=self.cleaning, unit_price=Money(Decimal("40.00"), "CNY")
            )
            ContractItemFactory(
                contract=contract, service_item=self.meal, unit_price=Money(Decimal("15.00"), "CNY")
            )
            self.providers[code] = provider
            self.staff[code] = StaffMemberFactory(provider=provider)

    def serve(self, *, tier: str, provider: str = "prov-a", item: str = "cleaning", quantity="1", day=5):
        """Record one service through `redeem`, as a staff member's scan on `day` of the month."""
        return redeem(
            token=voucher_token(self.vouchers[tier]),
            service_item_code=item,
            quantity=Decimal(quantity),
            idempotency_key=uuid.uuid4().hex,
            staff=self.staff[provider],
            now=at(day, month=self.month),
        ).redemption

    def void(self, redemption, *, day=20):
        return void_redemption(
            redemption_id=redemption.pk,
            reason="服务未发生",
            user=self.staff[redemption.provider.code].user,
            now=at(day, month=self.month),
        )


@pytest.fixture
def city(db):
    return City()


@pytest.fixture
def finance_user(db):
    user = UserFactory(username="finance-tester")
    user.groups.add(Group.objects.get_or_create(name="finance")[0])
    return user
