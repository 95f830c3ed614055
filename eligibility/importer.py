"""Importing the senior registry from a workbook (导入老年人): the column map, reading and checking
rows, the annotated copy of a refused file, and the template.

`run_import` reads the data sheet with python-calamine and checks it in batches of rows, a
column at a time, with the registry's own rules (`services.normalise_*`, the model's choices,
the minimum age). In one transaction, two passes:

1. every row is checked; each batch's registered seniors are looked up (and locked) in one
   query, and its new seniors inserted in bulk with their history rows, attributed to the
   importing user: by COPY and INSERT … SELECT on PostgreSQL, where these statements run on a
   second thread, on the same connection, while the next batch is checked (`_Pipeline`);
2. the rows of registered seniors are read again and each change goes through
   `services.apply_senior_changes`, the one definition of an edit (a status through
   `change_senior_status`), saved in bulk with history.

Any refused cell, or a dry run, rolls the transaction back at the end: all rows or none, and
every error at once, each with its row and column. bench/import_seniors.py measures it.

The template and the annotated copy are written with openpyxl; their headers and instructions
are in Chinese and English whatever the page language (a form in a fixed format).
"""

import datetime as dt
import functools
import io
import re
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from typing import BinaryIO
from xml.etree import ElementTree

from django.db import IntegrityError, OperationalError, connection, transaction
from django.utils import timezone, translation
from django.utils.functional import Promise, lazy
from django.utils.translation import gettext_lazy as _
from python_calamine import CalamineError, CalamineWorkbook
from simple_history.utils import bulk_create_with_history, bulk_update_with_history
from stdnum.cn import ric
from stdnum.exceptions import ValidationError as StdnumValidationError

from config.months import local_date
from config.xlsx import FORMULA_PREFIXES
from eligibility.errors import EligibilityError
from eligibility.models import Region, Senior
from eligibility.names import name_initials
from eligibility.normalise import birth_date_of, sex_of
from eligibility.selectors import communities_visible_to
from eligibility.services import (
    EDITABLE_FIELDS,
    MINIMUM_AGE,
    age_on,
    apply_senior_changes,
    change_senior_status,
    normalise_id_card_number,
    normalise_phone,
    normalise_text,
)

# Up to this many rows an upload is imported while the page waits; above it, by a Celery worker.
INLINE_LIMIT = 2000
# Rows per batch: checked together, looked up (and locked) in one query, inserted in one COPY.
LOOKUP_BATCH = 5000
# The change reason in the history of every senior an import creates or changes.
CHANGE_REASON = "import"

DATA_SHEET = "老年人"
INSTRUCTIONS_SHEET = "导入说明"
ERRORS_SHEET = "错误清单"
EXAMPLE_COMMUNITY_CODE = "330106001001"
# Excel's "Bad" cell style: a light red fill, dark red text.
BAD_FILL_COLOUR, BAD_TEXT_COLOUR = "FFFFC7CE", "FF9C0006"
# Excel keeps 15 significant digits of a number: an 18-digit ID typed as a number is lost.
EXCEL_DIGITS = 15


# --- The columns --------------------------------------------------------------------------------

LIVING_ARRANGEMENT_VALUES = {
    "alone": ("独居", "Lives alone", "alone"),
    "empty_nest": ("空巢", "Empty-nest", "empty nest", "Empty-nest (lives without children)"),
    "left_behind": ("留守", "Left-behind", "left behind"),
    "with_family": ("与家人同住", "Lives with family", "with family", "与子女同住"),
}
SELF_CARE_VALUES = {
    "independent": ("能自理", "able", "Able to care for self", "自理"),
    "partial": ("部分自理", "partly", "Partly able to care for self", "半自理", "半失能"),
    "disabled": ("不能自理", "unable", "Unable to care for self (disabled)", "失能"),
}
STATUS_VALUES = {
    "active": ("正常", "Active", "在册"),
    "moved_away": ("迁出", "Moved out", "moved away"),
    "deceased": ("去世", "Deceased", "死亡", "已故"),
}
YES = ("是", "yes", "y", "true", "1", "√", "✓", "✔", "有")
NO = ("否", "no", "n", "false", "0", "×", "✗", "✘", "无")
DATE_FORMATS_TEXT = "2024-03-01, 2024/3/1, 2024年3月1日"


@dataclass(frozen=True)
class Column:
    """One column of the workbook: the Senior field it fills, its headers, how a cell is read."""

    field: str
    zh: str
    en: str
    kind: str  # id, text, community, phone, choice, flag, status, date
    required: bool = False
    aliases: tuple[str, ...] = ()
    allowed: str = ""  # the instructions' "allowed values", bilingual
    examples: tuple = ("", "")  # the template's two example rows

    @functools.cached_property
    def max_length(self) -> int | None:
        if self.kind in ("text", "phone"):
            return Senior._meta.get_field(self.field).max_length
        return None


def _choice_text(values: dict) -> str:
    return "；".join(f"{labels[0]} / {code}" for code, labels in values.items())


_FLAG_TEXT = "是 / 否（也可 yes/no、Y/N、1/0、true/false、√/×）"


def _flag(field_name: str, zh: str, examples=("否", "否"), aliases=()) -> Column:
    return Column(field_name, zh, field_name, "flag", aliases=aliases, allowed=_FLAG_TEXT, examples=examples)


