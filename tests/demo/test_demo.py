"""`manage.py demo`: the demo city is complete, consistent and loads idempotently."""

import datetime as dt
import io
import shutil
from dataclasses import dataclass
from decimal import Decimal
from urllib.parse import urlsplit

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.db import transaction
from django.db.models import Count, Sum
from django.test import RequestFactory
from django.utils import timezone, translation

from billing.models import SettlementPeriod, Statement, StatementLine
from billing.services import settle
from config.months import SHANGHAI, month_bounds, month_of, previous_month
from config.roles import roles_of
from demo.city import PASSWORD, build_demo_city
from eligibility.models import Determination, Policy, Region, Senior
from providers.models import Contract, ContractItem, Provider, ServiceItem, StaffMember
from vouchers.models import ClosedMonth, Redemption, RedemptionVoid, Voucher
from vouchers.tokens import voucher_url

# authenticate() is given a request, as the sign-in page gives it: the lockout reads its address.
SIGN_IN = RequestFactory().post("/login/")

LOGINS = {
    "bureau": "bureau",
    "worker": "worker",
    "provider": "provider",
    "staff": "staff",
    "finance": "finance",
    "finance2": "finance",
}
COUNTED = [
    Region,
    Senior,
    Policy,
    Determination,
    ServiceItem,
    Provider,
    Contract,
    ContractItem,
    StaffMember,
    get_user_model(),
    Group,
    Voucher,
    Redemption,
    RedemptionVoid,
    SettlementPeriod,
    ClosedMonth,
    Statement,
    StatementLine,
]


def snapshot() -> dict:
    """What a second run must not change: row counts, and the money left on vouchers."""
    state = {model._meta.label: model.objects.count() for model in COUNTED}
    state["voucher balance"] = Voucher.objects.aggregate(total=Sum("balance"))["total"]
    state["current determinations"] = Determination.objects.filter(is_current=True).count()
    return state


def run_demo() -> str:
    out = io.StringIO()
    with translation.override("en"):
        call_command("demo", stdout=out)
    return out.getvalue()


@dataclass
class DemoRuns:
    first_output: str
    second_output: str
    after_first: dict
    after_second: dict
    this_month: dt.date
    last_month: dt.date


@pytest.fixture(scope="module")
def demo(django_db_setup, django_db_blocker):
    """The demo command run twice on the test database, rolled back after this module's tests."""
    with django_db_blocker.unblock(), transaction.atomic():
        this_month = month_of(timezone.now())
        first = run_demo()
        after_first = snapshot()
        second = run_demo()
        yield DemoRuns(first, second, after_first, snapshot(), this_month, previous_month(this_month))
        transaction.set_rollback(True)


def test_a_second_run_changes_nothing(demo, db):
    # given the demo loaded once, when it is loaded again, then no row and no balance changed
    assert demo.after_second == demo.after_first
    assert demo.second_output == demo.first_output


def test_it_is_a_city_of_a_few_hundred_seniors_and_several_providers(demo, db):
    assert Region.objects.get(code="330106").name == "西湖区"
    assert Region.objects.filter(level=Region.Level.SUBDISTRICT).count() >= 2
    assert Region.objects.filter(level=Region.Level.COMMUNITY).count() >= 6
    assert Senior.objects.count() >= 200
    assert Senior.objects.values("community").distinct().count() >= 6
    assert set(ServiceItem.objects.values_list("code", flat=True)) >= {
        "meal",
        "cleaning",
        "bathing",
        "medical_escort",
        "walking_aid",
        "emergency",
        "cooking",
        "laundry",
        "appliance_repair",
        "pipe_clearing",
        "errands",
        "companionship",
    }
    today = timezone.localdate()
    active = Contract.objects.filter(starts_on__lte=today, ends_on__gte=today, status="active")
    assert active.values("provider").distinct().count() >= 3
    for provider in Provider.objects.all():
        assert provider.staff.filter(is_active=True).count() >= 2


def test_every_printed_login_works_in_its_role(demo, db):
    for username, role in LOGINS.items():
        user = authenticate(SIGN_IN, username=username, password=PASSWORD)
        assert user is not None, username
        assert roles_of(user) == [role]
        assert f"  {username} " in demo.first_output
    assert "Demo logins (password demo-pass-2025):" in demo.first_output
    bureau = get_user_model().objects.get(username="bureau")
    assert bureau.is_staff and bureau.is_superuser
    worker = get_user_model().objects.get(username="worker")
    assert not worker.is_staff  # the registry is /registry/, not the admin
    assert worker.has_perms(
        ["eligibility.add_senior", "eligibility.change_senior", "eligibility.view_region"]
    )
    staff = get_user_model().objects.get(username="staff").staff_member
    assert staff.provider == get_user_model().objects.get(username="provider").staff_member.provider
    # And the staff of every provider can sign a phone in, the first of each printed
    for provider in Provider.objects.all():
        members = StaffMember.objects.filter(provider=provider).exclude(user__username="provider")
        assert members and all(
            authenticate(SIGN_IN, username=m.user.username, password=PASSWORD) for m in members
        )
        assert any(f"  {m.user.username} " in demo.first_output for m in members), provider.code


