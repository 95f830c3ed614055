"""The demo city behind `manage.py demo`: a district of Hangzhou with a month ended (for finance to
settle) and one under way.

Everything goes through the real services (registration, evaluation, issuance, redemption, void),
so the demo shows what production would have recorded. It sits on top of every app
and nothing imports it; roles come from `setup_roles`, as in production.

Idempotent: rows are found by their natural keys (region code, item and provider code, contract
number, username, ID-card number); last month is evaluated and issued only if it has no vouchers
yet, and served only while it is still open; redemptions carry deterministic idempotency keys
(`demo-YYYY-MM-NNNN`) and keys already recorded are skipped. Random choices come from generators
seeded with constants, so every run plans the same city.
"""

import datetime as dt
import random
from dataclasses import dataclass, field
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction
from django.utils import timezone
from djmoney.money import Money
from stdnum.cn import ric, uscc

from billing.models import SettlementPeriod
from config import roles
from config.months import format_month, local_date, month_bounds, month_of, previous_month
from config.roles import setup_roles
from demo.carevisits import ensure_care_visits
from eligibility.models import Region, Senior
from eligibility.selectors import scope_region
from eligibility.services import (
    assign_region_scope,
    ensure_default_policy,
    evaluate_eligibility,
    register_senior,
)
from providers.models import Contract, ContractItem, Provider, ServiceItem, StaffMember
from vouchers.models import Redemption, RedemptionVoid, Voucher
from vouchers.services import check_in, check_out, issue_vouchers, redeem, void_redemption
from vouchers.tokens import voucher_token

PASSWORD = "demo-pass-2025"  # noqa: S105 - the published demo password (DESIGN.md §5)
CURRENCY = "CNY"
SENIOR_COUNT = 300
LAST_MONTH_REDEMPTIONS = 240
KEY_PREFIX = "demo"

# --- Regions ------------------------------------------------------------------------------------

DISTRICT = ("330106", "西湖区", "Xihu District")
SUBDISTRICTS = [
    (
        ("330106001", "北山街道", "Beishan Subdistrict"),
        [("330106001001", "保俶社区", "Baochu Community"), ("330106001002", "宝石社区", "Baoshi Community")],
    ),
    (
        ("330106002", "西溪街道", "Xixi Subdistrict"),
        [
            ("330106002001", "求是社区", "Qiushi Community"),
            ("330106002002", "曙光社区", "Shuguang Community"),
        ],
    ),
    (
        ("330106004", "翠苑街道", "Cuiyuan Subdistrict"),
        [
            ("330106004001", "翠苑一区社区", "Cuiyuan No. 1 Community"),
            ("330106004002", "嘉绿苑社区", "Jialüyuan Community"),
        ],
    ),
]

# Each community's contact for its seniors (printed on their cards): the demo worker of 保俶社区
# is 陈晓燕; the others are names the demo has no login for.
COMMUNITY_CONTACTS = {
    "330106001001": ("陈晓燕", "0571-87991001"),
    "330106001002": ("周丽萍", "0571-87991002"),
    "330106002001": ("吴海燕", "0571-87992001"),
    "330106002002": ("郑国强", "0571-87992002"),
    "330106004001": ("孙美华", "0571-87994001"),
    "330106004002": ("钱文静", "0571-87994002"),
}

# --- Service catalogue (DESIGN.md §4.6) ---------------------------------------------------------

Unit, Category = ServiceItem.Unit, ServiceItem.Category
CATALOGUE = [
    ("meal", "助餐", "Meal", Unit.MEAL, Category.CARE),
    ("cleaning", "助洁", "Cleaning", Unit.HOUR, Category.CARE),
    ("bathing", "助浴", "Bathing", Unit.VISIT, Category.CARE),
    ("medical_escort", "助医", "Medical escort", Unit.VISIT, Category.CARE),
    ("walking_aid", "助行", "Walking aid", Unit.HOUR, Category.CARE),
    ("emergency", "助急", "Emergency help", Unit.VISIT, Category.CARE),
    ("cooking", "上门做饭", "Cooking", Unit.VISIT, Category.HOUSEKEEPING),
    ("laundry", "衣物清洗", "Laundry", Unit.VISIT, Category.HOUSEKEEPING),
    ("appliance_repair", "家电维修", "Appliance repair", Unit.VISIT, Category.HOUSEKEEPING),
    ("pipe_clearing", "管道疏通", "Pipe clearing", Unit.VISIT, Category.HOUSEKEEPING),
    ("errands", "代购代办", "Shopping and errands", Unit.VISIT, Category.ERRANDS),
    ("companionship", "聊天陪伴", "Companionship", Unit.HOUR, Category.COMPANIONSHIP),
]

