"""The settlement workbook for finance approval (结算导出), written with openpyxl in write-only mode.

Two sheets: 汇总 (one row per statement line, with a totals row) and 明细 (every non-voided
redemption of the month). Write-only mode streams rows to a temporary file, so a city's month
never sits in memory as cells. Text that a spreadsheet would read as a formula is written as
text (§6.8): a name such as "=HYPERLINK(…)" must not become a link or a command.

The headers and sheet names are Chinese whatever the page language: the workbook is a document
of record in a fixed format that approvers and scripts read.
"""

import csv
import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import BinaryIO, TextIO

from django.utils.translation import gettext_lazy as _
from djmoney.money import Money
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from billing import selectors
from billing.errors import BillingError
from billing.pricing import to_fen
from config.months import SHANGHAI, format_month
from config.xlsx import looks_like_a_formula, text_cell
from eligibility.models import Senior

MONEY_FORMAT = "#,##0.00"
QUANTITY_FORMAT = "0.00"
DATETIME_FORMAT = "yyyy-mm-dd hh:mm"
# Excel's limit is 1,048,576 rows a sheet; the detail continues on 明细(2), 明细(3)… past it.
MAX_ROWS_PER_SHEET = 1_048_576

SUMMARY_SHEET = "汇总"
DETAIL_SHEET = "明细"
SUMMARY_COLUMNS = [
    # header, width
    ("服务商编码", 14),
    ("服务商名称", 28),
    ("服务类别", 12),
    ("服务项目", 14),
    ("核销笔数", 10),
    ("服务数量", 12),
    ("服务金额", 14),
    ("政府补贴", 14),
    ("个人自付", 14),
]
DETAIL_COLUMNS = [
    ("核销编号", 12),
    ("服务商编码", 14),
    ("服务商名称", 28),
    ("服务时间", 18),
    ("老人姓名", 12),
    ("服务券编号", 12),
    ("服务类别", 12),
    ("服务项目", 14),
    ("服务数量", 10),
    ("单价", 12),
    ("服务金额", 14),
    ("政府补贴", 14),
    ("个人自付", 14),
    ("服务人员", 14),
]
ADJUSTMENT_LABEL = "调整："
TOTALS_LABEL = "合计"


@dataclass(frozen=True)
class ExportSummary:
    month: dt.date
    provider_code: str | None
    statements: int
    summary_rows: int
    redemptions: int
    total_amount: Money
    government_total: Money
    senior_total: Money


def _amount(value) -> Decimal:
    if isinstance(value, Money):
        value = value.amount
    return to_fen(Decimal(value if value is not None else 0))


class _SheetWriter:
    """Rows into a write-only sheet: typed cells, frozen header, widths, formats, safe text."""

    def __init__(
        self, workbook: Workbook, title: str, columns, formats: dict[int, str], header_text: str = ""
    ):
        self.workbook, self.title, self.columns, self.formats = workbook, title, columns, formats
        self.header_text = header_text
        self.sheets = 0
        self.rows = 0
        self.sheet = None
        self.bold = Font(bold=True)

    def _new_sheet(self):
        self.sheets += 1
        title = self.title if self.sheets == 1 else f"{self.title}({self.sheets})"
        sheet = self.workbook.create_sheet(title)
        # Write-only sheets take widths and panes before the first row.
        for index, (_header, width) in enumerate(self.columns, start=1):
            sheet.column_dimensions[get_column_letter(index)].width = width
        sheet.freeze_panes = "A2"
        # Printed for approval: A4 landscape, every column on one page's width, the header row on
        # every page, the month and the page number in the margins.
        sheet.page_setup.orientation = "landscape"
        sheet.page_setup.paperSize = Worksheet.PAPERSIZE_A4
        sheet.page_setup.fitToWidth = 1
        sheet.page_setup.fitToHeight = 0
        sheet.sheet_properties.pageSetUpPr.fitToPage = True
        sheet.print_title_rows = "1:1"
        if self.header_text:
            sheet.oddHeader.center.text = self.header_text
        sheet.oddFooter.center.text = "&P / &N"
        self.sheet = sheet
        self.rows = 0
        self._append([header for header, _width in self.columns], bold=True, formats={})

    def _append(self, values, *, bold=False, formats=None):
        formats = self.formats if formats is None else formats
        cells = []
        for index, value in enumerate(values):
            cell = text_cell(self.sheet, value)
            if index in formats and value is not None:
                cell.number_format = formats[index]
            if bold:
                cell.font = self.bold
            cells.append(cell)
        self.sheet.append(cells)
        self.rows += 1

    def append(self, values, *, bold=False):
        if self.sheet is None or self.rows >= MAX_ROWS_PER_SHEET:
            self._new_sheet()
        self._append(values, bold=bold)

    def ensure_sheet(self):
        if self.sheet is None:
            self._new_sheet()


