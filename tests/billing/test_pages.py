"""The finance pages as finance uses them: settle a month, review, four-eyes approval, payment;
every service behind a statement; a provider's manager sees their own statements only."""

import datetime as dt

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse
from django.utils import timezone

from billing import services
from billing.models import SettlementPeriod, Statement
from billing.services import settle
from config.months import SHANGHAI
from tests.billing.conftest import MONTH, City
from tests.factories import StaffMemberFactory, UserFactory

NOVEMBER_2 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=SHANGHAI)


def finance(name: str):
    user = UserFactory(username=name, first_name=name)
    user.groups.add(Group.objects.get_or_create(name="finance")[0])
    return user


@pytest.fixture
def served(db, monkeypatch):
    city = City()
    city.serve(tier="low_fee", quantity="1.5")
    city.serve(tier="paid", provider="prov-b", item="meal", quantity="2")
    voided = city.serve(tier="subsidized", provider="prov-b", item="meal")
    city.void(voided)
    monkeypatch.setattr(timezone, "now", lambda: NOVEMBER_2)
    return city


def messages_of(response) -> str:
    return " ".join(str(m) for m in response.context["messages"])


def test_finance_settles_reviews_a_second_approves_and_the_first_records_the_payment(served, client):
    first, second = finance("finance-a"), finance("finance-b")
    statement_url = lambda s: reverse("billing-statement", kwargs={"statement_id": s.pk})  # noqa: E731

    # given October ended, finance sees it unsettled with a button, and settles it
    client.force_login(first)
    months = client.get(reverse("billing-periods")).content.decode()
    assert reverse("billing-settle", kwargs={"period": "2026-10"}) in months
    response = client.post(reverse("billing-settle", kwargs={"period": "2026-10"}), follow=True)
    assert response.status_code == 200
    period = SettlementPeriod.objects.get(month=MONTH)
    assert period.state == SettlementPeriod.State.CLOSED and period.settled_by == first
    b = Statement.objects.get(period=period, provider__code="prov-b")
    assert (b.state, b.prepared_by, b.void_count, str(b.total_amount.amount)) == ("draft", first, 1, "30.00")

    # when the preparer reviews it, and tries to approve it too
    client.post(reverse("billing-statement-review", kwargs={"statement_id": b.pk}), {"note": "核对无误"})
    page = client.get(statement_url(b)).content.decode()
    assert "核对无误" in page and "approve/" not in page  # four eyes: no button for the preparer
    refused = client.post(reverse("billing-statement-approve", kwargs={"statement_id": b.pk}), follow=True)
    assert "another finance user" in messages_of(refused) or "另一位" in messages_of(refused)
    b.refresh_from_db()
    assert b.state == "reviewed"

    # then a second finance user approves it, and the first records the payment
    client.force_login(second)
    client.post(reverse("billing-statement-approve", kwargs={"statement_id": b.pk}))
    b.refresh_from_db()
    assert (b.state, b.approved_by, b.due_date) == ("approved", second, dt.date(2026, 12, 2))
    client.force_login(first)
    client.post(
        reverse("billing-statement-pay", kwargs={"statement_id": b.pk}),
        {"reference": "ZH-2026-11-001", "paid_on": "2026-11-02"},
    )
    b.refresh_from_db()
    assert (b.state, b.payment_reference, b.paid_by) == ("paid", "ZH-2026-11-001", first)
    page = client.get(statement_url(b)).content.decode()
    for name in ("finance-a", "finance-b", "ZH-2026-11-001"):
        assert name in page
    assert SettlementPeriod.objects.get(month=MONTH).state == "closed"  # A and C are not paid yet


def test_a_payment_without_a_reference_is_refused_and_nothing_changes(served, client):
    first, second = finance("finance-a"), finance("finance-b")
    settle(month=MONTH, by=first)
    a = Statement.objects.get(provider__code="prov-a")
    client.force_login(first)
    client.post(reverse("billing-statement-review", kwargs={"statement_id": a.pk}))
    client.force_login(second)
    client.post(reverse("billing-statement-approve", kwargs={"statement_id": a.pk}))

    response = client.post(
        reverse("billing-statement-pay", kwargs={"statement_id": a.pk}),
        {"paid_on": "2026-11-02"},
        follow=True,
    )

    assert messages_of(response)
    a.refresh_from_db()
    assert a.state == "approved" and not a.payment_reference