COLUMNS: tuple[Column, ...] = (
    Column(
        "id_card_number",
        "身份证号",
        "id_card_number",
        "id",
        required=True,
        aliases=("身份证号码", "公民身份号码", "ID-card number", "ID card number"),
        allowed="18位（旧证15位），请设为文本格式 / 18 characters (15 for an old card), formatted as text",
    ),
    Column("name", "姓名", "name", "text", required=True, allowed="老人姓名 / the senior's name"),
    Column(
        "community",
        "社区编码",
        "community_code",
        "community",
        required=True,
        aliases=("社区代码", "community"),
        allowed="社区的区划编码 / the community's region code",
    ),
    Column(
        "phone",
        "联系电话",
        "phone",
        "phone",
        aliases=("电话", "手机号码"),
        allowed="手机11位，或区号-号码 / an 11-digit mobile, or area code-number",
        examples=("13800138000", "0571-87061234"),
    ),
    Column(
        "address",
        "住址",
        "address",
        "text",
        aliases=("地址", "居住地址"),
        allowed="文字 / text",
        examples=("北山街道保俶路1号", "北山街道曙光路12号3单元"),
    ),
    Column(
        "living_arrangement",
        "居住情况",
        "living_arrangement",
        "choice",
        allowed=_choice_text(LIVING_ARRANGEMENT_VALUES),
        examples=("独居", "与家人同住"),
    ),
    Column(
        "self_care",
        "自理能力",
        "self_care",
        "choice",
        allowed=_choice_text(SELF_CARE_VALUES),
        examples=("部分自理", "能自理"),
    ),
    _flag("children_in_city", "子女在本市", examples=("否", "是")),
    _flag("dementia", "失智"),
    _flag("severely_disabled", "重度残疾"),
    _flag("receives_dibao", "享受低保", examples=("是", "否"), aliases=("低保",)),
    _flag("three_no", "三无或特困", aliases=("三无", "特困")),
    _flag("special_care_recipient", "重点优抚对象"),
    _flag("five_old", "五老人员"),
    _flag("family_planning_special", "计生特殊家庭"),
    _flag("receives_civil_affairs_assistance", "享受民政救助", examples=("是", "否")),
    _flag("hardship_assessed", "社区认定困难"),
    _flag("cares_for_disabled_child", "照料残疾或失智子女"),
    _flag("couple_one_disabled", "夫妻一方失能或失智"),
    _flag("special_difficulty", "特殊困难老人", examples=("是", "否")),
    Column(
        "emergency_contact_name",
        "紧急联系人",
        "emergency_contact_name",
        "text",
        allowed="姓名 / a name",
        examples=("王建国", "李丽"),
    ),
    Column(
        "emergency_contact_relation",
        "紧急联系人关系",
        "emergency_contact_relation",
        "text",
        aliases=("与老人关系",),
        allowed="如 儿子、女儿、邻居 / e.g. son, daughter, neighbour",
        examples=("儿子", "女儿"),
    ),
    Column(
        "emergency_contact_phone",
        "紧急联系人电话",
        "emergency_contact_phone",
        "phone",
        allowed="同联系电话 / as the phone",
        examples=("13900139000", "13700137000"),
    ),
    Column(
        "status",
        "状态",
        "status",
        "status",
        allowed=_choice_text(STATUS_VALUES) + "；空白为正常 / blank: active",
        examples=("正常", "正常"),
    ),
    Column(
        "status_date",
        "状态日期",
        "status_date",
        "date",
        allowed=f"{DATE_FORMATS_TEXT} 或 Excel 日期；空白为导入当天 / or an Excel date; blank: today",
        examples=(dt.date(2025, 1, 1), "2025/3/1"),
    ),
)


def _key(text: str) -> str:
    """Headers and enumeration values compare without case, spaces, underscores or brackets."""
    return re.sub(r"[\s_\-*＊:：()（）]", "", normalise_text(text)).casefold()


def _header_key(text: str) -> str:
    return _key(re.sub(r"[(（](必填|required)[)）]", "", str(text), flags=re.IGNORECASE))


def _headers() -> dict[str, Column]:
    """Every accepted spelling of every header; no spelling may name two columns."""
    headers: dict[str, Column] = {}
    for column in COLUMNS:
        english = str(Senior._meta.get_field(column.field).verbose_name)  # untranslated source
        for name in (column.zh, column.en, column.field, english, *column.aliases):
            key = _header_key(name)
            if headers.setdefault(key, column) is not column:
                raise ValueError(f"the header {name!r} would name two columns")
    return headers


with translation.override(None):
    HEADERS = _headers()


def _value_table(values: dict) -> dict[str, str]:
    return {_key(label): code for code, labels in values.items() for label in (code, *labels)}


VALUE_TABLES = {
    "living_arrangement": _value_table(LIVING_ARRANGEMENT_VALUES),
    "self_care": _value_table(SELF_CARE_VALUES),
    "status": _value_table(STATUS_VALUES),
    "flag": {**{_key(word): True for word in YES}, **{_key(word): False for word in NO}},
}
ALLOWED_TEXT = {
    "living_arrangement": _choice_text(LIVING_ARRANGEMENT_VALUES),
    "self_care": _choice_text(SELF_CARE_VALUES),
    "status": _choice_text(STATUS_VALUES),
    "flag": "是/否, yes/no, Y/N, 1/0, true/false, √/×",
}


# --- The report ---------------------------------------------------------------------------------

LANGUAGES = ("zh-hans", "en")


def _interpolate(message, params: dict) -> str:
    return str(message) % params


_lazy_interpolate = lazy(_interpolate, str)


def _message(message, /, **params):
    """A lazily translated message with its parameters, rendered in the language of the moment."""
    return _lazy_interpolate(message, params) if params else message


def _stored_text(texts: dict) -> str:
    language = translation.get_language() or LANGUAGES[0]
    return texts.get("en" if language.startswith("en") else "zh-hans") or next(iter(texts.values()), "")


_lazy_stored_text = lazy(_stored_text, str)


def message_in(message, language: str) -> str:
    with translation.override(language):
        return str(message)


@dataclass(frozen=True)
class RowError:
    """One refused cell: `row` is the spreadsheet's row number (the header is row 1 in the
    template; 0 for a problem of the whole file), `column` the header as written in the file
    ('' for the whole file), `code` stable, `message` lazily translated."""

    row: int
    column: str
    code: str
    message: str | Promise

    def to_json(self) -> dict:
        return {
            "row": self.row,
            "column": self.column,
            "code": self.code,
            "message": {language: message_in(self.message, language) for language in LANGUAGES},
        }

    @classmethod
    def from_json(cls, data: dict) -> "RowError":
        texts = data["message"] if isinstance(data["message"], dict) else {"zh-hans": data["message"]}
        return cls(
            row=data["row"], column=data["column"], code=data["code"], message=_lazy_stored_text(texts)
        )


@dataclass
class ImportReport:
    ok: bool
    dry_run: bool
    total_rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[RowError] = field(default_factory=list)
    annotated_workbook: bytes | None = None

    def to_json(self) -> dict:
        """For ImportJob.report: counts, and each error's message in zh-Hans and English (the
        annotated workbook is stored beside it, in ImportJob.annotated_workbook)."""
        return {
            "ok": self.ok,
            "dry_run": self.dry_run,
            "total_rows": self.total_rows,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "errors": [error.to_json() for error in self.errors],
        }

    @classmethod
    def from_json(cls, data: dict, *, annotated_workbook: bytes | None = None) -> "ImportReport":
        return cls(
            ok=data.get("ok", False),
            dry_run=data.get("dry_run", False),
            total_rows=data.get("total_rows", 0),
            created=data.get("created", 0),
            updated=data.get("updated", 0),
            unchanged=data.get("unchanged", 0),
            errors=[RowError.from_json(error) for error in data.get("errors", [])],
            annotated_workbook=annotated_workbook,
        )


# --- Messages -----------------------------------------------------------------------------------

MESSAGES = {
    "required": _("This cell must not be empty."),
    "id_card_number_as_number": _(
        "The ID-card number is stored as a number, and Excel keeps only 15 digits of a number, so "
        "its last digits are lost. Format the column as text and type the number again."
    ),
    "duplicate_in_file": _("The same ID-card number is already on row %(row)s of this file."),
    "unknown_community": _("There is no community with the code %(code)s."),
    "not_a_community": _("%(code)s is a district or subdistrict; seniors are registered in a community."),
    "not_in_your_scope": _("The community %(code)s is not one of those you look after."),
    "registered_elsewhere": _("This person is registered in a community you do not look after."),
    "invalid_date": _("Not a date: write it as 2024-03-01, 2024/3/1 or 2024年3月1日."),
    "impossible_date": _("There is no such day as %(value)s."),
    "date_out_of_range": _("The date must be between the birth date and today."),
    "under_60": _("This person is %(age)s; the registry is for residents aged 60 and over."),
    "unknown_value": _("Not one of the allowed values: %(allowed)s."),
    "too_long": _("At most %(max)s characters."),
    "missing_column": _("The column %(zh)s (%(en)s) is missing."),
    "duplicate_column": _("Two columns are both %(zh)s (%(en)s)."),
    "not_xlsx": _("This file is not an Excel workbook (.xlsx). Save it as .xlsx and upload it again."),
    "empty_file": _("The file is empty."),
    "no_rows": _("The workbook has no rows of seniors under the header."),
    "not_permitted": _("You may not import seniors."),
    "duplicate_senior": _(
        "Someone registered one of these seniors while the import ran, so nothing was imported. "
        "Import the file again."
    ),
    "import_conflict": _(
        "Another import changed some of these seniors at the same time, so nothing was imported. "
        "Import the file again."
    ),
}