APPROVAL_SHEET = "审批汇总"
APPROVAL_COLUMNS = [
    ("序号", 6),
    ("服务商名称", 30),
    ("状态", 10),
    ("核销笔数", 10),
    ("当月撤销", 10),
    ("调整笔数", 10),
    ("服务金额", 14),
    ("政府补贴", 14),
    ("个人自付", 14),
    ("付款到期日", 12),
]
APPROVAL_HEADER_ROW = 4  # title, month line, blank, then the header
BLANK_SIGNATURE = "＿＿＿＿＿＿＿＿"


def _person(user, job: str = "") -> str:
    if user is not None:
        return user.get_full_name() or user.get_username()
    return job


def _signature(label: str, people: list[tuple[str, dt.datetime | None]]) -> str:
    """'编制人：钱丽娟  日期：2026-11-02', several people joined, or blanks to sign by hand."""
    named = [(name, when) for name, when in people if name]
    if not named:
        return f"{label}：{BLANK_SIGNATURE}    日期：{BLANK_SIGNATURE}"
    names = "、".join(dict.fromkeys(name for name, _when in named))
    dates = [when for _name, when in named if when is not None]
    day = f"{max(dates).astimezone(SHANGHAI):%Y-%m-%d}" if dates else BLANK_SIGNATURE
    return f"{label}：{names}    日期：{day}"


def _write_approval_summary(workbook, *, month, provider_code, tiers) -> None:
    """The sheet finance signs: a title with the month and the bureau, one row per provider by
    name with a total row of SUM formulas, the totals by tier, and the signature lines (prepared /
    reviewed / approved by, with names and dates where the statements have them). Prints on A4
    landscape, fit to width, its header rows on every page (about 30 providers a page)."""
    from django.conf import settings

    statements = list(
        selectors.statements_for_period(month=month, provider_code=provider_code)
        .select_related("prepared_by", "reviewed_by", "approved_by")
        .order_by("provider__name")
    )
    sheet = workbook.create_sheet(APPROVAL_SHEET)
    for index, (_header, width) in enumerate(APPROVAL_COLUMNS, start=1):
        sheet.column_dimensions[get_column_letter(index)].width = width
    sheet.freeze_panes = f"A{APPROVAL_HEADER_ROW + 1}"
    sheet.page_setup.orientation = "landscape"
    sheet.page_setup.paperSize = Worksheet.PAPERSIZE_A4
    sheet.page_setup.fitToWidth = 1
    sheet.page_setup.fitToHeight = 0
    sheet.sheet_properties.pageSetUpPr.fitToPage = True
    sheet.print_title_rows = f"1:{APPROVAL_HEADER_ROW}"
    sheet.oddFooter.center.text = "&P / &N"
    bold, title_font = Font(bold=True), Font(bold=True, size=16)

    def row(values, *, font=None, formats=None):
        cells = []
        for index, value in enumerate(values):
            cell = text_cell(sheet, value)
            if font is not None:
                cell.font = font
            if formats and index in formats and value is not None:
                cell.number_format = formats[index]
            cells.append(cell)
        sheet.append(cells)

    def formula(text):
        cell = WriteOnlyCell(sheet, value=text)  # our own SUM, written as a formula on purpose
        cell.font = bold
        cell.number_format = MONEY_FORMAT
        return cell

    row([f"{settings.SETTLEMENT_BUREAU_NAME} {month:%Y年%m月} 居家养老服务券结算汇总表"], font=title_font)
    states = sorted({statement.get_state_display() for statement in statements})
    row([f"结算月份：{month:%Y-%m}    状态：{'、'.join(str(state) for state in states)}"])
    row([])
    row([header for header, _width in APPROVAL_COLUMNS], font=bold)
    money = {6: MONEY_FORMAT, 7: MONEY_FORMAT, 8: MONEY_FORMAT}
    for number, statement in enumerate(statements, start=1):
        row(
            [
                number,
                statement.provider.name,
                statement.get_state_display(),
                statement.redemption_count,
                statement.void_count,
                statement.adjustment_count,
                _amount(statement.total_amount),
                _amount(statement.government_total),
                _amount(statement.senior_total),
                statement.due_date,
            ],
            formats=money,
        )
    first, last = APPROVAL_HEADER_ROW + 1, APPROVAL_HEADER_ROW + len(statements)
    # (No statements: zeros, not a SUM over the total row itself.)
    sums = [formula(f"=SUM({letter}{first}:{letter}{last})") if statements else 0 for letter in "DEFGHI"]
    sheet.append([text_cell(sheet, TOTALS_LABEL), None, None, *sums])
    row([])
    row(["服务类别", None, None, "核销笔数", None, "调整笔数", "服务金额", "政府补贴", "个人自付"], font=bold)
    by_tier: dict[str, list] = {}
    for statement in statements:
        for line in statement.lines.all():
            totals = by_tier.setdefault(
                line.tier_code, [0, 0, Decimal("0.00"), Decimal("0.00"), Decimal("0.00")]
            )
            totals[0 if line.kind == "service" else 1] += line.redemption_count
            totals[2] += _amount(line.amount)
            totals[3] += _amount(line.government_share)
            totals[4] += _amount(line.senior_share)
    for tier_code, (count, adjustments, amount, government, senior) in sorted(by_tier.items()):
        row(
            [
                tiers.get(tier_code, tier_code),
                None,
                None,
                count,
                None,
                adjustments,
                amount,
                government,
                senior,
            ],
            formats=money,
        )
    row([])
    period = statements[0].period if statements else selectors.settled_period(month=month)
    row([_signature("编制人", [(period.settler, period.settled_at)] if period else [])])
    row([_signature("复核人", [(_person(s.reviewed_by), s.reviewed_at) for s in statements])])
    row([_signature("审批人", [(_person(s.approved_by), s.approved_at) for s in statements])])