def test_every_tier_and_care_visit_class_occurs(demo, db):
    current = Determination.objects.filter(is_current=True)
    assert set(current.values_list("tier__code", flat=True)) == {"subsidized", "low_fee", "paid"}
    assert set(current.values_list("care_visit_class", flat=True)) == {"A", "B", "C", ""}
    ages = [
        (demo.this_month - born).days // 365.25
        for born in Senior.objects.values_list("birth_date", flat=True)  # years, near enough
    ]
    assert min(ages) >= 60
    assert max(ages) >= 100


def test_last_month_is_left_for_finance_and_settles_to_its_redemptions(demo, db):
    # given the demo's last month, ended and not settled: finance settles it on the pages
    assert not SettlementPeriod.objects.filter(month=demo.last_month).exclude(state="open").exists()
    settle(month=demo.last_month, by=get_user_model().objects.get(username="finance"))
    period = SettlementPeriod.objects.get(month=demo.last_month)
    assert period.state == SettlementPeriod.State.CLOSED
    ledger = Redemption.objects.filter(service_month=demo.last_month)
    assert 150 <= ledger.count() <= 300
    assert RedemptionVoid.objects.filter(redemption__service_month=demo.last_month).exists()
    statements = Statement.objects.filter(period=period)
    assert statements.count() >= 3
    for statement in statements:
        lines = statement.lines.aggregate(n=Sum("redemption_count"), amount=Sum("amount"))
        served = ledger.filter(provider=statement.provider, void__isnull=True).aggregate(
            n=Count("id"), amount=Sum("amount")
        )
        assert statement.redemption_count == lines["n"] == served["n"]
        assert (
            statement.total_amount.amount
            == lines["amount"]
            == Decimal(served["amount"]).quantize(Decimal("0.01"))
        )
        assert statement.total_amount == statement.government_total + statement.senior_total
    assert sum(s.redemption_count for s in statements) == ledger.filter(void__isnull=True).count()


def test_this_month_has_vouchers_and_some_services_so_far(demo, db):
    vouchers = Voucher.objects.filter(period=demo.this_month)
    assert vouchers.count() == Determination.objects.filter(is_current=True).count()
    served = Redemption.objects.filter(service_month=demo.this_month)
    assert served.exists()
    assert not served.filter(served_at__gt=timezone.now()).exists()
    assert not SettlementPeriod.objects.filter(month=demo.this_month).exists()
    # The example printed for the worker is a voucher of this month, by its id, never an ID-card number.
    example = vouchers.filter(tier_code="subsidized").order_by("senior_id").first()
    assert voucher_url(example) in demo.first_output
    assert f"voucher {example.pk}" in demo.first_output
    assert "python manage.py voucher_qr --voucher" in demo.first_output
    for number in Senior.objects.values_list("id_card_number", flat=True):
        assert number not in demo.first_output


@pytest.mark.django_db
def test_on_the_first_of_a_month_this_months_services_are_from_earlier_that_day():
    # given it is 00:30 on 1 March in Shanghai
    now = dt.datetime(2026, 3, 1, 0, 30, tzinfo=SHANGHAI)

    # when the demo is loaded
    city = build_demo_city(now=now)

    # then February has its services, ready to settle, and March's all happened in the half hour gone by
    assert Redemption.objects.filter(service_month=dt.date(2026, 2, 1)).exists()
    assert not SettlementPeriod.objects.filter(month=dt.date(2026, 2, 1)).exclude(state="open").exists()
    march = Redemption.objects.filter(service_month=dt.date(2026, 3, 1))
    start, _end = month_bounds(dt.date(2026, 3, 1))
    assert march.exists()
    assert not march.filter(served_at__lt=start).exists()
    assert not march.filter(served_at__gt=now).exists()
    assert city.counts["vouchers_this_month"] > 0


@pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="needs poppler-utils' pdftoppm")
def test_the_demo_workers_printed_cards_open_their_seniors_pages(demo, db, client, tmp_path):
    """`make run`'s city: print 保俶社区's cards, read every QR off the rendered PDF, open each page."""
    from tests.vouchers.test_cards import decoded

    out = tmp_path / "cards.pdf"
    call_command(
        "print_vouchers",
        "--period",
        f"{demo.this_month:%Y-%m}",
        "--community",
        "330106001001",
        "--out",
        str(out),
        stdout=io.StringIO(),
    )
    vouchers = Voucher.objects.filter(
        period=demo.this_month, status=Voucher.Status.ACTIVE, senior__community__code="330106001001"
    ).select_related("senior")
    urls = {voucher_url(v): v for v in vouchers}
    read = [result.text for result in decoded(out.read_bytes(), tmp_path)]
    assert sorted(read) == sorted(urls) and read
    for url in read:
        page = client.get(urlsplit(url).path)
        assert page.status_code == 200
        assert urls[url].senior.masked_name in page.content.decode()
