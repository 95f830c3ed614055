"""The three forms of the visiting programme as workbooks (openpyxl, write-only), print-ready:

- 情况统计表 (`write_statistics`): per subdistrict and community, seniors by class, contact persons,
  the team, visits due and done, the rate; subdistrict subtotals and a total;
- 基本信息登记表 (`write_registration`): one senior per sheet, a form to print and file;
- 服务记录表 (`write_records`): the visits of a senior or of a month, one row each.

Headers and sheet names are Chinese whatever the page language (documents of record); every text
cell goes through `config.xlsx.text_cell`, so a name that looks like a formula stays text (§6.8).
ID-card numbers are masked unless the user may see them whole.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import BinaryIO

from django.db.models import OuterRef, QuerySet, Subquery
from django.utils import timezone
from openpyxl import Workbook
from openpyxl.styles import Alignment, Border, Font, Side
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from carevisits.models import VisitRecord
from carevisits.selectors import Picture, PictureRow, care_class_of, current_pairing, emergency_contact
from config.xlsx import text_cell
from eligibility.models import Determination, Senior, mask_id_card_number

TITLE_FONT = Font(bold=True, size=16)
BOLD = Font(bold=True)
THIN = Side(style="thin")
BOX = Border(left=THIN, right=THIN, top=THIN, bottom=THIN)
WRAP = Alignment(wrap_text=True, vertical="top")
CENTRE = Alignment(horizontal="center", vertical="center", wrap_text=True)
DATE = "yyyy-mm-dd"
DATETIME = "yyyy-mm-dd hh:mm"
PERCENT = "0.0%"

MODE_ZH = {"home": "入户探访", "phone": "电话探访", "video": "视频探访", "remote": "远程监测"}
REFERRAL_ZH = {
    "": "",
    "social_worker": "社工",
    "medical": "医疗机构",
    "police": "公安",
    "family": "家属",
    "other": "其他",
}
SEX_ZH = {"M": "男", "F": "女"}
LIVING_ZH = {"alone": "独居", "empty_nest": "空巢", "left_behind": "留守", "with_family": "与家人同住"}
SELF_CARE_ZH = {"independent": "能自理", "partial": "部分自理", "disabled": "不能自理（失能）"}
CHECK = "√"


def _print_setup(sheet: Worksheet, *, landscape: bool, title_rows: str | None, header: str = "") -> None:
    sheet.page_setup.orientation = "landscape" if landscape else "portrait"
    sheet.page_setup.paperSize = Worksheet.PAPERSIZE_A4
    sheet.page_setup.fitToWidth = 1
    sheet.page_setup.fitToHeight = 0
    sheet.sheet_properties.pageSetUpPr.fitToPage = True
    sheet.print_options.horizontalCentered = True
    if title_rows:
        sheet.print_title_rows = title_rows
    if header:
        sheet.oddHeader.center.text = header
    sheet.oddFooter.center.text = "&P / &N"


def _widths(sheet: Worksheet, widths: Iterable[int]) -> None:
    for index, width in enumerate(widths, start=1):
        sheet.column_dimensions[get_column_letter(index)].width = width


def _cell(sheet, value, *, font=None, fmt=None, align=None, border=True):
    cell = text_cell(sheet, value)
    if font is not None:
        cell.font = font
    if fmt is not None and value is not None and value != "":
        cell.number_format = fmt
    if align is not None:
        cell.alignment = align
    if border:
        cell.border = BOX
    return cell


# --- 情况统计表 ----------------------------------------------------------------------------------

STATISTICS_SHEET = "情况统计表"
STATISTICS_COLUMNS = [
    ("序号", 6),
    ("街道", 14),
    ("社区", 16),
    ("特殊困难老年人合计", 10),
    ("A类", 7),
    ("B类", 7),
    ("C类", 7),
    ("已结对人数", 9),
    ("联系人（工作人员）", 10),
    ("联系人（志愿者）", 10),
    ("队伍人数", 8),
    ("应探访次数", 9),
    ("已探访次数", 9),
    ("探访率", 8),
    ("拒绝探访", 8),
    ("入户超期", 8),
    ("紧急情况未结", 8),
]


def _statistics_values(row: PictureRow) -> list:
    return [
        row.seniors,
        row.class_a,
        row.class_b,
        row.class_c,
        row.paired,
        row.contact_workers,
        row.contact_volunteers,
        row.contact_persons,
        row.due,
        row.done,
        row.rate if row.rate is not None else "—",
        row.declined,
        row.home_overdue,
        row.open_urgent,
    ]


def write_statistics(*, picture: Picture, out: str | BinaryIO, parents: dict[int, str] | None = None) -> int:
    """The statistics table of `picture` (its rows and total); returns the rows written.

    `parents` maps a community row's region to its subdistrict's name, for a picture of
    communities; otherwise the rows' own names fill the first name column."""
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(STATISTICS_SHEET)
    _widths(sheet, (width for _header, width in STATISTICS_COLUMNS))
    sheet.freeze_panes = "A4"
    place = picture.region.name if picture.region else "全市"
    title = f"{place}特殊困难老年人探访关爱服务情况统计表"
    _print_setup(sheet, landscape=True, title_rows="3:3", header=title)
    sheet.append([_cell(sheet, title, font=TITLE_FONT, border=False)])
    sheet.append(
        [
            _cell(
                sheet,
                f"统计月份：{picture.month:%Y年%m月}    填报日期：{timezone.localdate():%Y-%m-%d}",
                border=False,
            )
        ]
    )
    sheet.append([_cell(sheet, header, font=BOLD, align=CENTRE) for header, _width in STATISTICS_COLUMNS])
    written = 0
    community_level = picture.level == "community"
    for number, row in enumerate(picture.rows, start=1):
        first, second = (parents or {}).get(row.region_id, ""), row.name
        if not community_level:
            first, second = row.name, ""
        values = [number, first, second, *_statistics_values(row)]
        sheet.append(
            [
                _cell(sheet, value, fmt=PERCENT if index == 13 and isinstance(value, float) else None)
                for index, value in enumerate(values)
            ]
        )
        written += 1
    total = ["", "合计", "", *_statistics_values(picture.total)]
    sheet.append(
        [
            _cell(sheet, value, font=BOLD, fmt=PERCENT if index == 13 and isinstance(value, float) else None)
            for index, value in enumerate(total)
        ]
    )
    sheet.append([])
    sheet.append(
        [
            _cell(
                sheet,
                "说明：应探访次数按各类别每月最低探访次数（含临时提高的要求）计；探访率 = 已探访次数 ÷ 应探访次数，"
                "拒绝探访并有书面记录的老人不计入应探访；入户超期指超过该类别入户探访间隔仍未入户。",
                border=False,
            )
        ]
    )
    sheet.append(
        [_cell(sheet, "填报人：                审核人：                单位（盖章）：", border=False)]
    )
    workbook.save(out)
    return written