def test_an_approved_month_cannot_be_settled_again_from_the_page(served, client):
    first, second = finance("finance-a"), finance("finance-b")
    settle(month=MONTH, by=first)
    a = Statement.objects.get(provider__code="prov-a")
    client.force_login(first)
    client.post(reverse("billing-statement-review", kwargs={"statement_id": a.pk}))
    client.force_login(second)
    client.post(reverse("billing-statement-approve", kwargs={"statement_id": a.pk}))

    page = client.get(reverse("billing-period", kwargs={"period": "2026-10"})).content.decode()
    response = client.post(reverse("billing-settle", kwargs={"period": "2026-10"}), follow=True)

    assert reverse("billing-settle", kwargs={"period": "2026-10"}) not in page
    assert messages_of(response)
    a.refresh_from_db()
    assert a.state == "approved"


def test_the_bureau_reads_but_cannot_settle(served, client):
    bureau = UserFactory(username="bureau-reader")
    bureau.groups.add(Group.objects.get_or_create(name="bureau")[0])
    client.force_login(bureau)

    page = client.get(reverse("billing-periods")).content.decode()
    client.post(reverse("billing-settle", kwargs={"period": "2026-10"}))

    assert reverse("billing-settle", kwargs={"period": "2026-10"}) not in page
    assert not SettlementPeriod.objects.filter(month=MONTH).exclude(state="open").exists()


def test_every_service_behind_a_statement_voided_ones_marked(served, client):
    settle(month=MONTH, job="test")
    b = Statement.objects.get(provider__code="prov-b")
    client.force_login(finance("finance-a"))
    url = reverse("billing-statement-redemptions", kwargs={"statement_id": b.pk})

    everything = client.get(url).content.decode()
    voided = client.get(url, {"state": "voided"}).content.decode()
    paid = client.get(url, {"state": "paid"}).content.decode()

    assert everything.count('<li class="service') == 2 and "service-voided" in everything
    assert voided.count("service-voided") == 1 and paid.count("service-voided") == 0
    names = {s.name for s in served.seniors.values()}
    assert not any(name in everything for name in names)  # masked, never whole


def test_a_providers_manager_sees_their_own_statements_only(served, client):
    settle(month=MONTH, job="test")
    manager = StaffMemberFactory(provider=served.providers["prov-a"]).user
    manager.groups.add(Group.objects.get_or_create(name="provider")[0])
    client.force_login(manager)
    own = Statement.objects.get(provider__code="prov-a")
    other = Statement.objects.get(provider__code="prov-b")

    period = client.get(reverse("billing-period", kwargs={"period": "2026-10"})).content.decode()
    asked = client.post(reverse("billing-export-start", kwargs={"period": "2026-10"}), follow=True)
    export = asked.context["export"]
    workbook = client.get(reverse("billing-export-download", kwargs={"export_id": export.pk}))

    assert "康乐家政A" in period and "康乐家政B" not in period
    assert client.get(reverse("billing-statement", kwargs={"statement_id": own.pk})).status_code == 200
    assert client.get(reverse("billing-statement", kwargs={"statement_id": other.pk})).status_code == 404
    assert 'filename="settlement-2026-10-prov-a.xlsx"' in workbook["Content-Disposition"]
    assert export.provider.code == "prov-a"
    url = reverse("billing-export-start", kwargs={"period": "2026-10"})
    assert client.post(url, {"provider": "prov-b"}).status_code == 404
    # and the workbook of the whole month, asked for by finance, is not theirs to open
    finance = UserFactory(username="fin-pages")
    finance.groups.add(Group.objects.get_or_create(name="finance")[0])
    whole = services.request_export(month=MONTH, user=finance)
    assert client.get(reverse("billing-export", kwargs={"export_id": whole.pk})).status_code == 404
    assert client.get(reverse("billing-export-download", kwargs={"export_id": whole.pk})).status_code == 404
    assert reverse("billing-settle", kwargs={"period": "2026-10"}) not in period
