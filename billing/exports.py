"""The settlement workbook for finance approval (结算导出), streamed with XlsxWriter in
constant-memory mode: each sheet's rows go to a temporary file as they are written, so a city's
month never sits in memory (one row at a time, whatever the month's size), and it is written
about twice as fast as openpyxl's write-only mode (bench/settle.py measures both).

Sheets, in order: 审批汇总 (the page finance signs: title, one row per provider by name, SUM
formulas, totals by tier, signature lines), 汇总 (one row per statement line), one sheet per
provider (its lines, total and adjustments), and 明细 (every redemption of the month, voided ones
marked; past Excel's 1,048,576 rows a sheet it continues on 明细(2), 明细(3)…). Text that a
spreadsheet would read as a formula is written as a text cell with Excel's quote prefix (§6.8):
a name such as "=HYPERLINK(…)" never becomes a link or a command, and shows as typed.

The headers and sheet names are Chinese whatever the page language: the workbook is a document
of record in a fixed format that approvers and scripts read.
"""

import csv
import datetime as dt
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import BinaryIO, TextIO

from django.utils.translation import gettext_lazy as _
from djmoney.money import Money
from xlsxwriter import Workbook

from billing import selectors
from billing.errors import BillingError
from billing.pricing import to_fen
from config.months import SHANGHAI, format_month
from config.xlsx import looks_like_a_formula
from eligibility.models import mask_name

MONEY_FORMAT = "#,##0.00"
QUANTITY_FORMAT = "0.00"
DATETIME_FORMAT = "yyyy-mm-dd hh:mm"
DATE_FORMAT = "yyyy-mm-dd"
# Excel's limit is 1,048,576 rows a sheet; the detail continues on 明细(2), 明细(3)… past it.
MAX_ROWS_PER_SHEET = 1_048_576
# The approval summary prints this many providers a page (fit to width, and to one page's
# height per this many providers).
PROVIDERS_PER_PAGE = 30
PAPER_A4 = 9
# How often (rows of the detail) a long export reports its progress.
PROGRESS_EVERY = 10_000

SUMMARY_SHEET = "汇总"
DETAIL_SHEET = "明细"
APPROVAL_SHEET = "审批汇总"
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
    ("撤销", 22),
]
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
APPROVAL_HEADER_ROW = 4  # title, month line, blank, then the header (1-based)
ADJUSTMENT_LABEL = "调整："
TOTALS_LABEL = "合计"
BLANK_SIGNATURE = "＿＿＿＿＿＿＿＿"
VOIDED_IN_MONTH, VOIDED_LATER = "当月撤销", "结算后撤销（次月调整）"
SHEET_TITLE_FORBIDDEN = str.maketrans({character: "_" for character in "[]:*?/\\"})


@dataclass(frozen=True)
class ExportSummary:
    month: dt.date
    provider_code: str | None
    statements: int
    summary_rows: int
    redemptions: int  # the services paid
    detail_rows: int  # every service of the month, voided ones marked
    total_amount: Money
    government_total: Money
    senior_total: Money


@dataclass(frozen=True)
class Sum:
    """A SUM formula cell, with the value it computes (shown by viewers that do not recalculate)."""

    formula: str
    value: Decimal


def _amount(value) -> Decimal:
    if isinstance(value, Money):
        value = value.amount
    return to_fen(Decimal(value if value is not None else 0))


class _Styles:
    """The workbook's cell formats, made once each (XlsxWriter keeps one object per format)."""

    def __init__(self, workbook: Workbook):
        self.workbook = workbook
        self.cache: dict[tuple, object] = {}

    def get(self, number_format: str | None = None, *, bold=False, quote=False, size=None):
        key = (number_format, bold, quote, size)
        if key not in self.cache:
            properties = {"num_format": number_format, "bold": bold, "quote_prefix": quote, "font_size": size}
            self.cache[key] = self.workbook.add_format({k: v for k, v in properties.items() if v})
        return self.cache[key]


def _header_text(text: str) -> str:
    """A page header's centre section: '&' is a code there, so a literal one is doubled."""
    return "&C" + text.replace("&", "&&")