# --- Providers ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProviderPlan:
    code: str
    name: str
    name_en: str
    # Registration authority and entity type (91 = enterprise, 52 = private non-enterprise unit)
    # and the 8 characters of the organisation code before its own check character.
    credit_prefix: str
    org_code: str
    phone: str
    area: tuple[str, ...]  # region codes; a subdistrict covers its communities
    prices: dict[str, str]  # service item code -> unit price in CNY
    staff: tuple[tuple[str, str], ...]  # (employee number, display name); the first is a login
    username_stem: str = ""


PROVIDERS = [
    ProviderPlan(
        code="kangle",
        name="杭州西湖康乐居家养老服务有限公司",
        name_en="Hangzhou Xihu Kangle Home Care Co., Ltd.",
        credit_prefix="91",
        org_code="MA2H7K3Q",
        phone="0571-87061234",
        area=("330106001", "330106002"),
        prices={
            "meal": "15.00",
            "cleaning": "40.00",
            "bathing": "60.00",
            "medical_escort": "50.00",
            "walking_aid": "35.00",
            "emergency": "80.00",
            "cooking": "30.00",
            "laundry": "25.00",
            "appliance_repair": "50.00",
            "pipe_clearing": "60.00",
            "errands": "20.00",
            "companionship": "30.00",
        },
        staff=(("KL-001", "李红梅"), ("KL-002", "王建军"), ("KL-003", "陈丽华")),
    ),
    ProviderPlan(
        code="yihe",
        name="西湖区颐和助老服务中心",
        name_en="Xihu Yihe Senior Care Centre",
        credit_prefix="52",
        org_code="MJ9T2B5L",
        phone="0571-88152468",
        area=("330106002001", "330106004"),
        prices={
            "meal": "14.00",
            "bathing": "58.00",
            "medical_escort": "45.00",
            "walking_aid": "32.00",
            "emergency": "75.00",
            "errands": "18.00",
            "companionship": "28.00",
        },
        staff=(("YH-001", "刘志强"), ("YH-002", "赵春燕")),
    ),
    ProviderPlan(
        code="nuanyang",
        name="杭州暖阳家政服务有限公司",
        name_en="Hangzhou Nuanyang Housekeeping Co., Ltd.",
        credit_prefix="91",
        org_code="MA8P4R6W",
        phone="0571-85203366",
        area=("330106004", "330106001001"),
        prices={
            "meal": "16.00",
            "cleaning": "42.00",
            "cooking": "32.00",
            "laundry": "24.00",
            "appliance_repair": "55.00",
            "pipe_clearing": "65.00",
            "errands": "20.00",
            "companionship": "30.00",
        },
        staff=(("NY-001", "孙伟"), ("NY-002", "周美玲")),
    ),
]

# How often each item is asked for: meals and cleaning dominate, repairs are rare.
ITEM_WEIGHTS = {
    "meal": 8,
    "cleaning": 6,
    "companionship": 3,
    "bathing": 2,
    "medical_escort": 2,
    "walking_aid": 2,
    "cooking": 2,
    "laundry": 2,
    "errands": 2,
    "appliance_repair": 1,
    "pipe_clearing": 1,
    "emergency": 1,
}
HOURS = [Decimal("1"), Decimal("1.5"), Decimal("2"), Decimal("2"), Decimal("3")]
MEALS = [Decimal("1"), Decimal("1"), Decimal("1"), Decimal("2")]
VOID_REASONS = ["录入有误，服务项目选错", "老人临时外出，服务未完成", "重复扫码"]

# --- Users (DESIGN.md §5) -----------------------------------------------------------------------


@dataclass(frozen=True)
class LoginPlan:
    username: str
    role: str
    full_name: str
    is_staff: bool = False
    is_superuser: bool = False
    region: str = ""  # the code of the region a bureau, officer or worker login works in