class _CellRefused(Exception):
    """A cell that cannot be read: the code and message of its RowError."""

    def __init__(self, code: str, message):
        self.code, self.message = code, message
        super().__init__(code)


def _refuse(error_code: str, key: str | None = None, /, **params):
    """Refuse a cell with `error_code` and the message MESSAGES[key] (by default the code's)."""
    raise _CellRefused(error_code, _message(MESSAGES[key or error_code], **params))


# --- Reading cells: a column of a batch at a time -----------------------------------------------

_REFUSED = object()  # a cell refused (its error is recorded); not blank, not a value
_MISSING = object()


def _as_text(raw) -> str:
    """A cell as text: numbers without a spurious ".0", dates as ISO dates, spaces normalised."""
    if raw.__class__ is str:
        return normalise_text(raw)
    if isinstance(raw, bool):
        return "是" if raw else "否"
    if isinstance(raw, float) and raw.is_integer():
        raw = int(raw)
    elif isinstance(raw, dt.datetime):
        raw = raw.date() if raw.time() == dt.time() else raw
    if isinstance(raw, dt.date):
        raw = raw.isoformat()
    return normalise_text(raw)


@functools.cache
def _birth_place_known(prefix: str) -> bool:
    try:
        ric.get_birth_place(prefix)
    except StdnumValidationError:
        return False
    return True


def read_id_card_number(raw) -> str:
    """`services.normalise_id_card_number`, quicker for the usual valid 18-character number.

    stdnum's region lookup costs about 0.2 ms a call; here it is looked up once per region
    prefix. A number takes the quick path only when it passes every check `ric.validate` makes,
    so the result is what normalise_id_card_number returns; anything else goes through it, for
    its exact refusal (or the conversion of a 15-digit card).
    """
    number = normalise_text(raw).replace(" ", "").upper()
    if (
        len(number) == 18
        and number.isascii()
        and number[:17].isdigit()
        and number[17] == ric.calc_check_digit(number)
        and _birth_place_known(number[:6])
    ):
        try:
            dt.date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
        except ValueError:
            pass
        else:
            return number
    return normalise_id_card_number(number)


def _parse_id(raw, column: Column, state):
    if isinstance(raw, (int, float)) and not isinstance(raw, bool) and abs(raw) >= 10**EXCEL_DIGITS:
        _refuse("id_card_number_as_number")
    text = raw if raw.__class__ is str else _as_text(raw)  # read_id_card_number normalises text
    if not text or text.isspace():
        return None
    try:
        return read_id_card_number(text)
    except EligibilityError as error:
        raise _CellRefused(error.code, error.message) from None


def _parse_text(raw, column: Column, state):
    text = _as_text(raw)
    if column.max_length and len(text) > column.max_length:
        _refuse("too_long", max=column.max_length)
    return text or None


def _parse_phone(raw, column: Column, state):
    try:
        phone = normalise_phone(raw if raw.__class__ is str else _as_text(raw), field=column.field)
    except EligibilityError as error:
        raise _CellRefused(error.code, error.message) from None
    if len(phone) > column.max_length:
        _refuse("too_long", max=column.max_length)
    return phone or None


def _parse_community(raw, column: Column, state):
    code = _as_text(raw).replace(" ", "")
    if not code:
        return None
    community = state.communities.get(code)
    if community is None:
        _refuse("unknown_community", code=code)
    if community.level != Region.Level.COMMUNITY:
        _refuse("unknown_community", "not_a_community", code=code)
    if state.allowed is not None and community.pk not in state.allowed:
        _refuse("not_in_your_scope", code=code)
    return community


def _parse_enumeration(table_name: str):
    table = VALUE_TABLES[table_name]

    def parse(raw, column: Column, state):
        if table_name == "flag" and isinstance(raw, bool):
            return raw
        text = _as_text(raw)
        if not text:
            return None
        value = table.get(_key(text))
        if value is None:
            _refuse("unknown_value", allowed=ALLOWED_TEXT[table_name])
        return value

    return parse


_DATE_TEXT = re.compile(r"(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?")
_DATE_DIGITS = re.compile(r"(\d{4})(\d{2})(\d{2})")


def _parse_date(raw, column: Column, state):
    if isinstance(raw, dt.datetime):
        return raw.date()
    if isinstance(raw, dt.date):
        return raw
    text = _as_text(raw).replace(" ", "")
    if not text:
        return None
    match = _DATE_TEXT.fullmatch(text) or _DATE_DIGITS.fullmatch(text)
    if match is None:
        _refuse("invalid_date")
    try:
        return dt.date(*(int(part) for part in match.groups()))
    except ValueError:
        _refuse("invalid_date", "impossible_date", value=text)


PARSERS: dict[str, Callable] = {
    "id": _parse_id,
    "text": _parse_text,
    "phone": _parse_phone,
    "community": _parse_community,
    "date": _parse_date,
    "flag": _parse_enumeration("flag"),
    "status": _parse_enumeration("status"),
    "living_arrangement": _parse_enumeration("living_arrangement"),
    "self_care": _parse_enumeration("self_care"),
}
CACHE_LIMIT = 20_000  # distinct cells remembered per column (flags have two; names many)


class _ColumnReader:
    """Reads one column of a batch: a value (None when blank, _REFUSED when refused) per cell.

    Most columns repeat a few values (是/否, community codes, dates), so each remembers what it
    has read: a repeated cell costs one dictionary lookup. Only text is remembered by key, and
    booleans and dates where they mean the same (1 and True are equal keys in Python).
    """

    def __init__(self, position: int, column: Column, state):
        self.position, self.column, self.state = position, column, state
        self.parse = PARSERS[column.field if column.kind == "choice" else column.kind]
        self.remember_any = column.kind in ("flag", "date")
        self.cache: dict = {} if column.kind == "id" else {"": None}

    def read(self, raws, refuse) -> list:
        cache = self.cache
        try:
            return list(map(cache.__getitem__, raws))  # every cell read before: the usual case
        except KeyError:
            pass
        get = cache.get
        values = [get(raw, _MISSING) for raw in raws]
        if _MISSING not in values:
            return values
        column, state = self.column, self.state
        for index, value in enumerate(values):
            if value is not _MISSING:
                continue
            raw = raws[index]
            value = get(raw, _MISSING)  # read since, further up this batch
            if value is not _MISSING:
                values[index] = value
                continue
            try:
                value = self.parse(raw, column, state)
            except _CellRefused as refusal:
                refuse(index, self.position, refusal.code, refusal.message)
                values[index] = _REFUSED
                continue
            values[index] = value
            if (
                column.kind != "id"
                and len(cache) < CACHE_LIMIT
                and (raw.__class__ is str or self.remember_any)
            ):
                cache[raw] = value
        return values