def _print_setup(sheet, *, title_rows: int, header_text: str = "", pages_high: int = 0) -> None:
    """Printed for approval: A4 landscape, every column on one page's width (and, given
    `pages_high`, that many pages' height), the header rows on every page, the month in the
    header and the page number in the footer."""
    sheet.set_landscape()
    sheet.set_paper(PAPER_A4)
    sheet.fit_to_pages(1, pages_high)
    sheet.repeat_rows(0, title_rows - 1)
    if header_text:
        sheet.set_header(_header_text(header_text))
    sheet.set_footer("&C&P / &N")


class _Sheet:
    """Rows into one constant-memory worksheet: typed cells, formats, safe text."""

    def __init__(self, workbook: Workbook, styles: _Styles, title: str, columns, formats: dict[int, str]):
        self.sheet = workbook.add_worksheet(title)
        self.styles = styles
        self.formats = formats
        self.row = 0
        for index, (_header, width) in enumerate(columns):
            self.sheet.set_column(index, index, width)

    def append(self, values, *, bold=False, formats=None, size=None) -> None:
        formats = self.formats if formats is None else formats
        sheet, row, styles = self.sheet, self.row, self.styles
        for column, value in enumerate(values):
            if value is None:
                continue
            number_format = formats.get(column)
            if isinstance(value, str):
                quote = looks_like_a_formula(value)
                style = styles.get(bold=bold, quote=quote, size=size) if bold or quote or size else None
                sheet.write_string(row, column, value, style)
            elif isinstance(value, Sum):
                sheet.write_formula(
                    row, column, value.formula, styles.get(number_format, bold=bold), value.value
                )
            elif isinstance(value, dt.datetime):
                sheet.write_datetime(
                    row, column, value, styles.get(number_format or DATETIME_FORMAT, bold=bold)
                )
            elif isinstance(value, dt.date):
                sheet.write_datetime(row, column, value, styles.get(number_format or DATE_FORMAT, bold=bold))
            else:
                style = styles.get(number_format, bold=bold) if number_format or bold else None
                sheet.write_number(row, column, value, style)
        self.row += 1

    def skip(self) -> None:
        self.row += 1


def _table_sheet(workbook, styles, title, columns, formats, *, header_text) -> _Sheet:
    """A sheet whose first row is its column headers, frozen and printed on every page."""
    sheet = _Sheet(workbook, styles, title, columns, formats)
    sheet.sheet.freeze_panes(1, 0)
    _print_setup(sheet.sheet, title_rows=1, header_text=header_text)
    sheet.append([header for header, _width in columns], bold=True, formats={})
    return sheet


def _settled_name(statement) -> str:
    """The provider's name as the statement was settled with it (frozen once approved)."""
    return statement.provider_name or statement.provider.name


def _item_name(line) -> str:
    return line.service_item_name or line.service_item.name


def _names_as_settled(statements) -> tuple[dict, dict]:
    """Provider id → name and service item id → name, as the statements were settled with them."""
    providers = {statement.provider_id: _settled_name(statement) for statement in statements}
    items = {
        line.service_item_id: _item_name(line) for statement in statements for line in statement.lines.all()
    }
    return providers, items


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


