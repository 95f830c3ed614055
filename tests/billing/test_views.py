"""Finance pages, the download, the admin and the scheduled settlement task."""

import datetime as dt
import io

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse
from django.utils import timezone
from openpyxl import load_workbook

from billing.models import SettlementPeriod, Statement
from billing.services import settle
from billing.tasks import settle_month, settle_previous_month
from config.months import SHANGHAI
from tests.billing.conftest import MONTH, City
from tests.factories import UserFactory

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@pytest.fixture
def settled(db):
    city = City()
    city.serve(tier="low_fee", quantity="1.5")
    city.serve(tier="paid", provider="prov-b", item="meal", quantity="2")
    settle(month=MONTH, job="test")
    return city


def user_in(group: str):
    user = UserFactory(username=f"{group}-user")
    user.groups.add(Group.objects.get_or_create(name=group)[0])
    return user


@pytest.mark.parametrize("role", ["finance", "bureau"])
def test_finance_and_bureau_see_every_month_and_its_statements(settled, client, role):
    # given a settled October
    client.force_login(user_in(role))

    # when they open the months and then October
    months = client.get(reverse("billing-periods"))
    october = client.get(reverse("billing-period", kwargs={"period": "2026-10"}))

    # then the months list the current one too, and October shows each provider by name
    assert months.status_code == 200
    page = months.content.decode()
    assert "2026-10" in page and timezone.localdate().strftime("%Y-%m") in page
    assert october.status_code == 200
    page = october.content.decode()
    for name in ("康乐家政A", "康乐家政B", "康乐家政C"):
        assert name in page
    assert "60.00" in page and "30.00" in page
    assert reverse("billing-export-start", kwargs={"period": "2026-10"}) in page
    assert 'id="spend-data"' in page  # the chart's figures, with its table beside it
    assert page.count("recon-passed") == 5  # every reconciliation check, passed


def test_the_settlements_page_reads_a_constant_number_of_queries(
    settled, client, django_assert_max_num_queries
):
    client.force_login(user_in("finance"))
    # (the session, the user, their second-factor device and groups are four of them)
    with django_assert_max_num_queries(11):
        assert client.get(reverse("billing-periods")).status_code == 200


def ask_for_workbook(client, period="2026-10", **data):
    """Press the workbook button; the response of the page it leads to (followed)."""
    return client.post(reverse("billing-export-start", kwargs={"period": period}), data, follow=True)


def download(client, page):
    """The workbook behind a finished workbook page."""
    export = page.context["export"]
    response = client.get(reverse("billing-export-download", kwargs={"export_id": export.pk}))
    assert response.status_code == 200
    return response


@pytest.mark.parametrize("role", ["staff", "worker"])
def test_other_roles_are_refused(settled, client, role):
    finance = user_in("finance")
    client.force_login(finance)
    export = ask_for_workbook(client).context["export"]
    client.force_login(user_in(role))
    for response in (
        client.get(reverse("billing-periods")),
        client.post(reverse("billing-export-start", kwargs={"period": "2026-10"})),
        client.get(reverse("billing-export", kwargs={"export_id": export.pk})),
        client.get(reverse("billing-export-download", kwargs={"export_id": export.pk})),
    ):
        assert response.status_code == 403
        assert "Content-Disposition" not in response


def test_signed_out_visitors_are_sent_to_sign_in(db, client):
    response = client.post(reverse("billing-export-start", kwargs={"period": "2026-10"}))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_finance_downloads_the_workbook(settled, client):
    client.force_login(user_in("finance"))

    # when finance presses the button of a small month, the workbook is written at once
    page = ask_for_workbook(client)
    assert page.status_code == 200 and page.context["export"].state == "done"
    assert reverse("billing-export-download", kwargs={"export_id": page.context["export"].pk}) in (
        page.content.decode()
    )
    response = download(client, page)

    assert response["Content-Type"] == XLSX
    assert 'filename="settlement-2026-10.xlsx"' in response["Content-Disposition"]
    workbook = load_workbook(io.BytesIO(b"".join(response.streaming_content)))
    assert workbook.sheetnames == ["审批汇总", "汇总", "康乐家政A", "康乐家政B", "康乐家政C", "明细"]
    assert len(list(workbook["明细"].iter_rows())) == 1 + 2
    # and the month's page lists it
    october = client.get(reverse("billing-period", kwargs={"period": "2026-10"})).content.decode()
    assert reverse("billing-export", kwargs={"export_id": page.context["export"].pk}) in october