# --- The workbook -------------------------------------------------------------------------------


class _FileRefused(Exception):
    def __init__(self, code: str, key: str | None = None):
        self.code, self.key = code, key or code
        super().__init__(code)


def _is_xlsx(data: bytes) -> bool:
    if not data.startswith(b"PK\x03\x04"):
        return False
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return "xl/workbook.xml" in archive.namelist()
    except zipfile.BadZipFile:
        return False


def _data_sheet_index(names: list[str]) -> int:
    """The sheet named 老年人 (or seniors); else the first that is not the instructions."""
    keys = [_key(name) for name in names]
    for wanted in (_key(DATA_SHEET), "seniors"):
        if wanted in keys:
            return keys.index(wanted)
    for index, key in enumerate(keys):
        if key not in (_key(INSTRUCTIONS_SHEET), "instructions"):
            return index
    return 0


def _open_sheet(data: bytes):
    """The data sheet, read whole by calamine (its cells then take about 1.6 kB a row)."""
    if not data:
        raise _FileRefused("empty_file")
    if not _is_xlsx(data):
        raise _FileRefused("not_xlsx")
    # From a file rather than from memory: calamine would first copy the bytes, and its peak
    # while reading the sheet is the import's peak (bench/README.md).
    with tempfile.NamedTemporaryFile(suffix=".xlsx") as file:
        file.write(data)
        file.flush()
        try:
            workbook = CalamineWorkbook.from_path(file.name)
            return workbook.get_sheet_by_index(_data_sheet_index(workbook.sheet_names))
        except CalamineError:
            raise _FileRefused("not_xlsx") from None


_XLSX_NAMESPACES = {
    "main": "http://schemas.openxmlformats.org/spreadsheetml/2006/main",
    "rel": "http://schemas.openxmlformats.org/officeDocument/2006/relationships",
    "pkg": "http://schemas.openxmlformats.org/package/2006/relationships",
}
_ROW_TAGS = (b"<row ", b"<row>", b":row ")  # and <x:row r="…"> of some writers


def count_rows(data: bytes) -> int:
    """About how many rows of seniors a workbook holds, without reading its cells: the `<row>`
    elements of its data sheet, less the header. 0 for a file that is not an xlsx workbook."""
    if not _is_xlsx(data):
        return 0
    ns = _XLSX_NAMESPACES
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            # ElementTree fetches no external entities, and the expat of Python 3.11 (2.4.1 and
            # later) refuses entity-expansion bombs: parts of an upload may be parsed with it.
            book = ElementTree.fromstring(archive.read("xl/workbook.xml"))  # noqa: S314
            sheets = book.findall("main:sheets/main:sheet", ns)
            chosen = sheets[_data_sheet_index([sheet.get("name", "") for sheet in sheets])]
            relation = chosen.get(f"{{{ns['rel']}}}id")
            rels = ElementTree.fromstring(archive.read("xl/_rels/workbook.xml.rels"))  # noqa: S314
            target = next(
                r.get("Target") for r in rels.findall("pkg:Relationship", ns) if r.get("Id") == relation
            )
            rows, tail = 0, b""
            with archive.open(target.lstrip("/") if target.startswith("/") else f"xl/{target}") as sheet:
                while chunk := sheet.read(1 << 20):
                    text = tail + chunk
                    tail = text[-5:]  # a tag cut in two is counted in the next text
                    rows += sum(text.count(tag) - tail.count(tag) for tag in _ROW_TAGS)
                rows += sum(tail.count(tag) for tag in _ROW_TAGS)
    except (KeyError, IndexError, StopIteration, ElementTree.ParseError, zipfile.BadZipFile):
        return 0
    return max(rows - 1, 0)


@dataclass
class _Layout:
    """Where the table is: the header's row number and the columns by position (counted from the
    sheet's first used column)."""

    header_row: int
    headers: list[str]  # as written
    plan: list[tuple[int, Column]]  # (position, column) of each recognised header


def _cell_is_empty(value) -> bool:
    return value is None or value == "" or (value.__class__ is str and not value.strip())


def _find_layout(rows: Iterator[list], errors: list) -> _Layout:
    """Read up to the header: the first row with two recognised headers among the first 20
    after the first non-empty row (a title may stand above it); else the first non-empty row."""
    first_non_empty = None
    for number, cells in enumerate(rows, start=1):
        if all(_cell_is_empty(cell) for cell in cells):
            continue
        headers = [_as_text(cell) for cell in cells]
        if first_non_empty is None:
            first_non_empty = (number, headers)
        if sum(1 for header in headers if header and _header_key(header) in HEADERS) >= 2:
            return _layout(number, headers, errors)
        if number - first_non_empty[0] >= 20:
            break
    if first_non_empty is None:
        raise _FileRefused("empty_file")
    return _layout(*first_non_empty, errors)


def _layout(number: int, headers: list[str], errors: list) -> _Layout:
    plan, seen = [], set()
    for position, header in enumerate(headers):
        column = HEADERS.get(_header_key(header)) if header else None
        if column is None:
            continue  # a column of the file's own (notes, serial numbers): not ours
        message = _message(MESSAGES["duplicate_column"], zh=column.zh, en=column.en)
        if column.field in seen:
            errors.append((RowError(number, header, "duplicate_column", message), position))
            continue
        seen.add(column.field)
        plan.append((position, column))
    for column in COLUMNS:
        if column.required and column.field not in seen:
            message = _message(MESSAGES["missing_column"], zh=column.zh, en=column.en)
            errors.append((RowError(0, "", "missing_column", message), None))
    return _Layout(number, headers, plan)


# --- Checking and writing -----------------------------------------------------------------------


@dataclass
class _Import:
    """One run: who imports into which communities, the table's layout, what has been found."""

    user: object
    dry_run: bool
    today: dt.date
    now: dt.datetime
    communities: dict[str, Region]
    allowed: set[int] | None  # community ids the user may import into; None: the whole city
    layout: _Layout
    readers: list[_ColumnReader] = field(default_factory=list)
    errors: list = field(default_factory=list)  # (RowError, position or None)
    seen: dict[str, int] = field(default_factory=dict)  # id_card_number -> its first row
    total_rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0

    def refuse(self, number: int, position: int, code: str, message) -> None:
        self.errors.append((RowError(number, self.layout.headers[position], code, message), position))

    @property
    def writing(self) -> bool:
        return not self.errors and not self.dry_run

    def position_of(self, field_name: str) -> int | None:
        return next((p for p, column in self.layout.plan if column.field == field_name), None)


