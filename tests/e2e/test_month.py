"""The whole month, end to end (issue #3): demo city → evaluate → issue → redeem through the API
with a staff device token → void one → settle → export, and the workbook agrees with the
database to the fen."""

import datetime as dt
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db.models import Sum
from openpyxl import load_workbook
from rest_framework.test import APIClient

from billing.models import Statement, StatementLine
from config.months import SHANGHAI, next_month
from tests.vouchers.conftest import scan_and_confirm
from vouchers.models import Redemption, Voucher
from vouchers.tokens import voucher_token

DEMO_PASSWORD = "demo-pass-2025"  # the documented demo login


def at(day: dt.date, hour: int) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), tzinfo=SHANGHAI)


def fen(value) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"))


@pytest.mark.django_db
def test_the_whole_month_reconciles_from_scan_to_workbook(monkeypatch, tmp_path):
    # Given the demo city, and the month after its current one
    call_command("demo", verbosity=0)
    month = next_month(Voucher.objects.latest("period").period)
    clock = {"now": at(month, 8)}
    monkeypatch.setattr("django.utils.timezone.now", lambda: clock["now"])

    # When eligibility is evaluated and the month's vouchers are issued
    call_command("evaluate_eligibility", "--as-of", month.isoformat())
    call_command("issue_vouchers", "--period", f"{month:%Y-%m}")
    vouchers = Voucher.objects.filter(period=month)
    assert vouchers.exists()

    # And a staff member signs in a phone and scans vouchers through the API all month
    client = APIClient()
    signed_in = client.post(
        "/api/v1/auth/token/", {"username": "staff", "password": DEMO_PASSWORD}, format="json"
    )
    assert signed_in.status_code == 201, signed_in.content
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {signed_in.json()['token']}")
    created = []
    for voucher in vouchers.order_by("id"):
        clock["now"] = at(month + dt.timedelta(days=len(created) % 27), 9 + len(created) % 8)
        offer = client.post("/api/v1/vouchers/verify/", {"token": voucher_token(voucher)}, format="json")
        if offer.status_code != 200:
            assert offer.json()["code"] == "outside_service_area"
            continue
        item = offer.json()["service_items"][0]
        token = voucher_token(voucher)
        for visit in range(2):
            key = f"e2e-{voucher.pk}-{visit}"
            if item["per_hour"]:  # checked in at the door, checked out an hour and a half later
                opened = client.post(
                    "/api/v1/visits/check-in/",
                    {"token": token, "service_item": item["code"], "idempotency_key": f"{key}-in"},
                    format="json",
                )
                assert opened.status_code == 201, opened.content
                clock["now"] += dt.timedelta(minutes=90)
                check_out = f"/api/v1/visits/{opened.json()['id']}/check-out/"
                response = scan_and_confirm(client, {"token": token, "idempotency_key": key}, url=check_out)
            else:
                body = {"token": token, "service_item": item["code"], "quantity": "1", "idempotency_key": key}
                response = scan_and_confirm(client, body)
            assert response.status_code == 201, response.content
            created.append(response.json())
        if len(created) >= 24:
            break
    assert len(created) >= 10

    # And one redemption is voided
    voided = created[0]
    response = client.post(f"/api/v1/redemptions/{voided['id']}/void/", {"reason": "登记错误"}, format="json")
    assert response.status_code == 200, response.content

    # Then, once the month is over, settlement and export reconcile to the fen
    clock["now"] = at(next_month(month), 3)
    call_command("settle", "--period", f"{month:%Y-%m}")
    out = tmp_path / "settlement.xlsx"
    call_command("export_settlement", "--period", f"{month:%Y-%m}", "--out", str(out))

    counted = Redemption.objects.filter(service_month=month, void__isnull=True)
    assert not counted.filter(pk=voided["id"]).exists()
    redemption_totals = counted.aggregate(
        amount=Sum("amount"), gov=Sum("government_share"), senior=Sum("senior_share")
    )
    statements = Statement.objects.filter(period__month=month)
    statement_totals = statements.aggregate(
        amount=Sum("total_amount"), gov=Sum("government_total"), senior=Sum("senior_total")
    )
    line_totals = StatementLine.objects.filter(statement__in=statements).aggregate(
        amount=Sum("amount"), gov=Sum("government_share"), senior=Sum("senior_share")
    )
    api_amount = sum(fen(row["amount"]) for row in created if row["id"] != voided["id"])
    for key in ("amount", "gov", "senior"):
        assert fen(redemption_totals[key]) == fen(statement_totals[key]) == fen(line_totals[key])
    assert fen(redemption_totals["amount"]) == api_amount
    assert fen(redemption_totals["gov"]) + fen(redemption_totals["senior"]) == api_amount

    workbook = load_workbook(out, read_only=True, data_only=True)
    detail = list(workbook["明细"].iter_rows(values_only=True))
    header = detail[0]
    void_col = header.index("撤销")
    # every redemption is listed; the ones voided in the month are marked and not paid
    listed = [row for row in detail[1:] if row and row[0] not in (None, "")]
    assert {row[0]: row[void_col] for row in listed}[voided["id"]] == "当月撤销"
    rows = [row for row in listed if not row[void_col]]
    amount_col = next(i for i, title in enumerate(header) if title and "金额" in str(title))
    gov_col = next(i for i, title in enumerate(header) if title and "政府" in str(title))
    assert len(rows) == counted.count()
    assert sum(fen(row[amount_col]) for row in rows) == api_amount
    assert sum(fen(row[gov_col]) for row in rows) == fen(redemption_totals["gov"])
    summary = list(workbook["汇总"].iter_rows(values_only=True))
    titles, totals = summary[0], next(row for row in summary if row[0] == "合计")
    column = {title: i for i, title in enumerate(titles)}
    assert totals[column["核销笔数"]] == counted.count()
    assert fen(totals[column["服务金额"]]) == api_amount
    assert fen(totals[column["政府补贴"]]) == fen(redemption_totals["gov"])
    assert fen(totals[column["个人自付"]]) == fen(redemption_totals["senior"])