def test_finance_downloads_one_providers_workbook(settled, client):
    client.force_login(user_in("finance"))

    response = download(client, ask_for_workbook(client, provider="prov-b"))

    assert 'filename="settlement-2026-10-prov-b.xlsx"' in response["Content-Disposition"]
    workbook = load_workbook(io.BytesIO(b"".join(response.streaming_content)))
    details = list(workbook["明细"].iter_rows(min_row=2, values_only=True))
    assert {row[1] for row in details} == {"prov-b"}


def test_a_large_month_is_written_by_a_worker_with_progress(
    settled, client, settings, django_capture_on_commit_callbacks
):
    # given workbooks of more than one service go to a worker
    settings.EXPORT_INLINE_ROWS = 1
    client.force_login(user_in("finance"))

    # when finance asks for one, it is queued (the task leaves once the request commits)
    with django_capture_on_commit_callbacks() as callbacks:
        page = ask_for_workbook(client)
    export = page.context["export"]
    assert export.state == "queued" and export.rows_total == 2
    assert '<meta http-equiv="refresh"' in page.content.decode()
    assert client.get(reverse("billing-export-download", kwargs={"export_id": export.pk})).status_code == 404
    # and asking again meanwhile gives the same workbook, not a second one
    assert ask_for_workbook(client).context["export"].pk == export.pk
    assert len(callbacks) == 1

    # when the worker has run it (Celery runs tasks inline here)
    from billing.tasks import run_settlement_export

    assert run_settlement_export.apply(args=[export.pk]).get() == "done"

    # then the page offers the file, with its progress full and no more reloading
    page = client.get(reverse("billing-export", kwargs={"export_id": export.pk}))
    assert (page.context["done"], page.context["total"]) == (2, 2)
    assert '<meta http-equiv="refresh"' not in page.content.decode()
    assert download(client, page)["Content-Type"] == XLSX
    # and a task delivered twice does not write it again
    assert run_settlement_export.apply(args=[export.pk]).get() == "done"


def test_an_unsettled_month_gets_a_page_that_says_why(settled, client):
    client.force_login(user_in("finance"))
    response = client.post(
        reverse("billing-export-start", kwargs={"period": "2026-09"}), HTTP_ACCEPT_LANGUAGE="en"
    )
    assert response.status_code == 409
    assert "not been settled" in response.content.decode()


def test_not_a_month_or_not_a_provider_is_not_found(settled, client):
    client.force_login(user_in("finance"))
    assert client.post("/billing/2026-13/export/").status_code == 404
    url = reverse("billing-export-start", kwargs={"period": "2026-10"})
    assert client.post(url, {"provider": "nobody"}).status_code == 404
    assert client.get(reverse("billing-export", kwargs={"export_id": 999})).status_code == 404


def test_the_admin_shows_statements_read_only(settled, client):
    admin = UserFactory(username="root", is_staff=True, is_superuser=True)
    client.force_login(admin)
    statement = Statement.objects.get(provider__code="prov-a")

    page = client.get(reverse("admin:billing_statement_change", args=[statement.pk]))
    assert page.status_code == 200
    assert "助洁" in page.content.decode()  # the inline line
    assert client.get(reverse("admin:billing_settlementperiod_changelist")).status_code == 200
    assert client.get(reverse("admin:billing_statement_add")).status_code == 403
    response = client.post(reverse("admin:billing_statement_delete", args=[statement.pk]), {"post": "yes"})
    assert response.status_code == 403
    assert Statement.objects.filter(pk=statement.pk).exists()


def test_the_task_settles_a_month_and_returns_a_json_summary(db):
    city = City()
    city.serve(tier="low_fee", quantity="1.5")

    summary = settle_month("2026-10")

    assert summary == {
        "month": "2026-10",
        "statements": 3,
        "redemptions": 1,
        "total_amount": "60.00",
        "government_total": "42.00",
        "senior_total": "18.00",
    }


def test_the_scheduled_task_settles_the_previous_month_once(db, monkeypatch):
    # given October served, and the schedule firing early on 1 November (Shanghai)
    City().serve(tier="paid")
    first_of_november = dt.datetime(2026, 11, 1, 1, 0, tzinfo=SHANGHAI)
    monkeypatch.setattr(timezone, "now", lambda: first_of_november)

    # when it runs, and runs again
    first = settle_previous_month()
    again = settle_previous_month()

    # then October is settled once, and the repeat is harmless
    assert first["month"] == "2026-10"
    assert first["redemptions"] == 1
    assert again == {"month": "2026-10", "skipped": "period_closed"}
    assert SettlementPeriod.objects.get(month=MONTH).settled_at == first_of_november