LOGINS = [
    LoginPlan("bureau", roles.BUREAU, "周立新", is_staff=True, is_superuser=True),
    LoginPlan("officer", roles.OFFICER, "郑国华", region="330106001"),
    LoginPlan("worker", roles.WORKER, "陈晓燕", region="330106001001"),
    LoginPlan("provider", roles.PROVIDER, "吴海峰"),
    LoginPlan("staff", roles.STAFF, "李红梅"),
    LoginPlan("finance", roles.FINANCE, "钱丽娟"),
    LoginPlan("finance2", roles.FINANCE, "孙建华"),
]
# --- Seniors ------------------------------------------------------------------------------------

SURNAMES = "王陈张李吴徐周黄沈朱胡杨刘金钱俞施孙何方蒋章郑楼马邵叶潘应姚汪许蔡程袁赵戴丁陆范顾高宋谢林傅"
GIVEN_MALE = [
    "建国", "国强", "志刚", "德明", "文华", "荣根", "福生", "金财", "海林", "永康", "正明", "长林",
    "根宝", "国平", "伟民", "志华", "明德", "宝林", "水根", "阿毛", "炳荣", "耀祖", "兴发", "云龙",
    "明", "强", "军", "华",
]  # fmt: skip
GIVEN_FEMALE = [
    "秀英", "桂英", "玉兰", "凤英", "素珍", "美华", "丽华", "月娥", "杏娣", "彩凤", "金娣", "爱珍",
    "秀珍", "淑芬", "梅芳", "桂芳", "银花", "小妹", "翠娥", "菊英", "阿娟", "雅琴", "宝娣", "惠芬",
    "芳", "英", "萍", "琴",
]  # fmt: skip


@dataclass(frozen=True)
class Profile:
    """A kind of senior: the facts the rules read, and the birth years that fit them.

    Tier and care-visit class follow from the default policy (eligibility/default_policy.py); the
    comment on each profile says which, so a reader can check the demo covers them all.
    """

    code: str
    weight: int
    born: tuple[int, int]
    facts: dict = field(default_factory=dict)


PROFILES = [
    # subsidized, A (disabled)
    Profile(
        "three_no", 3, (1932, 1950), {"three_no": True, "self_care": "disabled", "special_difficulty": True}
    ),
    # subsidized (70+, dependent, no children in the city, 低保), A
    Profile(
        "dibao_dependent",
        3,
        (1935, 1954),
        {
            "receives_dibao": True,
            "receives_civil_affairs_assistance": True,
            "self_care": "disabled",
            "living_arrangement": "empty_nest",
            "children_in_city": False,
            "special_difficulty": True,
        },
    ),
    # subsidized (五老), B (cares for a disabled child)
    Profile("five_old_carer", 2, (1948, 1960), {"five_old": True, "cares_for_disabled_child": True}),
    # subsidized (重点优抚), C
    Profile("special_care", 2, (1940, 1960), {"special_care_recipient": True, "special_difficulty": True}),
    # subsidized (重点优抚), no care-visit class
    Profile("special_care_family", 1, (1945, 1962), {"special_care_recipient": True}),
    # low_fee (empty-nest, dependent), A
    Profile(
        "empty_nest_dependent",
        4,
        (1947, 1960),
        {"living_arrangement": "empty_nest", "children_in_city": False, "self_care": "disabled"},
    ),
    # low_fee (80+, empty-nest, no assistance), A (80+ empty-nest)
    Profile(
        "old_empty_nest", 5, (1928, 1944), {"living_arrangement": "empty_nest", "children_in_city": False}
    ),
    # low_fee (hardship), B (couple, one disabled)
    Profile("hardship_couple", 3, (1950, 1962), {"hardship_assessed": True, "couple_one_disabled": True}),
    # low_fee (hardship), C
    Profile("hardship_special", 3, (1945, 1962), {"hardship_assessed": True, "special_difficulty": True}),
    # low_fee (hardship), no class
    Profile("hardship", 3, (1945, 1965), {"hardship_assessed": True}),
    # paid, A (低保 and living alone)
    Profile(
        "dibao_alone",
        2,
        (1950, 1962),
        {"receives_dibao": True, "receives_civil_affairs_assistance": True, "living_arrangement": "alone"},
    ),
    # paid, B (severely disabled, living alone, under 80)
    Profile(
        "disabled_alone",
        3,
        (1952, 1962),
        {"self_care": "partial", "severely_disabled": True, "living_arrangement": "alone"},
    ),
    # paid, C
    Profile("special_difficulty", 3, (1940, 1965), {"special_difficulty": True}),
    # paid, no class: living with family
    Profile("ordinary", 50, (1930, 1965)),
    Profile("ordinary_partial", 8, (1930, 1960), {"self_care": "partial"}),
]
# Aged 100+ (subsidized), living with family (no class): the one centenarian of the district.
CENTENARIAN = Profile("centenarian", 0, (1925, 1925))