@dataclass
class _Batch:
    """Up to LOOKUP_BATCH rows, read column by column: `values[field][i]` is row i's value."""

    numbers: list[int]  # the spreadsheet row numbers
    values: dict[str, list]
    good: list[int]  # indexes of the rows with no refused cell


def _read_batch(state: _Import, rows: list[tuple[int, list]], refuse) -> tuple[list[int], dict[str, list]]:
    """The row numbers, and the values of the batch column by column; `refuse(index, position,
    code, message)` is told of each refused cell."""
    numbers = [number for number, _cells in rows]
    width = max(len(cells) for _number, cells in rows)
    columns = list(
        zip(
            *(cells if len(cells) == width else [*cells, *[""] * (width - len(cells))] for _n, cells in rows),
            strict=True,
        )
    )
    values: dict[str, list] = {}
    blank = ("",) * len(rows)
    for reader in state.readers:
        column_values = reader.read(columns[reader.position] if reader.position < width else blank, refuse)
        if reader.column.required and None in column_values:
            for index, value in enumerate(column_values):
                if value is None:
                    refuse(index, reader.position, "required", MESSAGES["required"])
        values[reader.column.field] = column_values
    return numbers, values


def _check_batch(state: _Import, rows: list[tuple[int, list]]) -> _Batch:
    """Read every column of the batch and check each row; record every refused cell."""
    refused = [False] * len(rows)

    def refuse(index, position, code, message):
        state.refuse(rows[index][0], position, code, message)
        refused[index] = True

    numbers, values = _read_batch(state, rows, refuse)
    id_position = state.position_of("id_card_number")
    date_position = state.position_of("status_date")
    status_dates = values.get("status_date")
    today = state.today
    # Younger than 60 today: born after this day (YYYYMMDD compares as text), as `age_on` counts.
    cutoff = f"{today.year - MINIMUM_AGE:04d}{today.month:02d}{today.day:02d}"
    seen = state.seen
    for index, number in enumerate(values["id_card_number"]):
        if number is None or number is _REFUSED:
            continue
        first = seen.get(number)
        if first is not None:
            refuse(
                index, id_position, "duplicate_in_file", _message(MESSAGES["duplicate_in_file"], row=first)
            )
            continue
        seen[number] = numbers[index]
        if number[6:14] > cutoff:
            age = age_on(birth_date_of(number), today)
            refuse(index, id_position, "under_60", _message(MESSAGES["under_60"], age=age))
        on = status_dates[index] if status_dates is not None else None
        if on is not None and on is not _REFUSED and not birth_date_of(number) <= on <= today:
            refuse(index, date_position, "invalid_date", MESSAGES["date_out_of_range"])
    return _Batch(numbers, values, [index for index, bad in enumerate(refused) if not bad])


@functools.lru_cache(maxsize=100_000)
def _initials(name: str) -> str:
    """Pinyin initials, once per distinct name (a city has many 王秀英)."""
    return name_initials(name)


# A new senior's columns, in the model's order (COPY's column list); defaults for blank cells.
_SENIOR_FIELDS = list(Senior._meta.concrete_fields)
_HISTORY_MODEL = Senior.history.model
_HISTORY_FIELDS = [f for f in _HISTORY_MODEL._meta.concrete_fields if not f.primary_key]
_DEFAULTS = {f.attname: f.get_default() for f in _SENIOR_FIELDS}


def _new_seniors(state: _Import, batch: _Batch, rows: list[int]) -> dict[str, list]:
    """The batch's new seniors, column by column ({attname: values}), as `services.build_senior`
    builds one: birth date and sex from the ID-card number, pinyin initials of the name, the
    model's defaults for blank cells. The cells are checked already (build_senior's own checks,
    made again per row, would cost more than everything else together)."""
    values = batch.values

    def pick(name: str) -> list:
        column = values.get(name)
        default = _DEFAULTS.get(name)
        if column is None:
            return [default] * len(rows)
        return [default if column[i] is None else column[i] for i in rows]

    numbers = pick("id_card_number")
    names = pick("name")
    columns = {
        "id": [None] * len(rows),  # from the sequence when written
        "id_card_number": numbers,
        "name": names,
        "name_initials": [_initials(name) for name in names],
        "birth_date": [birth_date_of(number) for number in numbers],
        "sex": [sex_of(number) for number in numbers],
        "community_id": [community.pk for community in pick("community")],
        "status_date": [state.today if on is None else on for on in pick("status_date")],
        "created_at": [state.now] * len(rows),
        "updated_at": [state.now] * len(rows),
        "created_by_id": [state.user.pk if state.user is not None else None] * len(rows),
    }
    for f in _SENIOR_FIELDS:
        if f.attname not in columns:
            columns[f.attname] = pick(f.attname)
    return columns


def _copy_texts(f, values: list) -> list[str]:
    """A column of values as COPY's text format writes them."""
    kind = f.get_internal_type()
    if kind == "BooleanField":
        return ["t" if value else "f" for value in values]
    if kind in ("DateField", "DateTimeField"):
        texts = {value: value.isoformat() for value in set(values) if value is not None}  # few distinct
        return [texts.get(value, "\\N") for value in values]
    if kind in ("CharField", "TextField"):
        # Checked text has no tabs or line breaks (normalise_text folds all white space).
        if "\\" in "".join(values):
            return [value.replace("\\", "\\\\") for value in values]
        return values
    if None in values:
        return ["\\N" if value is None else str(value) for value in values]
    return list(map(str, values))


def _history_insert_sql() -> str:
    """History rows of just-inserted seniors, made by the database from the rows themselves."""
    quote = connection.ops.quote_name
    senior_columns = {f.column for f in _SENIOR_FIELDS}
    sources = {
        "history_date": "%s",
        "history_change_reason": "%s",
        "history_type": "'+'",
        "history_user_id": "%s",
    }
    columns = [f.column for f in _HISTORY_FIELDS]
    selected = [
        sources[c] if c in sources else quote(c) for c in columns if c in sources or c in senior_columns
    ]
    if len(selected) != len(columns):
        raise LookupError("the history table has a column the import does not fill")
    # Identifiers only, from the models' own metadata, quoted; the values go as parameters.
    table, source = quote(_HISTORY_MODEL._meta.db_table), quote(Senior._meta.db_table)
    names = ", ".join(quote(c) for c in columns)
    return f"INSERT INTO {table} ({names}) SELECT {', '.join(selected)} FROM {source} WHERE id = ANY(%s)"  # noqa: S608


class _OrmDatabase:
    """The import's statements through the ORM (SQLite for tests and demos)."""

    threaded = False

    def __init__(self, state: _Import):
        self.state = state

    def lookup(self, numbers: list[str], *, new_ids: bool) -> tuple[dict[str, tuple[int, int]], list]:
        """{id_card_number: (pk, community_id)} of the registered ones, locked in a stable order."""
        rows = (
            Senior.objects.select_for_update()
            .filter(id_card_number__in=numbers)
            .order_by("id_card_number")
            .values_list("id_card_number", "pk", "community_id")
        )
        return {number: (pk, community_id) for number, pk, community_id in rows}, []

    def prepare(self, columns: dict[str, list], ids: list):
        names = [f.attname for f in _SENIOR_FIELDS if f.attname != "id"]
        rows = zip(*(columns[name] for name in names), strict=True)
        return [Senior(**dict(zip(names, row, strict=True))) for row in rows]

    def insert(self, seniors: list[Senior]) -> None:
        bulk_create_with_history(
            seniors,
            Senior,
            default_user=self.state.user,
            default_change_reason=CHANGE_REASON,
            default_date=self.state.now,
        )