# --- 基本信息登记表 ------------------------------------------------------------------------------


def _age(birth: dt.date, on: dt.date) -> int:
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


def write_registration(*, seniors: Iterable[Senior], out: str | BinaryIO, full_id_card_numbers: bool) -> int:
    """One sheet per senior: the registration form of the programme; returns the sheets written."""
    workbook = Workbook(write_only=True)
    today = timezone.localdate()
    written = 0
    used: set[str] = set()
    for senior in seniors:
        name = f"{senior.name}"[:25]
        title = name
        suffix = 2
        while title in used:  # sheet names are unique; two people can share a name
            title = f"{name}({suffix})"
            suffix += 1
        used.add(title)
        sheet = workbook.create_sheet(title)
        _widths(sheet, (16, 22, 16, 22))
        _print_setup(sheet, landscape=False, title_rows=None)
        number = senior.id_card_number if full_id_card_numbers else mask_id_card_number(senior.id_card_number)
        pairing = current_pairing(senior=senior)
        emergency = emergency_contact(senior)
        contact_name = pairing.contact_name if pairing else ""
        contact_phone = ""
        if pairing is not None:
            contact_phone = pairing.volunteer.phone if pairing.volunteer_id else ""
        community = senior.community
        rows = [
            ("姓名", senior.name, "性别", SEX_ZH.get(senior.sex, senior.sex)),
            ("出生日期", senior.birth_date, "年龄", _age(senior.birth_date, today)),
            ("身份证号", number, "联系电话", senior.phone),
            ("所属街道", community.parent.name if community.parent_id else "", "所属社区", community.name),
            ("家庭住址", senior.address, "探访分类", f"{care_class_of(senior)}类"),
            (
                "居住状况",
                LIVING_ZH.get(senior.living_arrangement, ""),
                "自理能力",
                SELF_CARE_ZH.get(senior.self_care, ""),
            ),
            (
                "低保",
                "是" if senior.receives_dibao else "否",
                "计生特殊家庭",
                "是" if senior.family_planning_special else "否",
            ),
            (
                "紧急联系人",
                emergency.name if emergency else "",
                "与老人关系",
                emergency.relation if emergency else "",
            ),
            ("紧急联系电话", emergency.phone if emergency else "", "", ""),
            ("探访关爱联系人", contact_name, "联系人电话", contact_phone),
            (
                "结对日期",
                pairing.starts_on if pairing else "",
                "登记日期",
                timezone.localtime(senior.created_at).date(),
            ),
        ]
        sheet.append([_cell(sheet, "特殊困难老年人基本信息登记表", font=TITLE_FONT, border=False)])
        sheet.append([_cell(sheet, f"填表日期：{today:%Y-%m-%d}", border=False)])
        for label1, value1, label2, value2 in rows:
            sheet.append(
                [
                    _cell(sheet, label1, font=BOLD, align=CENTRE),
                    _cell(sheet, value1, fmt=DATE if isinstance(value1, dt.date) else None, align=WRAP),
                    _cell(sheet, label2, font=BOLD, align=CENTRE),
                    _cell(sheet, value2, fmt=DATE if isinstance(value2, dt.date) else None, align=WRAP),
                ]
            )
        sheet.append([_cell(sheet, "主要困难与需求", font=BOLD, align=CENTRE), _cell(sheet, "", align=WRAP)])
        sheet.append([])
        sheet.append(
            [
                _cell(
                    sheet,
                    "老人（家属）签字：              联系人签字：              社区（盖章）：",
                    border=False,
                )
            ]
        )
        written += 1
    if not written:
        workbook.create_sheet("基本信息登记表")
    workbook.save(out)
    return written