@dataclass(frozen=True)
class SeniorPlan:
    id_card_number: str
    name: str
    community_code: str
    address: str
    facts: dict
    contacts: dict = field(default_factory=dict)


RELATIONS = ["儿子", "女儿", "儿媳", "女婿", "侄子", "邻居", "配偶"]


def _contacts(number: str, surname: str) -> dict:
    """A phone and an emergency contact, drawn from the senior's own seed (the plan stays put)."""
    rng = random.Random(number)
    mobile = f"1{rng.choice('35789')}{rng.randrange(10**9):09d}"
    relation = rng.choice(RELATIONS)
    contact_surname = surname if relation in {"儿子", "女儿", "侄子"} else rng.choice(SURNAMES)
    return {
        "phone": mobile if rng.random() < 0.7 else f"0571-8{rng.randrange(10**6, 10**7)}",
        "emergency_contact_name": contact_surname + rng.choice(GIVEN_MALE + GIVEN_FEMALE),
        "emergency_contact_relation": relation,
        "emergency_contact_phone": f"1{rng.choice('3589')}{rng.randrange(10**9):09d}",
    }


def _id_card_number(birth_date: dt.date, sequence: int) -> str:
    """A GB 11643 number born in Xihu district (330106); the sequence's parity gives the sex."""
    body = f"330106{birth_date:%Y%m%d}{sequence:03d}"
    return body + ric.calc_check_digit(body + "0")  # stdnum expects a placeholder check digit


def senior_plans(count: int = SENIOR_COUNT) -> list[SeniorPlan]:
    """The demo's seniors: the same list on every run (a seeded generator, fixed birth dates).

    The centenarian and one senior of each profile come first, so every tier and care-visit
    class occurs however small `count` is; the rest are drawn by the profiles' weights.
    """
    rng = random.Random(20250601)
    communities = [code for _sub, members in SUBDISTRICTS for code, _name, _en in members]
    names = {code: name for _sub, members in SUBDISTRICTS for code, name, _en in members}
    profiles = [CENTENARIAN, *PROFILES]
    profiles += rng.choices(PROFILES, weights=[p.weight for p in PROFILES], k=max(count - len(profiles), 0))
    plans, used = [], set()
    for profile in profiles[:count]:
        male = rng.random() < 0.45  # women outlive men
        while True:
            start = dt.date(profile.born[0], 1, 1)
            birth_date = start + dt.timedelta(
                days=rng.randrange(365 * (profile.born[1] - profile.born[0] + 1))
            )
            sequence = rng.randrange(0, 100) * 10 + rng.choice([1, 3, 5, 7, 9] if male else [0, 2, 4, 6, 8])
            number = _id_card_number(birth_date, sequence)
            if number not in used:
                used.add(number)
                break
        given = rng.choice(GIVEN_MALE if male else GIVEN_FEMALE)
        community = rng.choice(communities)
        address = (
            f"{names[community]}{rng.randint(1, 30)}幢{rng.randint(1, 4)}单元"
            f"{rng.randint(1, 6)}{rng.randint(1, 4):02d}室"
        )
        surname = rng.choice(SURNAMES)
        plans.append(
            SeniorPlan(
                id_card_number=number,
                name=surname + given,
                community_code=community,
                address=address,
                facts=dict(profile.facts),
                contacts=_contacts(number, surname),
            )
        )
    return plans


# --- Building -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoLogin:
    username: str
    role: str
    provider: Provider | None = None


@dataclass(frozen=True)
class DemoCity:
    this_month: dt.date
    last_month: dt.date
    logins: list[DemoLogin]
    example_voucher: Voucher | None
    counts: dict[str, int]