class _CopyDatabase:
    """The import's statements on PostgreSQL: lookups with `= ANY`, new seniors by COPY with ids
    drawn from the sequence, their history rows by one INSERT … SELECT from them.

    They run on a second thread, on the import's own connection and so in its transaction, while
    the main thread reads and checks the next rows; the main thread does not touch the connection
    until the thread is done (`_Pipeline.close`).
    """

    threaded = True

    def __init__(self, state: _Import):
        self.state = state
        connection.ensure_connection()
        self.raw = connection.connection
        quote = connection.ops.quote_name
        self.table = Senior._meta.db_table
        columns = ", ".join(quote(f.column) for f in _SENIOR_FIELDS)
        self.copy_sql = f"COPY {quote(self.table)} ({columns}) FROM STDIN"
        self.history_sql = _history_insert_sql()

    def lookup(self, numbers: list[str], *, new_ids: bool) -> tuple[dict[str, tuple[int, int]], list[int]]:
        with self.raw.cursor() as cursor:
            cursor.execute(
                f"SELECT id_card_number, id, community_id FROM {connection.ops.quote_name(self.table)} "  # noqa: S608
                "WHERE id_card_number = ANY(%s) ORDER BY id_card_number FOR UPDATE",
                [numbers],
            )
            registered = {number: (pk, community_id) for number, pk, community_id in cursor.fetchall()}
            ids = []
            if new_ids and len(numbers) > len(registered):
                cursor.execute(
                    "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
                    [self.table, len(numbers) - len(registered)],
                )
                ids = [pk for (pk,) in cursor.fetchall()]
        return registered, ids

    def prepare(self, columns: dict[str, list], ids: list[int]) -> tuple[bytes, list[int]]:
        columns["id"] = ids
        texts = [_copy_texts(f, columns[f.attname]) for f in _SENIOR_FIELDS]
        lines = "\n".join(map("\t".join, zip(*texts, strict=True))) + "\n"
        return lines.encode(), ids

    def insert(self, payload: tuple[bytes, list[int]]) -> None:
        lines, ids = payload
        user_id = self.state.user.pk if self.state.user is not None else None
        with self.raw.cursor() as cursor:
            # One read of the whole batch: each read needs the GIL, which the checking thread holds.
            cursor.copy_expert(self.copy_sql, io.BytesIO(lines), size=len(lines))
            cursor.execute(self.history_sql, [self.state.now, CHANGE_REASON, user_id, ids])


class _Pipeline:
    """Runs the database's statements one at a time, in order: on a second thread when the
    database allows it (so the server works while Python checks rows), else at once."""

    def __init__(self, database):
        self.database = database
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="import") if database.threaded else None
        self.inserts: list[Future] = []

    def submit(self, function, *args, **kwargs) -> Future:
        if self.executor is not None:
            return self.executor.submit(function, *args, **kwargs)
        future: Future = Future()
        try:
            future.set_result(function(*args, **kwargs))
        except Exception as error:
            future.set_exception(error)
        return future

    def close(self) -> None:
        """Wait for every statement; raise the first failure as Django's own database error."""
        if self.executor is not None:
            self.executor.shutdown(wait=True)
        with connection.wrap_database_errors:
            for future in self.inserts:
                future.result()


def _lookup_batch_size() -> int:
    limit = connection.features.max_query_params
    return min(LOOKUP_BATCH, limit - 1) if limit else LOOKUP_BATCH


def _batches(state: _Import, rows: Iterator[tuple[int, list]], size: int) -> Iterator[list[tuple[int, list]]]:
    """Non-blank rows in lists of `size`; a row is blank when every cell is (the ID cell
    usually tells at once)."""
    position = state.position_of("id_card_number")

    def filled(row: tuple[int, list]) -> bool:
        cells = row[1]
        first = cells[position] if position < len(cells) else ""
        return (first and not (first.__class__ is str and first.isspace())) or not all(
            map(_cell_is_empty, cells)
        )

    while chunk := list(islice(rows, size)):
        if batch := list(filter(filled, chunk)):
            yield batch


def _settle_batch(
    state: _Import, batch: _Batch, found: Future, pipeline: _Pipeline, registered_rows: set
) -> None:
    """With the batch's lookup back: note the registered seniors' rows (changed later, by
    `_update_registered`), refusing those outside the user's communities; queue the new ones."""
    with connection.wrap_database_errors:
        registered, ids = found.result()
    numbers = batch.values["id_card_number"]
    id_position = state.position_of("id_card_number")
    new_rows = []
    for index in batch.good:
        match = registered.get(numbers[index])
        if match is None:
            new_rows.append(index)
        elif state.allowed is not None and match[1] not in state.allowed:
            state.refuse(
                batch.numbers[index], id_position, "not_in_your_scope", MESSAGES["registered_elsewhere"]
            )
        else:
            registered_rows.add(batch.numbers[index])
    state.created += len(new_rows)
    if new_rows and state.writing:
        payload = pipeline.database.prepare(_new_seniors(state, batch, new_rows), ids[: len(new_rows)])
        pipeline.inserts.append(pipeline.submit(pipeline.database.insert, payload))


def _check_and_insert(state: _Import, rows: Iterator[tuple[int, list]], progress, estimate: int) -> set[int]:
    """The first pass: check every row and insert the new seniors, batch by batch; the lookup of
    each batch runs while the next one is checked. Returns the row numbers of registered seniors."""
    database = (_CopyDatabase if connection.vendor == "postgresql" else _OrmDatabase)(state)
    pipeline = _Pipeline(database)
    registered_rows: set[int] = set()
    previous = None
    try:
        for rows_of_batch in _batches(state, rows, _lookup_batch_size()):
            state.total_rows += len(rows_of_batch)
            batch = _check_batch(state, rows_of_batch)
            numbers = batch.values["id_card_number"]
            good_numbers = sorted(numbers[index] for index in batch.good)
            found = pipeline.submit(database.lookup, good_numbers, new_ids=state.writing)
            if previous is not None:
                _settle_batch(state, *previous, pipeline, registered_rows)
            previous = (batch, found)
            if progress is not None:
                progress(state.total_rows, max(estimate, state.total_rows))
        if previous is not None:
            _settle_batch(state, *previous, pipeline, registered_rows)
    finally:
        pipeline.close()
    return registered_rows