PROVIDER_COLUMNS = [
    ("类型", 8),
    ("服务类别", 12),
    ("服务项目", 14),
    ("笔数", 8),
    ("当月撤销", 10),
    ("服务数量", 12),
    ("服务金额", 14),
    ("政府补贴", 14),
    ("个人自付", 14),
]
ADJUSTMENT_COLUMNS = [
    "调整日期",
    "核销编号",
    "调整类型",
    "原因",
    "服务金额",
    "政府补贴",
    "个人自付",
    "登记人",
]
SHEET_TITLE_FORBIDDEN = str.maketrans({character: "_" for character in "[]:*?/\\"})


def _sheet_title(name: str, taken: set[str]) -> str:
    """A sheet title from a provider's name: Excel's 31 characters, none of []:*?/\\, unique."""
    base = name.translate(SHEET_TITLE_FORBIDDEN).strip("'") or "服务商"
    title, number = base[:31], 1
    while title in taken:
        number += 1
        suffix = f"({number})"
        title = base[: 31 - len(suffix)] + suffix
    taken.add(title)
    return title


def _write_provider_sheets(workbook, *, month, provider_code, tiers) -> None:
    """One sheet per provider (by name): its statement's lines, services then adjustments, a
    total row, and the adjustments that landed in the month one by one (who, why, which service)."""
    taken = {APPROVAL_SHEET, SUMMARY_SHEET, DETAIL_SHEET}
    money = {5: QUANTITY_FORMAT, 6: MONEY_FORMAT, 7: MONEY_FORMAT, 8: MONEY_FORMAT}
    statements = selectors.statements_for_period(month=month, provider_code=provider_code).order_by(
        "provider__name"
    )
    for statement in statements:
        title = _sheet_title(statement.provider.name, taken)
        writer = _SheetWriter(
            workbook,
            title,
            PROVIDER_COLUMNS,
            money,
            header_text=f"{month:%Y年%m月} {statement.provider.name} 结算单",
        )
        writer.ensure_sheet()
        for line in statement.lines.all():
            writer.append(
                [
                    "服务" if line.kind == "service" else "调整",
                    tiers.get(line.tier_code, line.tier_code),
                    line.service_item.name,
                    line.redemption_count,
                    line.void_count,
                    line.quantity,
                    _amount(line.amount),
                    _amount(line.government_share),
                    _amount(line.senior_share),
                ]
            )
        writer.append(
            [
                TOTALS_LABEL,
                None,
                None,
                statement.redemption_count + statement.adjustment_count,
                statement.void_count,
                None,
                _amount(statement.total_amount),
                _amount(statement.government_total),
                _amount(statement.senior_total),
            ],
            bold=True,
        )
        adjustments = list(selectors.adjustments_of(statement=statement))
        if adjustments:
            writer.append([])
            writer._append(ADJUSTMENT_COLUMNS, bold=True, formats={})
            for adjustment in adjustments:
                writer._append(
                    [
                        f"{adjustment.created_at.astimezone(SHANGHAI):%Y-%m-%d}",
                        adjustment.redemption_id,
                        adjustment.get_kind_display(),
                        adjustment.reason,
                        _amount(adjustment.amount),
                        _amount(adjustment.government_share),
                        _amount(adjustment.senior_share),
                        _person(adjustment.created_by, adjustment.created_by_job),
                    ],
                    formats={4: MONEY_FORMAT, 5: MONEY_FORMAT, 6: MONEY_FORMAT},
                )