def ensure_regions() -> dict[str, Region]:
    """The district, its subdistricts and communities, by code."""
    regions = {}
    code, name, name_en = DISTRICT
    district, _ = Region.objects.get_or_create(
        code=code, defaults={"name": name, "name_en": name_en, "level": Region.Level.DISTRICT}
    )
    regions[code] = district
    for (sub_code, sub_name, sub_en), communities in SUBDISTRICTS:
        subdistrict, _ = Region.objects.get_or_create(
            code=sub_code,
            defaults={
                "name": sub_name,
                "name_en": sub_en,
                "level": Region.Level.SUBDISTRICT,
                "parent": district,
            },
        )
        regions[sub_code] = subdistrict
        for com_code, com_name, com_en in communities:
            contact_name, contact_phone = COMMUNITY_CONTACTS[com_code]
            regions[com_code], _ = Region.objects.get_or_create(
                code=com_code,
                defaults={
                    "name": com_name,
                    "name_en": com_en,
                    "level": Region.Level.COMMUNITY,
                    "parent": subdistrict,
                },
            )
            # An older demo database has communities without a contact: give them one.
            Region.objects.filter(code=com_code, contact_phone="").update(
                contact_name=contact_name, contact_phone=contact_phone
            )
    return regions


def ensure_catalogue() -> dict[str, ServiceItem]:
    items = {}
    for code, name, name_en, unit, category in CATALOGUE:
        items[code], _ = ServiceItem.objects.get_or_create(
            code=code, defaults={"name": name, "name_en": name_en, "unit": unit, "category": category}
        )
    return items


def _group(name: str) -> Group:
    return Group.objects.get_or_create(name=name)[0]


def ensure_users(*, regions) -> dict:
    """The fixed logins of DESIGN.md §5, each in its role's group, all with the demo password.

    The groups and their permissions are production's (`setup_roles`); the demo only adds people.
    A password someone changed is set back, so the printed logins always work; the worker works in
    保俶社区 and the officer in 北山街道.
    """
    setup_roles()
    User = get_user_model()
    users = {}
    for plan in LOGINS:
        user, created = User.objects.get_or_create(
            username=plan.username,
            defaults={
                "first_name": plan.full_name,
                "is_staff": plan.is_staff,
                "is_superuser": plan.is_superuser,
            },
        )
        changed = []
        if (user.is_staff, user.is_superuser, user.is_active) != (plan.is_staff, plan.is_superuser, True):
            user.is_staff, user.is_superuser, user.is_active = plan.is_staff, plan.is_superuser, True
            changed += ["is_staff", "is_superuser", "is_active"]
        if created or not user.check_password(PASSWORD):
            user.set_password(PASSWORD)
            changed.append("password")
        if changed:
            user.save(update_fields=changed)
        user.groups.add(_group(plan.role))
        if plan.region and scope_region(user) != regions[plan.region]:
            assign_region_scope(user=user, region=regions[plan.region], by=None)
        users[plan.username] = user
    return users


def _credit_code(plan: ProviderPlan) -> str:
    """A unified social credit code (GB 32100) registered in Xihu, with both of its check characters."""
    # The organisation code's own check character (GB 11714): weights, mod 11, 10 -> X.
    weights = (3, 7, 9, 10, 5, 8, 4, 2)
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    remainder = 11 - sum(alphabet.index(c) * w for c, w in zip(plan.org_code, weights, strict=True)) % 11
    org_check = {10: "X", 11: "0"}.get(remainder, str(remainder))
    body = f"{plan.credit_prefix}330106{plan.org_code}{org_check}"
    return body + uscc.calc_check_digit(body)


@dataclass
class ProviderSetup:
    provider: Provider
    contract: Contract
    area_paths: list[str]
    item_codes: list[str]
    staff: list[StaffMember]  # the scanning staff, login first