# --- 服务记录表 ---------------------------------------------------------------------------------

RECORDS_SHEET = "服务记录表"
RECORD_COLUMNS = [
    ("序号", 6),
    ("街道", 12),
    ("社区", 12),
    ("老人姓名", 10),
    ("分类", 6),
    ("探访时间", 17),
    ("探访方式", 10),
    ("结果", 8),
    ("生活起居异常", 7),
    ("健康状况变化", 7),
    ("安全隐患", 7),
    ("服务需求", 7),
    ("情况记录", 36),
    ("紧急情况", 7),
    ("转介", 9),
    ("处理措施", 20),
    ("跟进日期", 11),
    ("探访人", 10),
]


def _with_class(records: QuerySet[VisitRecord]) -> QuerySet[VisitRecord]:
    current = Determination.objects.filter(senior=OuterRef("senior_id"), is_current=True)
    return records.annotate(care_class=Subquery(current.values("care_visit_class")[:1]))


def write_records(*, records: QuerySet[VisitRecord], out: str | BinaryIO, title: str = "") -> int:
    """The visit record form: one row per record of `records` (scoped and ordered by the caller);
    returns the rows written. Streams: a city's month never sits in memory as cells."""
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(RECORDS_SHEET)
    _widths(sheet, (width for _header, width in RECORD_COLUMNS))
    sheet.freeze_panes = "A3"
    heading = f"特殊困难老年人探访关爱服务记录表{'（' + title + '）' if title else ''}"
    _print_setup(sheet, landscape=True, title_rows="2:2", header=heading)
    sheet.append([_cell(sheet, heading, font=TITLE_FONT, border=False)])
    sheet.append([_cell(sheet, header, font=BOLD, align=CENTRE) for header, _width in RECORD_COLUMNS])
    written = 0
    for number, record in enumerate(_with_class(records).iterator(chunk_size=2000), start=1):
        community = record.senior.community
        values = [
            number,
            community.parent.name if community.parent_id else "",
            community.name,
            record.senior.name,
            record.care_class or "",
            timezone.localtime(record.visited_at).replace(tzinfo=None),
            MODE_ZH[record.mode],
            "已探访" if record.outcome == VisitRecord.Outcome.VISITED else "拒绝探访",
            CHECK if record.living_problem else "",
            CHECK if record.health_problem else "",
            CHECK if record.safety_hazard else "",
            CHECK if record.needs_help else "",
            record.notes,
            "是" if record.urgent else "",
            REFERRAL_ZH[record.referral],
            record.action_taken,
            record.follow_up_on or "",
            record.visitor_name,
        ]
        cells = []
        for index, value in enumerate(values):
            fmt = DATETIME if index == 5 else DATE if index == 16 else None
            cells.append(_cell(sheet, value, fmt=fmt, align=WRAP if index in (12, 15) else None))
        sheet.append(cells)
        written += 1
    workbook.save(out)
    return written