def _write_summary(workbook, *, month, provider_code, tiers) -> tuple[int, int, list[Decimal]]:
    money = {6: MONEY_FORMAT, 7: MONEY_FORMAT, 8: MONEY_FORMAT, 5: QUANTITY_FORMAT}
    writer = _SheetWriter(
        workbook,
        SUMMARY_SHEET,
        SUMMARY_COLUMNS,
        money,
        header_text=f"{month:%Y年%m月} 居家养老服务券结算汇总",
    )
    writer.ensure_sheet()
    statements = rows = count = 0
    totals = [Decimal("0.00")] * 3
    for statement in selectors.statements_for_period(month=month, provider_code=provider_code):
        statements += 1
        provider = statement.provider
        lines = list(statement.lines.all())
        if not lines:
            # A contracted provider with nothing to pay still appears, at zero.
            writer.append([provider.code, provider.name, None, None, 0, None, *(Decimal("0.00"),) * 3])
            rows += 1
        for line in lines:
            shares = [_amount(line.amount), _amount(line.government_share), _amount(line.senior_share)]
            writer.append(
                [
                    provider.code,
                    provider.name,
                    tiers.get(line.tier_code, line.tier_code),
                    # An adjustment line (a correction of a closed month landing here) says so.
                    line.service_item.name
                    if line.kind == "service"
                    else f"{ADJUSTMENT_LABEL}{line.service_item.name}",
                    line.redemption_count,
                    line.quantity,
                    *shares,
                ]
            )
            rows += 1
        count += statement.redemption_count
        statement_totals = [
            _amount(statement.total_amount),
            _amount(statement.government_total),
            _amount(statement.senior_total),
        ]
        totals = [a + b for a, b in zip(totals, statement_totals, strict=True)]
    writer.append([TOTALS_LABEL, None, None, None, count, None, *totals], bold=True)
    return statements, rows, totals


def _write_detail(workbook, *, month, provider_code, tiers) -> int:
    formats = {
        3: DATETIME_FORMAT,
        8: QUANTITY_FORMAT,
        9: MONEY_FORMAT,
        10: MONEY_FORMAT,
        11: MONEY_FORMAT,
        12: MONEY_FORMAT,
    }
    writer = _SheetWriter(
        workbook,
        DETAIL_SHEET,
        DETAIL_COLUMNS,
        formats,
        header_text=f"{month:%Y年%m月} 居家养老服务券核销明细",
    )
    writer.ensure_sheet()
    redemptions = 0
    masking = Senior()  # one unsaved instance, to apply the registry's own masking rule to each name
    for row in selectors.redemption_rows_for_export(month=month, provider_code=provider_code):
        masking.name = row["voucher__senior__name"]
        writer.append(
            [
                row["id"],
                row["provider__code"],
                row["provider__name"],
                # Excel has no time zones: write Shanghai wall-clock time.
                row["served_at"].astimezone(SHANGHAI).replace(tzinfo=None),
                masking.masked_name,
                row["voucher_id"],
                tiers.get(row["tier_code"], row["tier_code"]),
                row["service_item__name"],
                row["quantity"],
                _amount(row["unit_price"]),
                _amount(row["amount"]),
                _amount(row["government_share"]),
                _amount(row["senior_share"]),
                row["staff__display_name"],
            ]
        )
        redemptions += 1
    return redemptions