def _update_registered(state: _Import, rows: Iterator[tuple[int, list]], registered_rows: set[int]) -> None:
    """The second pass, over the rows of registered seniors only: change each through
    `apply_senior_changes` (saved in bulk, with history) and a status through
    `change_senior_status`; count the updated and the unchanged."""
    editable = [name for name in EDITABLE_FIELDS if state.position_of(name) is not None]
    wanted = ((number, cells) for number, cells in rows if number in registered_rows)
    for rows_of_batch in _batches(state, wanted, _lookup_batch_size()):
        numbers, values = _read_batch(state, rows_of_batch, lambda *args: None)
        seniors = Senior.objects.in_bulk(values["id_card_number"], field_name="id_card_number")
        statuses, status_dates = values.get("status"), values.get("status_date")
        changed, changed_fields, status_changes = [], set(), []
        for index, number in enumerate(values["id_card_number"]):
            senior = seniors[number]
            edits = {name: values[name][index] for name in editable if values[name][index] is not None}
            try:
                fields = apply_senior_changes(senior, edits)
            except EligibilityError as error:  # the cells were checked: only a change of the rules lands here
                position = state.position_of(error.field or "id_card_number")
                message = _message(error.message, **error.params)
                state.refuse(numbers[index], position, error.code, message)
                continue
            status = statuses[index] if statuses is not None else None
            moves = status is not None and status != senior.status
            if fields:
                senior.updated_at = state.now
                changed_fields.update(fields)
                if "name" in fields:
                    changed_fields.add("name_initials")
                changed.append(senior)
            if moves:
                on = status_dates[index] if status_dates is not None else None
                status_changes.append((senior, status, on or state.today))
            state.updated += bool(fields or moves)
            state.unchanged += not (fields or moves)
        if not state.writing:
            continue
        if changed:
            bulk_update_with_history(
                changed,
                Senior,
                [*sorted(changed_fields), "updated_at"],
                batch_size=500,
                default_user=state.user,
                default_change_reason=CHANGE_REASON,
                default_date=state.now,
            )
        for senior, status, on in status_changes:
            # The one way a status changes: it revokes a leaver's vouchers in the same transaction.
            change_senior_status(senior=senior, status=status, on=on, by=state.user, today=state.today)


def _scope(user) -> set[int] | None:
    if user is None:
        return None
    return set(communities_visible_to(user).values_list("id", flat=True))


# PostgreSQL's name for the unique index of `unique=True` on the ID-card number.
_ID_CARD_NUMBER_CONSTRAINT = f"{Senior._meta.db_table}_id_card_number_key"


def _is_duplicate_number(error: IntegrityError) -> bool:
    """Whether the database refused a senior's ID-card number as already registered (by someone
    else, after the lookup): the one constraint a checked row can still break."""
    cause = error.__cause__
    if getattr(cause, "pgcode", None) == "23505":  # unique_violation
        return getattr(getattr(cause, "diag", None), "constraint_name", "") == _ID_CARD_NUMBER_CONSTRAINT
    return f"{Senior._meta.db_table}.id_card_number" in str(error)  # SQLite names the column


def _file_error(code: str, key: str | None = None) -> RowError:
    return RowError(0, "", code, MESSAGES[key or code])


def run_import(*, data: bytes, user, dry_run: bool = False, progress=None) -> ImportReport:
    """Import a registry workbook: every row or none, in one transaction.

    `user` None is a system import into the whole city; otherwise the user needs the
    `import_seniors` permission and imports only into the communities they look after. A row
    whose ID-card number is registered changes that senior (`apply_senior_changes`; a status
    through `change_senior_status`), any other row registers a new one; the history records
    each with the user. Never raises for bad input: a refused file comes back with `ok` False,
    every error (row, column, code, message) and an annotated copy of the workbook; nothing is
    written then, nor on a dry run. `progress(done, total)` is called every batch of rows.

    Codes: for the whole file (row 0) `not_xlsx`, `empty_file`, `missing_column`,
    `not_permitted`, `duplicate_senior` (registered by someone else meanwhile),
    `import_conflict` (another import locking the same seniors); on the header
    `duplicate_column`; on a cell `required`, `invalid_id_card_number`,
    `id_card_number_as_number`, `duplicate_in_file`, `under_60`, `unknown_community`,
    `not_in_your_scope`, `invalid_date`, `unknown_value`, `invalid_phone`, `too_long`.
    """
    report = ImportReport(ok=False, dry_run=dry_run)
    if user is not None and not user.has_perm("eligibility.import_seniors"):
        report.errors = [_file_error("not_permitted")]
        return report
    header_errors: list = []
    try:
        sheet = _open_sheet(data)
        rows = sheet.iter_rows()  # from the sheet's first row, and from its first used column
        layout = _find_layout(rows, header_errors)
    except _FileRefused as refusal:
        report.errors = [_file_error(refusal.code, refusal.key)]
        return report
    if header_errors:
        return _refused(report, data, header_errors, total_rows=0)
    now = timezone.now()
    state = _Import(
        user=user,
        dry_run=dry_run,
        today=local_date(now),
        now=now,
        communities={region.code: region for region in Region.objects.all()},
        allowed=_scope(user),
        layout=layout,
    )
    state.readers = [_ColumnReader(position, column, state) for position, column in layout.plan]
    estimate = (sheet.end[0] + 1 - layout.header_row) if sheet.end else 0
    try:
        with transaction.atomic():
            registered_rows = _check_and_insert(
                state, enumerate(rows, start=layout.header_row + 1), progress, estimate
            )
            if registered_rows and not state.errors:
                _update_registered(state, enumerate(sheet.iter_rows(), start=1), registered_rows)
            if not state.writing:
                transaction.set_rollback(True)
    except IntegrityError as error:
        if not _is_duplicate_number(error):
            raise
        report.errors = [_file_error("duplicate_senior")]
        return report
    except OperationalError as error:
        # Two imports locking the same seniors in different orders: PostgreSQL stops one.
        if getattr(error.__cause__, "pgcode", None) != "40P01":  # deadlock_detected
            raise
        report.errors = [_file_error("import_conflict")]
        return report
    if progress is not None:
        progress(state.total_rows, state.total_rows)
    if state.errors:
        return _refused(report, data, state.errors, total_rows=state.total_rows)
    if state.total_rows == 0:
        return _refused(report, data, [(_file_error("empty_file", "no_rows"), None)], total_rows=0)
    report.ok = True
    report.total_rows = state.total_rows
    report.created, report.updated, report.unchanged = state.created, state.updated, state.unchanged
    return report


def _refused(report: ImportReport, data: bytes, errors: list, *, total_rows: int) -> ImportReport:
    errors.sort(key=lambda pair: (pair[0].row, -1 if pair[1] is None else pair[1]))
    report.ok = False
    report.total_rows = total_rows
    report.created = report.updated = report.unchanged = 0
    report.errors = [error for error, _position in errors]
    report.annotated_workbook = _annotate(data, errors)
    return report


# --- The annotated copy -------------------------------------------------------------------------


def _bilingual(message) -> str:
    texts = list(dict.fromkeys(message_in(message, language) for language in LANGUAGES))
    return "\n".join(texts)


