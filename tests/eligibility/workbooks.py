"""Registry workbooks for the import tests, written with openpyxl as a spreadsheet program would."""

import datetime as dt
import io

from openpyxl import Workbook

from eligibility.importer import COLUMNS, DATA_SHEET
from tests.factories import make_id_card_number

ZH = {column.field: column.zh for column in COLUMNS}
EN = {column.field: column.en for column in COLUMNS}


def senior_row(home, /, **cells) -> dict:
    """A valid row (field name -> cell value) of a senior living in `home` (a community)."""
    row = {
        "id_card_number": make_id_card_number(birth_date=dt.date(1948, 3, 1)),
        "name": "王秀英",
        "community": home.code,
        "phone": "13800138000",
        "address": "北山街道保俶路1号",
        "living_arrangement": "独居",
        "self_care": "部分自理",
        "children_in_city": "否",
        "receives_dibao": "是",
        "emergency_contact_name": "王建国",
        "emergency_contact_relation": "儿子",
        "emergency_contact_phone": "13900139000",
    }
    row.update(cells)
    return row


def workbook(
    rows: list[dict], *, headers: dict | None = None, fields: list | None = None, sheet=DATA_SHEET
) -> bytes:
    """An xlsx of `rows` (dicts of field name -> cell value; a missing key is a blank cell).

    `headers` maps a field to the header written for it (Chinese by default); `fields` gives the
    columns and their order (by default every field the rows use, in the template's order).
    """
    headers = {**ZH, **(headers or {})}
    if fields is None:
        used = {name for row in rows for name in row}
        fields = [column.field for column in COLUMNS if column.field in used]
    book = Workbook()
    book.active.title = sheet
    book.active.append([headers[name] for name in fields])
    for row in rows:
        book.active.append([row.get(name) for name in fields])
        for cell in book.active[book.active.max_row]:
            if isinstance(cell.value, str):
                cell.data_type = "s"  # typed text, even when it starts with "=" (as '=… in Excel)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