def _write_approval_summary(workbook, styles, statements, *, month, tiers) -> None:
    """The sheet finance signs: a title with the month and the bureau, one row per provider by
    name with a total row of SUM formulas, the totals by tier, and the signature lines (prepared /
    reviewed / approved by, with names and dates where the statements have them). Prints on A4
    landscape, fit to width, its title and header rows on every page, 30 providers a page."""
    from django.conf import settings

    statements = sorted(statements, key=_settled_name)
    sheet = _Sheet(
        workbook,
        styles,
        APPROVAL_SHEET,
        APPROVAL_COLUMNS,
        {6: MONEY_FORMAT, 7: MONEY_FORMAT, 8: MONEY_FORMAT},
    )
    sheet.sheet.freeze_panes(APPROVAL_HEADER_ROW, 0)
    _print_setup(
        sheet.sheet,
        title_rows=APPROVAL_HEADER_ROW,
        pages_high=max(1, math.ceil(len(statements) / PROVIDERS_PER_PAGE)),
    )
    sheet.append(
        [f"{settings.SETTLEMENT_BUREAU_NAME} {month:%Y年%m月} 居家养老服务券结算汇总表"], bold=True, size=16
    )
    states = sorted({str(statement.get_state_display()) for statement in statements})
    sheet.append([f"结算月份：{month:%Y-%m}    状态：{'、'.join(states)}"])
    sheet.skip()
    sheet.append([header for header, _width in APPROVAL_COLUMNS], bold=True, formats={})
    for number, statement in enumerate(statements, start=1):
        sheet.append(
            [
                number,
                _settled_name(statement),
                str(statement.get_state_display()),
                statement.redemption_count,
                statement.void_count,
                statement.adjustment_count,
                _amount(statement.total_amount),
                _amount(statement.government_total),
                _amount(statement.senior_total),
                statement.due_date,
            ]
        )
    first, last = APPROVAL_HEADER_ROW + 1, APPROVAL_HEADER_ROW + len(statements)
    columns = [
        lambda s: s.redemption_count,
        lambda s: s.void_count,
        lambda s: s.adjustment_count,
        lambda s: _amount(s.total_amount),
        lambda s: _amount(s.government_total),
        lambda s: _amount(s.senior_total),
    ]
    # (No statements: zeros, not a SUM over the total row itself.)
    sums = [
        Sum(f"=SUM({letter}{first}:{letter}{last})", sum(map(value, statements))) if statements else 0
        for letter, value in zip("DEFGHI", columns, strict=True)
    ]
    sheet.append([TOTALS_LABEL, None, None, *sums], bold=True)
    sheet.skip()
    sheet.append(
        ["服务类别", None, None, "核销笔数", None, "调整笔数", "服务金额", "政府补贴", "个人自付"],
        bold=True,
        formats={},
    )
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
        sheet.append(
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
            ]
        )
    sheet.skip()
    period = statements[0].period if statements else selectors.settled_period(month=month)
    sheet.append([_signature("编制人", [(period.settler, period.settled_at)] if period else [])])
    sheet.append([_signature("复核人", [(_person(s.reviewed_by), s.reviewed_at) for s in statements])])
    sheet.append([_signature("审批人", [(_person(s.approved_by), s.approved_at) for s in statements])])


def _sheet_title(name: str, taken: set[str]) -> str:
    """A sheet title from a provider's name: Excel's 31 characters, none of []:*?/\\, unique
    (as Excel compares them: without regard to case)."""
    base = name.translate(SHEET_TITLE_FORBIDDEN).strip("'") or "服务商"
    title, number = base[:31], 1
    while title.casefold() in taken:
        number += 1
        suffix = f"({number})"
        title = base[: 31 - len(suffix)] + suffix
    taken.add(title.casefold())
    return title