def _annotate(data: bytes, errors: list) -> bytes | None:
    """A copy of the data sheet with each refused cell filled red and commented (the message in
    Chinese and English), and a sheet listing every error. None if the file cannot be read.

    `errors` are (RowError, position) pairs, the position counted from the sheet's first used
    column (None for an error of the whole file).
    """
    # openpyxl is loaded only to write: an import's memory peak is calamine reading the sheet.
    from openpyxl import Workbook
    from openpyxl.cell import Cell, WriteOnlyCell
    from openpyxl.comments import Comment
    from openpyxl.styles import Font, PatternFill
    from openpyxl.utils import get_column_letter

    try:
        source = _open_sheet(data)
    except _FileRefused:
        return None
    first_column = source.start[1] if source.start else 0
    bad: dict[tuple[int, int], list[str]] = {}
    for error, position in errors:
        if position is not None and error.row:
            bad.setdefault((error.row, position), []).append(_bilingual(error.message))
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(source.name)
    fill, font = PatternFill("solid", fgColor=BAD_FILL_COLOUR), Font(color=BAD_TEXT_COLOUR)

    def text_cell(value: str):
        cell = WriteOnlyCell(sheet, value=value)
        cell.data_type = "s"  # text stays text: a cell reading "=…" must not become a formula
        return cell

    for number, cells in enumerate(source.iter_rows(), start=1):
        out = [None] * first_column
        for position, value in enumerate(cells):
            texts = bad.get((number, position))
            if value == "":
                value = None
            elif isinstance(value, str) and (texts or value.startswith(FORMULA_PREFIXES)):
                value = text_cell(value)
            if texts:
                cell = value if isinstance(value, Cell) else WriteOnlyCell(sheet, value=value)
                cell.fill, cell.font = fill, font
                comment = Comment("\n\n".join(texts), "导入检查 import check")
                comment.width, comment.height = 320, 140
                cell.comment = comment
                value = cell
            out.append(value)
        sheet.append(out)

    listing = workbook.create_sheet(ERRORS_SHEET)
    for index, width in enumerate((8, 18, 24, 60, 60), start=1):
        listing.column_dimensions[get_column_letter(index)].width = width
    listing.append(["行 Row", "列 Column", "代码 Code", "说明", "Message"])
    for error, _position in errors:
        texts = [message_in(error.message, language) for language in LANGUAGES]
        listing.append([error.row, text_cell(error.column) if error.column else None, error.code, *texts])
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


# --- The template -------------------------------------------------------------------------------


def example_id_card_numbers() -> tuple[str, str]:
    """The template's two example seniors: a woman born 1948-03-01 and a man born 1952-07-09."""
    numbers = []
    for body in ("33010619480301002", "33010619520709001"):
        numbers.append(body + ric.calc_check_digit(body + "0"))
    return tuple(numbers)


def example_rows(*, community_code: str = EXAMPLE_COMMUNITY_CODE) -> list[list]:
    first, second = example_id_card_numbers()
    fixed = {
        "id_card_number": (first, second),
        "name": ("王秀英", "李建国"),
        "community": (community_code, community_code),
    }
    return [[fixed.get(column.field, column.examples)[index] for column in COLUMNS] for index in (0, 1)]


NOTES = [
    "说明 Notes",
    "每行一位老人；表头可用中文或英文，顺序不限。 One row per senior; headers in Chinese or English, in any order.",
    "身份证号一列请设为文本格式，否则 Excel 会丢掉后三位。 Format the ID-card column as text, or Excel drops its last digits.",
    "已登记的老人（同一身份证号）按本表更新；空白单元格：新登记取默认值，已登记的保持不变。"
    " A registered senior (same ID number) is updated; a blank cell keeps a registered senior's value"
    " and gives a new one the default.",
    "状态日期用于新登记的老人和改变的状态。 The status date is used for a new senior and for a changed status.",
    "全部通过才导入：有任何错误则一行也不写入，并返回标注了错误的副本。"
    " All rows or none: on any error nothing is written, and an annotated copy comes back.",
]


TEMPLATE_ROWS = 5000  # rows of the drop-downs
TEMPLATE_CHOICES = {
    "flag": ("是", "否"),
    "status": tuple(labels[0] for labels in STATUS_VALUES.values()),
    "living_arrangement": tuple(labels[0] for labels in LIVING_ARRANGEMENT_VALUES.values()),
    "self_care": tuple(labels[0] for labels in SELF_CARE_VALUES.values()),
}


def write_template(out: str | BinaryIO, *, community_code: str = EXAMPLE_COMMUNITY_CODE) -> None:
    """The blank import workbook: 导入说明 (one row per column: headers in Chinese and English,
    required or not, the allowed values, an example) and 老年人 (the header and two example rows
    that import as they are once `community_code` exists)."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font
    from openpyxl.utils import get_column_letter
    from openpyxl.worksheet.datavalidation import DataValidation

    workbook = Workbook()
    instructions = workbook.active
    instructions.title = INSTRUCTIONS_SHEET
    instructions.append(["列名", "Column", "必填 Required", "可填写的值 Allowed values", "示例 Example"])
    examples = example_rows(community_code=community_code)
    for index, column in enumerate(COLUMNS):
        example = examples[0][index]
        instructions.append(
            [
                column.zh,
                column.en,
                "是 yes" if column.required else "否 no",
                column.allowed,
                example.isoformat() if isinstance(example, dt.date) else example,
            ]
        )
    instructions.append([])
    for note in NOTES:
        instructions.append([note])
    bold = Font(bold=True)
    for cell in instructions[1]:
        cell.font = bold
    for letter, width in zip("ABCDE", (18, 34, 14, 70, 24), strict=True):
        instructions.column_dimensions[letter].width = width
    for row in instructions.iter_rows(min_row=2):
        row[3].alignment = Alignment(wrap_text=True, vertical="top")

    sheet = workbook.create_sheet(DATA_SHEET)
    sheet.append([column.zh for column in COLUMNS])
    for row in examples:
        sheet.append(row)
    sheet.freeze_panes = "A2"
    for index, column in enumerate(COLUMNS, start=1):
        letter = get_column_letter(index)
        sheet[f"{letter}1"].font = bold
        dimension = sheet.column_dimensions[letter]
        dimension.width = max(10, len(column.zh) * 2 + 4)
        if column.kind in ("id", "phone", "community"):
            # Typed digits stay text: an 18-digit ID as a number loses its last three digits.
            dimension.number_format = "@"
            for (cell,) in sheet.iter_rows(min_row=2, max_row=3, min_col=index, max_col=index):
                cell.number_format = "@"
        elif column.kind == "date":
            dimension.number_format = "yyyy-mm-dd"
            for (cell,) in sheet.iter_rows(min_row=2, max_row=3, min_col=index, max_col=index):
                cell.number_format = "yyyy-mm-dd"
        choices = TEMPLATE_CHOICES.get(column.field if column.kind == "choice" else column.kind)
        if choices:
            # A drop-down of the Chinese labels; any other accepted spelling may be typed too.
            validation = DataValidation(type="list", formula1=f'"{",".join(choices)}"', allow_blank=True)
            validation.showErrorMessage = False
            sheet.add_data_validation(validation)
            validation.add(f"{letter}2:{letter}{TEMPLATE_ROWS}")
    workbook.save(out)