def ensure_providers(
    *, regions, items, users, first_month: dt.date, this_month: dt.date
) -> list[ProviderSetup]:
    """Providers with a contract covering last month through next year, priced items, an area and staff.

    The `provider` login manages the first provider and the `staff` login scans for it; the other
    staff have no password (they exist so that redemptions are spread over people).
    """
    User = get_user_model()
    starts_on = first_month.replace(month=1, day=1)
    # Through next year: in December the demo still works for the month ahead (issuance, tests).
    ends_on = this_month.replace(year=this_month.year + 1, month=12, day=31)
    setups = []
    for index, plan in enumerate(PROVIDERS, start=1):
        provider, _ = Provider.objects.get_or_create(
            code=plan.code,
            defaults={
                "name": plan.name,
                "name_en": plan.name_en,
                "credit_code": _credit_code(plan),
                "contact_phone": plan.phone,
            },
        )
        contract = Contract.objects.filter(provider=provider).order_by("starts_on", "id").first()
        if contract is None:
            contract = Contract.objects.create(
                provider=provider,
                number=f"XHMZ-{starts_on.year}-{index:03d}",
                starts_on=starts_on,
                ends_on=ends_on,
            )
            contract.service_area.set([regions[code] for code in plan.area])
        elif contract.ends_on < ends_on:  # a re-run in a later year: the demo contract was extended
            contract.ends_on = ends_on
            contract.save(update_fields=["ends_on"])
        for code, price in plan.prices.items():
            ContractItem.objects.get_or_create(
                contract=contract,
                service_item=items[code],
                defaults={"unit_price": Money(Decimal(price), CURRENCY)},
            )
        staff = []
        for number, (employee_number, display_name) in enumerate(plan.staff):
            if index == 1 and number == 0:
                user = users["staff"]
            else:
                user, created_user = User.objects.get_or_create(
                    username=f"{plan.code}-{employee_number[-3:]}", defaults={"first_name": display_name}
                )
                if created_user or not user.has_usable_password():
                    # Every provider's staff can sign a phone in (an older demo database left
                    # them without a password)
                    user.set_password(PASSWORD)
                    user.save(update_fields=["password"])
                user.groups.add(_group(roles.STAFF))
            member, _ = StaffMember.objects.get_or_create(
                user=user,
                defaults={
                    "provider": provider,
                    "employee_number": employee_number,
                    "display_name": display_name,
                },
            )
            staff.append(member)
        if index == 1:
            # The manager is linked to the provider like its staff, but is in the provider group.
            StaffMember.objects.get_or_create(
                user=users["provider"],
                defaults={"provider": provider, "employee_number": "KL-M01", "display_name": "吴海峰"},
            )
        setups.append(
            ProviderSetup(
                provider=provider,
                contract=contract,
                area_paths=list(contract.service_area.values_list("path", flat=True)),
                item_codes=list(contract.items.values_list("service_item__code", flat=True)),
                staff=staff,
            )
        )
    return setups


def ensure_seniors(*, regions, created_by, registered_on: dt.date) -> list[Senior]:
    """Register the planned seniors not yet registered; returns all of them in plan order."""
    plans = senior_plans()
    numbers = [plan.id_card_number for plan in plans]
    existing = set(Senior.objects.filter(id_card_number__in=numbers).values_list("id_card_number", flat=True))
    for plan in plans:
        if plan.id_card_number not in existing:
            register_senior(
                id_card_number=plan.id_card_number,
                name=plan.name,
                community=regions[plan.community_code],
                status_date=registered_on,
                created_by=created_by,
                address=plan.address,
                **plan.contacts,
                **plan.facts,
            )
    by_number = Senior.objects.select_related("community").in_bulk(numbers, field_name="id_card_number")
    return [by_number[number] for number in numbers]


@dataclass(frozen=True)
class PlannedRedemption:
    key: str
    voucher: Voucher
    setup: ProviderSetup
    staff: StaffMember
    item_code: str
    quantity: Decimal
    served_at: dt.datetime


def _service_moment(rng, *, month: dt.date, earliest: dt.datetime, until: dt.datetime) -> dt.datetime:
    """A plausible time of service (08:00–19:59 on a day of the month) in [earliest, until)."""
    start, _end = month_bounds(month)
    final_day = local_date(until - dt.timedelta(microseconds=1))  # the month's last day, or today
    day = rng.randint(1, final_day.day)
    moment = start.replace(
        day=day, hour=rng.randint(8, 19), minute=rng.randint(0, 59), second=rng.randint(0, 59)
    )
    if earliest <= moment < until:
        return moment
    # Later today than now, or before the vouchers were issued: any moment in between instead.
    return earliest + (until - earliest) * rng.random()


