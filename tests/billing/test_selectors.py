"""What the finance pages read: the months (the current one so far included), a month's summary,
a statement's redemptions with voided ones marked, each scoped to what the user may see."""

import datetime as dt
from decimal import Decimal

from django.contrib.auth.models import Group

from billing import selectors
from billing.services import settle
from config.months import SHANGHAI
from tests.billing.conftest import MONTH
from tests.billing.test_settlement import make_finance, serve_a_month
from tests.factories import StaffMemberFactory, UserFactory

SETTLED_AT = dt.datetime(2026, 11, 2, 9, tzinfo=SHANGHAI)


def test_the_months_list_counts_voids_and_shows_the_month_not_yet_settled(city):
    # given October served (8 services, one voided) but not settled, as of a day in October
    serve_a_month(city)
    finance = make_finance("fin")

    # when finance lists the months in October
    months = selectors.months(user=finance, now=dt.datetime(2026, 10, 28, tzinfo=SHANGHAI))

    # then October is there, open, with every service counted, the voided one too
    (october,) = months
    assert (october.month, october.state, october.period) == (MONTH, "open", None)
    assert (october.recorded, october.voided, october.paid) == (8, 1, 7)
    assert Decimal(october.amount) == Decimal("488.20")
    assert october.is_current is False  # (the machine's clock is past October)

    # and after settling, in November, October is closed and November (current, empty) listed first
    settle(month=MONTH, by=finance, now=SETTLED_AT)
    november, october = selectors.months(user=finance, now=dt.datetime(2026, 11, 3, tzinfo=SHANGHAI))
    assert (november.month, november.recorded, october.state, october.period.settler) == (
        dt.date(2026, 11, 1),
        0,
        "closed",
        "fin",
    )
    # and October's figures are now its statements' (the same, nothing having landed since)
    assert (october.recorded, october.voided, october.paid) == (8, 1, 7)
    assert Decimal(october.amount) == Decimal("488.20")


def test_a_settled_month_keeps_its_settled_figures_after_a_late_void(city):
    # given October served and settled, then one of its services voided after the close (an
    # adjustment landing in November)
    serve_a_month(city)
    finance = make_finance("fin")
    settle(month=MONTH, by=finance, now=SETTLED_AT)
    from vouchers.models import Redemption
    from vouchers.services import void_redemption

    late = Redemption.objects.filter(service_month=MONTH, void__isnull=True).first()
    void_redemption(
        redemption_id=late.pk, reason="服务未发生", user=city.staff[late.provider.code].user, now=SETTLED_AT
    )
    now = dt.datetime(2026, 11, 3, tzinfo=SHANGHAI)

    # when the months are listed
    november, october = selectors.months(user=finance, now=now)

    # then October still shows what it settled (the late void is November's business)
    assert (october.recorded, october.voided, october.paid) == (8, 1, 7)
    assert Decimal(october.amount) == Decimal("488.20")
    assert (november.recorded, november.state) == (0, "open")


def test_one_months_row_is_the_row_the_months_list_shows(city):
    # given October served and settled, and November under way
    serve_a_month(city)
    finance = make_finance("fin")
    settle(month=MONTH, by=finance, now=SETTLED_AT)
    now = dt.datetime(2026, 11, 3, tzinfo=SHANGHAI)

    # when one month is read alone, then it is the list's row; a month of nothing is None
    listed = {row.month: row for row in selectors.months(user=finance, now=now)}
    for month in (MONTH, dt.date(2026, 11, 1)):
        assert selectors.month_row(user=finance, month=month, now=now) == listed[month]
    assert selectors.month_row(user=finance, month=dt.date(2026, 9, 1), now=now) is None


def test_a_provider_manager_lists_only_their_own_services(city):
    serve_a_month(city)
    manager = UserFactory(username="mgr")
    manager.groups.add(Group.objects.get_or_create(name="provider")[0])
    StaffMemberFactory(user=manager, provider=city.providers["prov-b"])
    (october,) = selectors.months(user=manager, now=dt.datetime(2026, 10, 28, tzinfo=SHANGHAI))
    assert (october.recorded, october.voided) == (3, 0)
    assert selectors.months(user=UserFactory(username="nobody"), now=SETTLED_AT) == []


def test_a_months_summary_and_a_statements_redemptions(city):
    # given a settled October
    done = serve_a_month(city)
    finance = make_finance("fin")
    settle(month=MONTH, by=finance, now=SETTLED_AT)

    # then the summary lists providers by name with totals by tier (voids counted), and the checks
    summary = selectors.period_summary(user=finance, month=MONTH)
    assert [s.provider.name for s in summary.statements] == ["康乐家政A", "康乐家政B", "康乐家政C"]
    tiers = {row["tier_code"]: row for row in summary.tiers}
    assert (tiers["paid"]["redemption_count"], tiers["paid"]["void_count"]) == (1, 1)
    assert sum(Decimal(row["amount"]) for row in summary.tiers) == Decimal("488.20")
    assert {check.status for check in summary.checks} == {"passed"}
    assert selectors.period_summary(user=finance, month=dt.date(2026, 9, 1)) is None

    # and provider A's statement shows its five services, the voided one marked, filterable
    a = next(s for s in summary.statements if s.provider.code == "prov-a")
    statement = selectors.statement_detail(user=finance, statement_id=a.pk)
    rows = selectors.statement_redemptions(statement=statement)
    assert rows.count() == 5
    assert [r.pk for r in rows if r.voided_in_month] == [done["voided"].pk]
    assert [r.pk for r in selectors.statement_redemptions(statement=statement, voided=True)] == [
        done["voided"].pk
    ]
    assert selectors.statement_redemptions(statement=statement, tier_code="low_fee").count() == 2
    assert selectors.statement_redemptions(statement=statement, service_item_code="meal").count() == 2
