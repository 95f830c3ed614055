"""The registry workbook (老年人名册): the seniors of a list page, as filtered, in one sheet.

Written with openpyxl in write-only mode from a database iterator, so a whole city streams to a
temporary file instead of sitting in memory as cells. ID-card numbers are masked unless the user
may see them whole; text that looks like a formula is written as text (`config.xlsx`, §6.8).

Headers, sheet name and values are Chinese whatever the page language: the workbook is a document
of record in a fixed format that workers and scripts read. Its columns are the import's, under the
import's headers and in its words (plus where the senior lives and what the registry derives), so
a workbook exported with whole ID-card numbers can be corrected and imported again.
"""

from dataclasses import dataclass
from typing import BinaryIO

from django.db.models import QuerySet
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

from config.xlsx import text_cell
from eligibility import importer
from eligibility.models import Senior, mask_id_card_number
from eligibility.selectors import with_current_determination

SHEET = "老年人名册"
DATE_FORMAT = "yyyy-mm-dd"
CHUNK = 2_000

SEX = {"M": "男", "F": "女"}
YES_NO = {True: "是", False: "否"}
# The import's own words for each value (its first label), so an export re-imports as it is.
CHOICES = {
    "living_arrangement": {code: labels[0] for code, labels in importer.LIVING_ARRANGEMENT_VALUES.items()},
    "self_care": {code: labels[0] for code, labels in importer.SELF_CARE_VALUES.items()},
    "status": {code: labels[0] for code, labels in importer.STATUS_VALUES.items()},
}


@dataclass(frozen=True)
class Column:
    header: str
    width: int
    source: str  # the value's column in the query
    shown: dict | None = None  # stored value -> what the cell says


def _columns() -> list[Column]:
    """Where the senior lives, then the import's columns under the import's headers (the
    community by its code), then what the registry derives: sex, birth date, tier, care class."""
    imported = []
    for column in importer.COLUMNS:
        source = "community__code" if column.field == "community" else column.field
        shown = YES_NO if column.kind == "flag" else CHOICES.get(column.field)
        width = {"id": 21, "text": 14, "phone": 15, "date": 12}.get(
            column.kind, max(8, len(column.zh) * 2 + 2)
        )
        imported.append(Column(column.zh, 30 if column.field == "address" else width, source, shown))
    return [
        Column("街道", 14, "community__parent__name"),
        Column("社区", 14, "community__name"),
        *imported,
        Column("性别", 6, "sex", SEX),
        Column("出生日期", 12, "birth_date"),
        Column("服务类别", 10, "current_tier_name"),
        Column("探访分类", 8, "current_care_class"),
    ]


COLUMNS = _columns()
DATE_COLUMNS = frozenset({"birth_date", "status_date"})


def export_registry(*, seniors: QuerySet[Senior], out: str | BinaryIO, full_id_card_numbers: bool) -> int:
    """Write `seniors` (already scoped to the user and filtered) to `out`; returns the rows written.

    Reads only. `full_id_card_numbers` only for users who may see them
    (`eligibility.selectors.may_see_full_id_card_number`).
    """
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(SHEET)
    # Write-only sheets take widths and panes before the first row.
    for index, column in enumerate(COLUMNS, start=1):
        sheet.column_dimensions[get_column_letter(index)].width = column.width
    sheet.freeze_panes = "C2"
    bold = Font(bold=True)
    header = []
    for column in COLUMNS:
        cell = WriteOnlyCell(sheet, value=column.header)
        cell.font = bold
        header.append(cell)
    sheet.append(header)

    rows = (
        with_current_determination(seniors)
        .order_by("community__path", "name_initials", "id")
        .values_list(*(column.source for column in COLUMNS))
        .iterator(chunk_size=CHUNK)
    )
    written = 0
    for row in rows:
        cells = []
        for column, value in zip(COLUMNS, row, strict=True):
            if column.source == "id_card_number" and not full_id_card_numbers:
                value = mask_id_card_number(value)
            elif column.shown is not None:
                value = column.shown.get(value, value)
            cell = text_cell(sheet, value if value is not None else "")
            if column.source in DATE_COLUMNS:
                cell.number_format = DATE_FORMAT
            cells.append(cell)
        sheet.append(cells)
        written += 1
    workbook.save(out)
    return written