def plan_redemptions(
    *, month: dt.date, count: int, seniors, setups, earliest: dt.datetime, until: dt.datetime
) -> list[PlannedRedemption]:
    """`count` services in `month`, each by a provider whose area covers the senior's community.

    Each key has its own seeded generator, so the plan for a key never depends on the others.
    Seniors with a subsidy use services more, as they do in life.
    """
    vouchers = {
        v.senior_id: v for v in Voucher.objects.filter(period=month, senior__in=[s.pk for s in seniors])
    }
    candidates = []
    for senior in seniors:
        voucher = vouchers.get(senior.pk)
        covering = [s for s in setups if any(senior.community.path.startswith(p) for p in s.area_paths)]
        if voucher is not None and covering:
            weight = {"subsidized": 5, "low_fee": 4}.get(voucher.tier_code, 1)
            candidates.append((voucher, covering, weight))
    if not candidates:
        return []
    weights = [weight for _v, _c, weight in candidates]
    plans = []
    for n in range(1, count + 1):
        key = f"{KEY_PREFIX}-{format_month(month)}-{n:04d}"
        rng = random.Random(key)
        voucher, covering, _weight = rng.choices(candidates, weights=weights)[0]
        # A senior mostly stays with one provider: the first covering one, now and then another.
        setup = covering[voucher.senior_id % len(covering)] if rng.random() < 0.8 else rng.choice(covering)
        codes = setup.item_codes
        item_code = rng.choices(codes, weights=[ITEM_WEIGHTS.get(c, 1) for c in codes])[0]
        unit = next(u for c, _n, _e, u, _cat in CATALOGUE if c == item_code)
        quantity = {Unit.HOUR: rng.choice(HOURS), Unit.MEAL: rng.choice(MEALS)}.get(unit, Decimal("1"))
        plans.append(
            PlannedRedemption(
                key=key,
                voucher=voucher,
                setup=setup,
                staff=rng.choice(setup.staff),
                item_code=item_code,
                quantity=quantity,
                served_at=_service_moment(rng, month=month, earliest=earliest, until=until),
            )
        )
    # Recorded in the order they happened, so balances run down as they would have.
    return sorted(plans, key=lambda plan: plan.served_at)


def _record(plan: PlannedRedemption, *, until: dt.datetime) -> Redemption:
    """One planned service, recorded as a scanner would: an hourly one by check-in at its start
    and check-out a few minutes past its hours (rounded back to them), a per-visit one at once."""
    token = voucher_token(plan.voucher)
    unit = next(u for c, _n, _e, u, _cat in CATALOGUE if c == plan.item_code)
    length = dt.timedelta(hours=float(plan.quantity), minutes=random.Random(plan.key).randrange(0, 12))
    # A visit still going on now (`until`) has lasted until now; one too short to bill yet
    # (just begun, in the demo's first minutes of a month) is recorded with its hours.
    end = min(plan.served_at + length, until - dt.timedelta(seconds=1))
    if unit != Unit.HOUR or end - plan.served_at < dt.timedelta(minutes=15):
        return redeem(
            token=token,
            service_item_code=plan.item_code,
            quantity=plan.quantity,
            idempotency_key=plan.key,
            staff=plan.staff,
            now=plan.served_at,
        ).redemption
    visit = check_in(
        token=token,
        service_item_code=plan.item_code,
        idempotency_key=f"{plan.key}-in",
        staff=plan.staff,
        now=plan.served_at,
    ).visit
    return check_out(
        visit_id=visit.pk, token=token, idempotency_key=plan.key, staff=plan.staff, now=end
    ).redemption


def record_redemptions(
    *, plans: list[PlannedRedemption], void_every: int, until: dt.datetime
) -> tuple[int, int]:
    """Redeem the planned services not yet recorded; void every `void_every`-th one (by key).

    Returns (recorded, voided) in this run.
    """
    recorded = voided = 0
    keys = {plan.key for plan in plans}
    done = set(
        Redemption.objects.filter(idempotency_key__in=keys).values_list("provider_id", "idempotency_key")
    )
    for plan in plans:
        if (plan.setup.provider.pk, plan.key) in done:
            continue
        redemption = _record(plan, until=until)
        recorded += 1
        if int(plan.key.rsplit("-", 1)[1]) % void_every == 0:
            void_redemption(
                redemption_id=redemption.pk,
                reason=VOID_REASONS[voided % len(VOID_REASONS)],
                user=plan.staff.user,
                now=max(
                    plan.served_at,
                    min(plan.served_at + dt.timedelta(hours=2), until - dt.timedelta(seconds=1)),
                ),
            )
            voided += 1
    return recorded, voided


