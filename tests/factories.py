"""factory_boy factories for the domain. Every generated ID-card number and credit code is valid."""

import datetime as dt
import itertools
from decimal import Decimal

import factory
from django.contrib.auth import get_user_model
from djmoney.money import Money
from stdnum.cn import ric, uscc

from eligibility.models import Region, Senior
from providers.models import Contract, ContractItem, Provider, ServiceItem, StaffMember

_serial = itertools.count(1)


def make_id_card_number(*, birth_date: dt.date = dt.date(1945, 3, 1), sex: str = "F", serial=None) -> str:
    """A valid 18-character resident ID (Hangzhou Xihu district), sex by the 17th digit's parity."""
    serial = next(_serial) if serial is None else serial
    sequence = (serial % 500) * 2 + (1 if sex == "M" else 0)  # odd = male
    body = f"330106{birth_date:%Y%m%d}{sequence:03d}"
    return body + ric.calc_check_digit(body + "0")  # it expects a placeholder check digit


def make_credit_code(serial: int) -> str:
    body = f"91330106MA{serial:07d}"
    return body + uscc.calc_check_digit(body)


class RegionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Region
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"R{n:06d}")
    name = factory.Sequence(lambda n: f"区域{n}")
    level = Region.Level.DISTRICT
    parent = None


def make_community(code_prefix="T") -> Region:
    district = RegionFactory(code=f"{code_prefix}D", name="西湖区", level=Region.Level.DISTRICT)
    subdistrict = RegionFactory(
        code=f"{code_prefix}S", name="北山街道", level=Region.Level.SUBDISTRICT, parent=district
    )
    return RegionFactory(
        code=f"{code_prefix}C", name="保俶社区", level=Region.Level.COMMUNITY, parent=subdistrict
    )


class SeniorFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Senior

    birth_date = dt.date(1945, 3, 1)
    sex = Senior.Sex.FEMALE
    id_card_number = factory.LazyAttribute(lambda o: make_id_card_number(birth_date=o.birth_date, sex=o.sex))
    name = factory.Sequence(lambda n: f"王秀{n}英")
    community = factory.LazyFunction(make_community)
    status_date = dt.date(2020, 1, 1)


class ServiceItemFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ServiceItem
        django_get_or_create = ("code",)

    code = "cleaning"
    name = "助洁"
    name_en = "Cleaning"
    unit = ServiceItem.Unit.HOUR
    category = ServiceItem.Category.CARE


class ProviderFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Provider
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"prov{n}")
    name = factory.Sequence(lambda n: f"康乐家政{n}")
    credit_code = factory.Sequence(make_credit_code)


class ContractFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Contract
        skip_postgeneration_save = True

    provider = factory.SubFactory(ProviderFactory)
    number = factory.Sequence(lambda n: f"HC-2026-{n:04d}")
    starts_on = dt.date(2020, 1, 1)
    ends_on = dt.date(2099, 12, 31)

    @factory.post_generation
    def area(self, create, extracted, **kwargs):
        if create and extracted:
            self.service_area.set(extracted)


class ContractItemFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ContractItem

    contract = factory.SubFactory(ContractFactory)
    service_item = factory.SubFactory(ServiceItemFactory)
    unit_price = Money(Decimal("40.00"), "CNY")


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("pw-for-tests-1")


class StaffMemberFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = StaffMember

    user = factory.SubFactory(UserFactory)
    provider = factory.SubFactory(ProviderFactory)
    employee_number = factory.Sequence(lambda n: f"E{n:04d}")
    display_name = factory.Sequence(lambda n: f"李师傅{n}")


def make_priced_contract(*, area, provider=None) -> Contract:
    """A contract covering `area` with the two items most tests scan: cleaning ¥40/h, meals ¥15."""
    contract = ContractFactory(area=area, **({"provider": provider} if provider else {}))
    ContractItemFactory(
        contract=contract, service_item=ServiceItemFactory(), unit_price=Money("40.00", "CNY")
    )
    ContractItemFactory(
        contract=contract,
        service_item=ServiceItemFactory(code="meal", name="助餐", name_en="Meal", unit="meal"),
        unit_price=Money("15.00", "CNY"),
    )
    return contract