def _check_exportable(*, month: dt.date, provider_code: str | None) -> None:
    if selectors.settled_period(month=month) is None:
        raise BillingError(
            "period_not_settled",
            _("%(month)s has not been settled yet; settle it before exporting."),
            month=format_month(month),
        )
    if provider_code and selectors.provider_by_code(code=provider_code) is None:
        raise BillingError(
            "not_found", _("There is no provider with the code %(provider)s."), provider=provider_code
        )


def export_settlement(
    *, month: dt.date, out: str | BinaryIO, provider_code: str | None = None
) -> ExportSummary:
    """Write a settled month's workbook to `out` (a path or a binary file-like object).

    Reads only: statements and redemptions as settled. Refuses `period_not_settled` when the month
    has not been settled (a draft would not reconcile with what is paid) and `not_found` for an
    unknown provider code.
    """
    _check_exportable(month=month, provider_code=provider_code)
    tiers = selectors.tier_names()
    workbook = Workbook(write_only=True)
    _write_approval_summary(workbook, month=month, provider_code=provider_code, tiers=tiers)
    statements, summary_rows, totals = _write_summary(
        workbook, month=month, provider_code=provider_code, tiers=tiers
    )
    _write_provider_sheets(workbook, month=month, provider_code=provider_code, tiers=tiers)
    redemptions = _write_detail(workbook, month=month, provider_code=provider_code, tiers=tiers)
    workbook.save(out)
    return ExportSummary(
        month=month,
        provider_code=provider_code,
        statements=statements,
        summary_rows=summary_rows,
        redemptions=redemptions,
        total_amount=Money(totals[0], "CNY"),
        government_total=Money(totals[1], "CNY"),
        senior_total=Money(totals[2], "CNY"),
    )


CSV_COLUMNS = [header for header, _width in DETAIL_COLUMNS] + ["撤销"]
VOIDED_IN_MONTH, VOIDED_LATER = "当月撤销", "结算后撤销（次月调整）"


def _csv_text(value) -> str:
    """A CSV field: text that looks like a formula gets a leading apostrophe (a CSV has no cell
    types, so this is the only way to keep Excel and WPS from evaluating it)."""
    text = "" if value is None else str(value)
    return f"'{text}" if looks_like_a_formula(text) else text


def export_detail_csv(*, month: dt.date, out: str | TextIO, provider_code: str | None = None) -> int:
    """Write every redemption of a settled month, voided ones marked, as CSV in UTF-8 with a byte
    order mark (so Excel and WPS read the Chinese): the detail for months too large for a
    workbook. `out` is a path or a text file opened with newline="". Streams from the database;
    returns the number of redemptions. Refuses as `export_settlement` does."""
    _check_exportable(month=month, provider_code=provider_code)
    tiers = selectors.tier_names()
    masking = Senior()
    handle = open(out, "w", encoding="utf-8-sig", newline="") if isinstance(out, str) else out  # noqa: SIM115
    try:
        if not isinstance(out, str):
            handle.write("\ufeff")
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        written = 0
        for row in selectors.redemption_rows_for_detail(month=month, provider_code=provider_code):
            masking.name = row["voucher__senior__name"]
            voided = (
                VOIDED_IN_MONTH if row["voided_in_month"] else VOIDED_LATER if row["voided_later"] else ""
            )
            writer.writerow(
                [
                    row["id"],
                    _csv_text(row["provider__code"]),
                    _csv_text(row["provider__name"]),
                    f"{row['served_at'].astimezone(SHANGHAI):%Y-%m-%d %H:%M}",
                    _csv_text(masking.masked_name),
                    row["voucher_id"],
                    _csv_text(tiers.get(row["tier_code"], row["tier_code"])),
                    _csv_text(row["service_item__name"]),
                    row["quantity"],
                    _amount(row["unit_price"]),
                    _amount(row["amount"]),
                    _amount(row["government_share"]),
                    _amount(row["senior_share"]),
                    _csv_text(row["staff__display_name"]),
                    voided,
                ]
            )
            written += 1
    finally:
        if isinstance(out, str):
            handle.close()
    return written