def _write_summary(workbook, styles, statements, *, month, tiers) -> tuple[int, list[Decimal], int]:
    """汇总: one row per statement line (a provider with nothing to pay at zero), and a total row."""
    money = {5: QUANTITY_FORMAT, 6: MONEY_FORMAT, 7: MONEY_FORMAT, 8: MONEY_FORMAT}
    sheet = _table_sheet(
        workbook,
        styles,
        SUMMARY_SHEET,
        SUMMARY_COLUMNS,
        money,
        header_text=f"{month:%Y年%m月} 居家养老服务券结算汇总",
    )
    rows = count = 0
    totals = [Decimal("0.00")] * 3
    for statement in statements:
        provider = statement.provider
        lines = list(statement.lines.all())
        if not lines:
            sheet.append(
                [provider.code, _settled_name(statement), None, None, 0, None, *(Decimal("0.00"),) * 3]
            )
            rows += 1
        for line in lines:
            sheet.append(
                [
                    provider.code,
                    _settled_name(statement),
                    tiers.get(line.tier_code, line.tier_code),
                    # An adjustment line (a correction of a closed month landing here) says so.
                    _item_name(line) if line.kind == "service" else f"{ADJUSTMENT_LABEL}{_item_name(line)}",
                    line.redemption_count,
                    line.quantity,
                    _amount(line.amount),
                    _amount(line.government_share),
                    _amount(line.senior_share),
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
    sheet.append([TOTALS_LABEL, None, None, None, count, None, *totals], bold=True)
    return rows, totals, count


def _write_provider_sheets(workbook, styles, statements, *, month, tiers) -> None:
    """One sheet per provider (by name): its statement's lines, services then adjustments, a
    total row, and the adjustments that landed in the month one by one (who, why, which service)."""
    taken = {APPROVAL_SHEET.casefold(), SUMMARY_SHEET.casefold(), DETAIL_SHEET.casefold()}
    money = {5: QUANTITY_FORMAT, 6: MONEY_FORMAT, 7: MONEY_FORMAT, 8: MONEY_FORMAT}
    adjustment_money = {4: MONEY_FORMAT, 5: MONEY_FORMAT, 6: MONEY_FORMAT}
    for statement in sorted(statements, key=_settled_name):
        name = _settled_name(statement)
        sheet = _table_sheet(
            workbook,
            styles,
            _sheet_title(name, taken),
            PROVIDER_COLUMNS,
            money,
            header_text=f"{month:%Y年%m月} {name} 结算单",
        )
        for line in statement.lines.all():
            sheet.append(
                [
                    "服务" if line.kind == "service" else "调整",
                    tiers.get(line.tier_code, line.tier_code),
                    _item_name(line),
                    line.redemption_count,
                    line.void_count,
                    line.quantity,
                    _amount(line.amount),
                    _amount(line.government_share),
                    _amount(line.senior_share),
                ]
            )
        sheet.append(
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
            sheet.skip()
            sheet.append(ADJUSTMENT_COLUMNS, bold=True, formats={})
            for adjustment in adjustments:
                sheet.append(
                    [
                        f"{adjustment.created_at.astimezone(SHANGHAI):%Y-%m-%d}",
                        adjustment.redemption_id,
                        str(adjustment.get_kind_display()),
                        adjustment.reason,
                        _amount(adjustment.amount),
                        _amount(adjustment.government_share),
                        _amount(adjustment.senior_share),
                        _person(adjustment.created_by, adjustment.created_by_job),
                    ],
                    formats=adjustment_money,
                )


def _voided(row) -> str:
    return VOIDED_IN_MONTH if row["voided_in_month"] else VOIDED_LATER if row["voided_later"] else ""


def _write_detail(workbook, styles, statements, *, month, provider_code, tiers, progress, total) -> int:
    """明细: every redemption of the month, voided ones marked, in as many sheets as Excel's row
    limit needs. The hot loop of a city's export: typed cells written directly, one format
    object each, text checked for a formula's first character."""
    header_text = f"{month:%Y年%m月} 居家养老服务券核销明细"
    money, quantity = styles.get(MONEY_FORMAT), styles.get(QUANTITY_FORMAT)
    served, quoted = styles.get(DATETIME_FORMAT), styles.get(quote=True)
    sheets = written = 0
    sheet = None
    row = MAX_ROWS_PER_SHEET
    # Provider and item names as the statements were settled with them.
    providers = {statement.provider_id: _settled_name(statement) for statement in statements}
    items = {
        line.service_item_id: _item_name(line) for statement in statements for line in statement.lines.all()
    }

    def text(column, value):
        if value:
            sheet.write_string(row, column, value, quoted if looks_like_a_formula(value) else None)

    for record in selectors.redemption_rows_for_detail(month=month, provider_code=provider_code):
        if row >= MAX_ROWS_PER_SHEET:
            sheets += 1
            title = DETAIL_SHEET if sheets == 1 else f"{DETAIL_SHEET}({sheets})"
            sheet = _table_sheet(workbook, styles, title, DETAIL_COLUMNS, {}, header_text=header_text).sheet
            row = 1
        sheet.write_number(row, 0, record["id"])
        text(1, record["provider__code"])
        text(2, providers.get(record["provider_id"]) or record["provider__name"])
        # Excel has no time zones: Shanghai wall-clock time.
        sheet.write_datetime(row, 3, record["served_at"].astimezone(SHANGHAI).replace(tzinfo=None), served)
        text(4, mask_name(record["voucher__senior__name"]))
        sheet.write_number(row, 5, record["voucher_id"])
        tier = record["tier_code"]
        text(6, tiers.get(tier, tier))
        text(7, items.get(record["service_item_id"]) or record["service_item__name"])
        sheet.write_number(row, 8, record["quantity"], quantity)
        sheet.write_number(row, 9, record["unit_price"], money)
        sheet.write_number(row, 10, record["amount"], money)
        sheet.write_number(row, 11, record["government_share"], money)
        sheet.write_number(row, 12, record["senior_share"], money)
        text(13, record["staff__display_name"])
        text(14, _voided(record))
        row += 1
        written += 1
        if written % PROGRESS_EVERY == 0:
            progress(written, total)
    if sheet is None:  # a month without services still has its (empty) detail sheet
        _table_sheet(workbook, styles, DETAIL_SHEET, DETAIL_COLUMNS, {}, header_text=header_text)
    progress(written, max(written, total))
    return written


def check_exportable(*, month: dt.date, provider_code: str | None):
    """Refuse a month that is not settled, or an unknown provider code; the provider, if any."""
    if selectors.settled_period(month=month) is None:
        raise BillingError(
            "period_not_settled",
            _("%(month)s has not been settled yet; settle it before exporting."),
            month=format_month(month),
        )
    provider = selectors.provider_by_code(code=provider_code) if provider_code else None
    if provider_code and provider is None:
        raise BillingError(
            "not_found", _("There is no provider with the code %(provider)s."), provider=provider_code
        )
    return provider


def export_settlement(
    *,
    month: dt.date,
    out: str | os.PathLike | BinaryIO,
    provider_code: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ExportSummary:
    """Write a settled month's workbook to `out` (a path or a binary file-like object).

    Reads only: statements and redemptions as settled. Refuses `period_not_settled` when the month
    has not been settled (a draft would not reconcile with what is paid) and `not_found` for an
    unknown provider code. `progress(rows done, rows in all)`, if given, is called every
    `PROGRESS_EVERY` rows of the detail and at the end.
    """
    check_exportable(month=month, provider_code=provider_code)
    progress = progress or (lambda done, total: None)
    tiers = selectors.tier_names()
    statements = list(
        selectors.statements_for_period(month=month, provider_code=provider_code).select_related(
            "prepared_by", "reviewed_by", "approved_by"
        )
    )
    # Services and voids: the detail's rows, for the progress bar.
    total = sum(statement.redemption_count + statement.void_count for statement in statements)
    progress(0, total)
    target = out if hasattr(out, "write") else os.fspath(out)
    workbook = Workbook(target, {"constant_memory": True, "use_zip64": total > MAX_ROWS_PER_SHEET})
    styles = _Styles(workbook)
    try:
        _write_approval_summary(workbook, styles, statements, month=month, tiers=tiers)
        summary_rows, totals, count = _write_summary(workbook, styles, statements, month=month, tiers=tiers)
        _write_provider_sheets(workbook, styles, statements, month=month, tiers=tiers)
        detail_rows = _write_detail(
            workbook,
            styles,
            statements,
            month=month,
            provider_code=provider_code,
            tiers=tiers,
            progress=progress,
            total=total,
        )
    finally:
        workbook.close()
    return ExportSummary(
        month=month,
        provider_code=provider_code,
        statements=len(statements),
        summary_rows=summary_rows,
        redemptions=count,
        detail_rows=detail_rows,
        total_amount=Money(totals[0], "CNY"),
        government_total=Money(totals[1], "CNY"),
        senior_total=Money(totals[2], "CNY"),
    )


CSV_COLUMNS = [header for header, _width in DETAIL_COLUMNS]


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
    check_exportable(month=month, provider_code=provider_code)
    tiers = selectors.tier_names()
    providers, items = _names_as_settled(
        selectors.statements_for_period(month=month, provider_code=provider_code)
    )
    handle = open(out, "w", encoding="utf-8-sig", newline="") if isinstance(out, str) else out  # noqa: SIM115
    try:
        if not isinstance(out, str):
            handle.write("\ufeff")
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        written = 0
        for row in selectors.redemption_rows_for_detail(month=month, provider_code=provider_code):
            writer.writerow(
                [
                    row["id"],
                    _csv_text(row["provider__code"]),
                    _csv_text(providers.get(row["provider_id"]) or row["provider__name"]),
                    f"{row['served_at'].astimezone(SHANGHAI):%Y-%m-%d %H:%M}",
                    _csv_text(mask_name(row["voucher__senior__name"])),
                    row["voucher_id"],
                    _csv_text(tiers.get(row["tier_code"], row["tier_code"])),
                    _csv_text(items.get(row["service_item_id"]) or row["service_item__name"]),
                    row["quantity"],
                    _amount(row["unit_price"]),
                    _amount(row["amount"]),
                    _amount(row["government_share"]),
                    _amount(row["senior_share"]),
                    _csv_text(row["staff__display_name"]),
                    _voided(row),
                ]
            )
            written += 1
    finally:
        if isinstance(out, str):
            handle.close()
    return written