def _count_this_month(*, this_month: dt.date, now: dt.datetime) -> int:
    """Services so far this month: last month's pace, for the part of the month gone by."""
    start, end = month_bounds(this_month)
    return max(10, round(LAST_MONTH_REDEMPTIONS * (now - start) / (end - start)))


@transaction.atomic
def build_demo_city(*, now: dt.datetime | None = None) -> DemoCity:
    """Load the demo city (DESIGN.md §5 `demo`), or complete it; a second run adds nothing.

    Last month (before `now`, Asia/Shanghai) is evaluated, issued, redeemed and partly voided, and
    left for finance to settle; this month is evaluated and issued as of its first day and has services up to `now`.
    One transaction: a failure leaves the database as it was.
    """
    now = now or timezone.now()
    this_month = month_of(now)
    last_month = previous_month(this_month)
    this_start, _ = month_bounds(this_month)
    last_start, last_end = month_bounds(last_month)

    regions = ensure_regions()
    ensure_default_policy()
    items = ensure_catalogue()
    users = ensure_users(regions=regions)
    setups = ensure_providers(
        regions=regions, items=items, users=users, first_month=last_month, this_month=this_month
    )
    seniors = ensure_seniors(
        regions=regions, created_by=users["worker"], registered_on=min(dt.date(2025, 1, 1), last_month)
    )

    # Last month: evaluated and issued on its first day, served all month, ended: ready to settle.
    last_issued_at = last_start + dt.timedelta(hours=8)
    if not Voucher.objects.filter(period=last_month).exists():
        evaluate_eligibility(as_of=last_month)
        issue_vouchers(period=last_month, now=last_issued_at)
    period = SettlementPeriod.objects.filter(month=last_month).first()
    if period is None or period.state == SettlementPeriod.State.OPEN:
        plans = plan_redemptions(
            month=last_month,
            count=LAST_MONTH_REDEMPTIONS,
            seniors=seniors,
            setups=setups,
            earliest=last_issued_at,
            until=last_end,
        )
        record_redemptions(plans=plans, void_every=80, until=last_end)
        # Not settled: finance settles it on the finance pages, a second user approves (issue 10).

    # This month: evaluated and issued on the 1st (or just now, early on the 1st), served so far.
    this_issued_at = min(this_start + dt.timedelta(hours=8), this_start + (now - this_start) / 4)
    evaluate_eligibility(as_of=this_month)
    issue_vouchers(period=this_month, now=this_issued_at)
    plans = plan_redemptions(
        month=this_month,
        count=_count_this_month(this_month=this_month, now=now),
        seniors=seniors,
        setups=setups,
        earliest=this_issued_at,
        until=now,
    )
    record_redemptions(plans=plans, void_every=50, until=now)

    # Care visits of the classed seniors (pairings, last month's visits, this month's so far).
    care = ensure_care_visits(seniors=seniors, users=users, now=now)

    kangle = setups[0].provider
    logins = [
        DemoLogin(plan.username, plan.role, kangle if plan.role in {roles.PROVIDER, roles.STAFF} else None)
        for plan in LOGINS
    ] + [
        # The first of each other provider's staff: each provider's scans can be tried
        DemoLogin(setup.staff[0].user.username, roles.STAFF, setup.provider)
        for setup in setups[1:]
        if setup.staff
    ]
    example = (
        Voucher.objects.filter(period=this_month, senior__in=[s.pk for s in seniors], tier_code="subsidized")
        .select_related("senior")
        .order_by("senior_id")
        .first()
    )
    counts = {
        "communities": sum(len(members) for _sub, members in SUBDISTRICTS),
        "providers": len(setups),
        "seniors": len(seniors),
        "vouchers_last_month": Voucher.objects.filter(period=last_month).count(),
        "vouchers_this_month": Voucher.objects.filter(period=this_month).count(),
        "redemptions_last_month": Redemption.objects.filter(service_month=last_month).count(),
        "redemptions_this_month": Redemption.objects.filter(service_month=this_month).count(),
        "voids": RedemptionVoid.objects.filter(redemption__service_month__gte=last_month).count(),
        "care_classed": care["classed"],
    }
    return DemoCity(
        this_month=this_month,
        last_month=last_month,
        logins=logins,
        example_voucher=example,
        counts=counts,
    )
