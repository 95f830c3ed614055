"""Importing the registry from a workbook: every row or none, every error at once, with history."""

import datetime as dt
import io

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone, translation
from hypothesis import given, settings
from hypothesis import strategies as st
from openpyxl import Workbook, load_workbook
from stdnum.cn import ric

from config.celery import app as celery_app
from config.months import local_date
from eligibility import importer
from eligibility.errors import EligibilityError
from eligibility.importer import (
    COLUMNS,
    DATA_SHEET,
    EXAMPLE_COMMUNITY_CODE,
    INSTRUCTIONS_SHEET,
    ImportReport,
    RowError,
    read_id_card_number,
    run_import,
    write_template,
)
from eligibility.models import Determination, ImportJob, Region, Senior
from eligibility.selectors import import_jobs_visible_to, import_progress, import_progress_key
from eligibility.services import (
    _stored_workbook,  # the job reads its upload in chunks
    build_senior,
    change_senior_status,
    confirm_import,
    ensure_default_policy,
    finish_import_job,
    normalise_id_card_number,
    register_senior,
    start_import,
)
from tests.e2e.conftest import make_user
from tests.eligibility.workbooks import EN, ZH, senior_row, workbook
from tests.factories import make_community, make_id_card_number

History = Senior.history.model


@pytest.fixture
def community(db) -> Region:
    return make_community("A")


@pytest.fixture
def worker(community):
    return make_user("chen", "worker", region=community)


def codes(report: ImportReport) -> list[tuple[int, str, str]]:
    return [(error.row, error.column, error.code) for error in report.errors]


def annotated_cell(report: ImportReport, row: int, header: str):
    sheet = load_workbook(io.BytesIO(report.annotated_workbook))[DATA_SHEET]
    headers = [cell.value for cell in sheet[1]]
    return sheet.cell(row=row, column=headers.index(header) + 1)


# --- Refusals -----------------------------------------------------------------------------------


def test_every_bad_row_is_reported_at_its_row_and_column_and_nothing_is_written(community, worker):
    # given one good row and a bad row of every kind
    good = senior_row(community)
    wrong_digit = make_id_card_number()
    wrong_digit = wrong_digit[:-1] + ("0" if wrong_digit[-1] != "0" else "1")
    rows = [
        good,  # row 2
        senior_row(community, id_card_number=good["id_card_number"]),  # 3: the same person again
        senior_row(community, community="NOWHERE"),  # 4
        senior_row(community, id_card_number=wrong_digit),  # 5
        senior_row(community, status_date="2024-02-30"),  # 6
        senior_row(community, id_card_number=make_id_card_number(birth_date=dt.date(1990, 5, 1))),  # 7
        senior_row(community, living_arrangement="住院"),  # 8
        senior_row(community, name="  "),  # 9
        senior_row(community, id_card_number=330106194503011234),  # 10: a number cell, digits lost
        senior_row(community, phone="12345"),  # 11
        senior_row(community, dementia="maybe"),  # 12
        senior_row(community, status_date=dt.date(2999, 1, 1)),  # 13: a real day, in the future
        senior_row(community, community=community.parent.code),  # 14: a subdistrict
        senior_row(community, name="王" * 51),  # 15
    ]

    # when the worker imports it
    report = run_import(data=workbook(rows), user=worker)

    # then every error is there with its row and column, and nothing is written
    assert not report.ok
    assert codes(report) == [
        (3, "身份证号", "duplicate_in_file"),
        (4, "社区编码", "unknown_community"),
        (5, "身份证号", "invalid_id_card_number"),
        (6, "状态日期", "invalid_date"),
        (7, "身份证号", "under_60"),
        (8, "居住情况", "unknown_value"),
        (9, "姓名", "required"),
        (10, "身份证号", "id_card_number_as_number"),
        (11, "联系电话", "invalid_phone"),
        (12, "失智", "unknown_value"),
        (13, "状态日期", "invalid_date"),
        (14, "社区编码", "unknown_community"),
        (15, "姓名", "too_long"),
    ]
    assert report.total_rows == len(rows)
    assert (report.created, report.updated, report.unchanged) == (0, 0, 0)
    assert Senior.objects.count() == 0
    assert History.objects.count() == 0
    # each kind has a message of its own, in English and (once translated) Chinese
    messages = [error.to_json()["message"] for error in report.errors]
    assert all(message["en"] and message["zh-hans"] for message in messages)
    assert "row 2" in messages[0]["en"]
    assert "digits" in messages[7]["en"] and "text" in messages[7]["en"]
    by_code = {}
    for error in report.errors:
        by_code.setdefault(error.code, set()).add(str(error.message))
    assert len(by_code["unknown_community"]) == 2  # no such community / not a community
    assert len(by_code["invalid_date"]) == 2  # no such day / not between birth and today
    # and the copy of the workbook marks each of those cells, and only those, with its message
    sheet = load_workbook(io.BytesIO(report.annotated_workbook))[DATA_SHEET]
    marked = {
        (cell.row, sheet.cell(1, cell.column).value)
        for row in sheet.iter_rows()
        for cell in row
        if cell.comment
    }
    assert marked == {(error.row, error.column) for error in report.errors}
    for error in report.errors:
        cell = annotated_cell(report, error.row, error.column)
        assert cell.fill.fgColor.rgb == importer.BAD_FILL_COLOUR
        assert importer.message_in(error.message, "en") in cell.comment.text


def test_the_annotated_copy_marks_each_bad_cell_with_its_message_in_both_languages(community, worker):
    # given a file with two bad cells in one row
    rows = [senior_row(community), senior_row(community, phone="12345", self_care="sometimes")]

    # when it is refused
    report = run_import(data=workbook(rows), user=worker)

    # then the copy has those cells filled red and commented, and the good cells untouched
    assert codes(report) == [(3, "联系电话", "invalid_phone"), (3, "自理能力", "unknown_value")]
    for error in report.errors:
        cell = annotated_cell(report, error.row, error.column)
        assert cell.fill.fgColor.rgb == importer.BAD_FILL_COLOUR
        for language in ("zh-hans", "en"):
            assert importer.message_in(error.message, language) in cell.comment.text
    assert annotated_cell(report, 3, "联系电话").value == "12345"
    assert annotated_cell(report, 2, "联系电话").comment is None
    assert annotated_cell(report, 2, "联系电话").fill.fgColor.rgb != importer.BAD_FILL_COLOUR
    listing = load_workbook(io.BytesIO(report.annotated_workbook))[importer.ERRORS_SHEET]
    assert [row[:3] for row in listing.iter_rows(min_row=2, values_only=True)] == [
        (3, "联系电话", "invalid_phone"),
        (3, "自理能力", "unknown_value"),
    ]


def test_text_that_looks_like_a_formula_stays_text_in_the_annotated_copy(community):
    # given a refused row whose address reads like a formula
    rows = [senior_row(community, address="=HYPERLINK(1)", phone="12345")]

    # when it is refused
    report = run_import(data=workbook(rows), user=None)

    # then the copy holds the same text, as text
    cell = annotated_cell(report, 2, "住址")
    assert (cell.value, cell.data_type) == ("=HYPERLINK(1)", "s")


def test_a_missing_required_column_and_a_repeated_column_are_reported_for_the_file(community):
    # given a file without the community column and with the name twice
    data = workbook([senior_row(community)], fields=["id_card_number", "name", "phone", "name"])

    # when it is imported
    report = run_import(data=data, user=None)

    # then
    assert codes(report) == [(0, "", "missing_column"), (1, "姓名", "duplicate_column")]
    assert "社区编码" in str(report.errors[0].message)
    assert Senior.objects.count() == 0


def _xlsx_with(rows: list[list]) -> bytes:
    book = Workbook()
    for row in rows:
        book.active.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "empty_file"),
        (b"id_card_number,name\n330106194503011234,Wang\n", "not_xlsx"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 512, "not_xlsx"),  # an old .xls (or a locked file)
        (b"PK\x03\x04 not really a zip", "not_xlsx"),
        (_xlsx_with([]), "empty_file"),
        (_xlsx_with([["身份证号", "姓名", "社区编码"]]), "empty_file"),
    ],
    ids=["no bytes", "csv", "xls", "broken zip", "no rows", "header only"],
)
def test_files_that_are_not_workbooks_or_hold_no_rows_are_refused(db, data, code):
    report = run_import(data=data, user=None)
    assert codes(report) == [(0, "", code)]
    assert report.errors[0].message


def test_a_user_without_the_import_permission_is_refused(community):
    provider = make_user("zhao", "provider")
    report = run_import(data=workbook([senior_row(community)]), user=provider)
    assert codes(report) == [(0, "", "not_permitted")]
    assert Senior.objects.count() == 0


def test_a_worker_imports_only_into_their_own_community(community, worker):
    # given a second community, and a senior registered there
    other = make_community("B")
    elsewhere = register_senior(id_card_number=make_id_card_number(), name="李建国", community=other)
    rows = [
        senior_row(community),
        senior_row(community, community=other.code),
        senior_row(community, id_card_number=elsewhere.id_card_number, name="李建国"),
    ]

    # when the worker of the first community imports rows for both
    report = run_import(data=workbook(rows), user=worker)

    # then each row for the other community is refused where it says so, and nothing is written
    assert codes(report) == [(3, "社区编码", "not_in_your_scope"), (4, "身份证号", "not_in_your_scope")]
    assert Senior.objects.count() == 1
    elsewhere.refresh_from_db()
    assert elsewhere.community == other


# --- Imports that go through --------------------------------------------------------------------


def test_a_good_import_registers_the_seniors_with_history_attributed_to_the_user(community, worker):
    # given two new seniors
    man = make_id_card_number(birth_date=dt.date(1940, 7, 9), sex="M")
    rows = [
        senior_row(
            community, id_card_number=man, name="李建国", phone="0571 8706 1234", status_date="2024-03-01"
        ),
        senior_row(community, living_arrangement="空巢", dementia="是"),
    ]

    # when the worker imports them
    report = run_import(data=workbook(rows), user=worker)

    # then both are registered, as register_senior would, by the worker
    assert report.ok and not report.errors and report.annotated_workbook is None
    assert (report.total_rows, report.created, report.updated, report.unchanged) == (2, 2, 0, 0)
    senior = Senior.objects.get(id_card_number=man)
    assert (senior.birth_date, senior.sex, senior.name_initials) == (dt.date(1940, 7, 9), "M", " ljg")
    assert (senior.phone, senior.status_date, senior.created_by) == (
        "0571-87061234",
        dt.date(2024, 3, 1),
        worker,
    )
    assert (senior.living_arrangement, senior.self_care, senior.receives_dibao) == ("alone", "partial", True)
    assert (senior.children_in_city, senior.dementia, senior.community) == (False, False, community)
    other = Senior.objects.exclude(pk=senior.pk).get()
    assert (other.living_arrangement, other.dementia) == ("empty_nest", True)
    assert other.status_date == local_date(timezone.now())  # a blank status date: the day of the import
    history = History.objects.order_by("id")
    assert [(h.id, h.history_type, h.history_user, h.history_change_reason) for h in history] == [
        (senior.pk, "+", worker, "import"),
        (other.pk, "+", worker, "import"),
    ]


def test_an_imported_senior_is_the_senior_build_senior_would_register(community, worker):
    # given a row, and what the registration service would build from the same values
    row = senior_row(community, three_no="是", self_care="不能自理", status_date="2024-03-01")
    expected = build_senior(
        id_card_number=row["id_card_number"],
        status_date=dt.date(2024, 3, 1),
        created_by=worker,
        name="王秀英",
        community=community,
        phone="13800138000",
        address="北山街道保俶路1号",
        living_arrangement="alone",
        self_care="disabled",
        children_in_city=False,
        receives_dibao=True,
        three_no=True,
        emergency_contact_name="王建国",
        emergency_contact_relation="儿子",
        emergency_contact_phone="13900139000",
    )

    # when it is imported
    run_import(data=workbook([row]), user=worker)

    # then the stored senior has exactly those values
    senior = Senior.objects.get()
    fields = [
        f.attname for f in Senior._meta.concrete_fields if f.attname not in ("id", "created_at", "updated_at")
    ]
    assert {name: getattr(senior, name) for name in fields} == {
        name: getattr(expected, name) for name in fields
    }


def test_reimporting_the_same_file_changes_nothing(community, worker):
    # given a file imported once
    data = workbook([senior_row(community), senior_row(community, name="李建国")])
    assert run_import(data=data, user=worker).created == 2
    history = History.objects.count()
    updated_at = sorted(Senior.objects.values_list("updated_at", flat=True))

    # when it is imported again
    report = run_import(data=data, user=worker)

    # then every row is unchanged, with no new history
    assert report.ok
    assert (report.created, report.updated, report.unchanged) == (0, 0, 2)
    assert History.objects.count() == history
    assert sorted(Senior.objects.values_list("updated_at", flat=True)) == updated_at


def test_an_update_changes_only_the_changed_fields_and_the_history_shows_old_and_new(community, worker):
    # given a registered senior
    bureau = make_user("wang", "bureau")
    senior = register_senior(
        id_card_number=make_id_card_number(),
        name="王秀英",
        community=community,
        phone="13800138000",
        address="保俶路1号",
        self_care="independent",
        created_by=bureau,
    )
    # and a file that changes the phone and self-care, and leaves the address blank
    row = {"id_card_number": senior.id_card_number, "name": "王秀英", "community": community.code}
    data = workbook([{**row, "phone": "139 0013 9000", "self_care": "部分自理", "address": None}])

    # when the worker imports it
    report = run_import(data=data, user=worker)

    # then only those two fields change, and the history says who changed what from what
    assert (report.created, report.updated, report.unchanged) == (0, 1, 0)
    senior.refresh_from_db()
    assert (senior.phone, senior.self_care, senior.address) == ("13900139000", "partial", "保俶路1号")
    latest, previous = senior.history.order_by("-history_id")[:2]
    assert (latest.history_type, latest.history_user, latest.history_change_reason) == ("~", worker, "import")
    delta = latest.diff_against(previous)
    assert sorted((c.field, c.old, c.new) for c in delta.changes) == [
        ("phone", "13800138000", "13900139000"),
        ("self_care", "independent", "partial"),
    ]
    assert previous.history_user == bureau


def test_a_status_change_goes_through_the_status_service(community, worker):
    # given a registered senior, and a file that says they died last month
    senior = register_senior(id_card_number=make_id_card_number(), name="王秀英", community=community)
    on = local_date(timezone.now()) - dt.timedelta(days=30)
    row = {"id_card_number": senior.id_card_number, "name": "王秀英", "community": community.code}
    data = workbook([{**row, "status": "去世", "status_date": on.isoformat()}])

    # when it is imported
    report = run_import(data=data, user=worker)

    # then the senior is deceased from that day, recorded as change_senior_status records it
    assert (report.updated, report.unchanged) == (1, 0)
    senior.refresh_from_db()
    assert (senior.status, senior.status_date) == ("deceased", on)
    latest = senior.history.latest()
    assert (latest.history_user, latest.history_change_reason) == (worker, "status:deceased")
    # and the same file again is unchanged
    assert run_import(data=data, user=worker).unchanged == 1


def test_a_dry_run_counts_and_writes_nothing(community, worker):
    senior = register_senior(id_card_number=make_id_card_number(), name="王秀英", community=community)
    data = workbook(
        [
            senior_row(community),
            {"id_card_number": senior.id_card_number, "name": "王秀珍", "community": community.code},
        ]
    )
    report = run_import(data=data, user=worker, dry_run=True)
    assert report.ok and report.dry_run
    assert (report.created, report.updated, report.unchanged) == (1, 1, 0)
    assert Senior.objects.count() == 1
    senior.refresh_from_db()
    assert senior.name == "王秀英"


def test_headers_in_english_in_any_order_with_english_values(community, worker):
    # given English headers, shuffled, and values in English spellings
    fields = ["self_care", "phone", "community", "name", "living_arrangement", "id_card_number"]
    fields += ["dementia", "three_no", "five_old", "receives_dibao", "children_in_city", "special_difficulty"]
    answers = {"dementia": "Y", "three_no": "1", "five_old": "TRUE", "receives_dibao": "√"}
    answers |= {"children_in_city": "no", "special_difficulty": "×"}
    rows = [
        senior_row(community, self_care="partly", living_arrangement="left_behind", **answers),
        senior_row(
            community, self_care="Unable", living_arrangement="Lives with family", **{f: 0 for f in answers}
        ),
    ]

    # when it is imported
    report = run_import(data=workbook(rows, headers=EN, fields=fields), user=worker)

    # then the values are read as their codes and yes/no
    assert report.ok, codes(report)
    first, second = Senior.objects.order_by("id")
    assert (first.self_care, first.living_arrangement) == ("partial", "left_behind")
    assert (first.dementia, first.three_no, first.five_old, first.receives_dibao) == (True, True, True, True)
    assert (first.children_in_city, first.special_difficulty) == (False, False)
    assert (second.self_care, second.living_arrangement, second.dementia) == (
        "disabled",
        "with_family",
        False,
    )


def test_full_width_digits_and_stray_spaces_are_normalised(community, worker):
    # given an ID-card number, a phone and a community code typed with full-width digits and spaces
    number = make_id_card_number()
    full_width = number.translate(str.maketrans("0123456789X", "０１２３４５６７８９Ｘ"))
    row = senior_row(
        community,
        id_card_number=f" {full_width[:6]} {full_width[6:]} ",
        name="  王秀英 ",
        phone="１３８ ００１３ ８０００",
        community=f" {community.code} ",
        self_care=" 部分自理 ",
    )

    # when it is imported
    report = run_import(data=workbook([row]), user=worker)

    # then the stored values are the normal ones
    assert report.ok, codes(report)
    senior = Senior.objects.get()
    assert (senior.id_card_number, senior.name, senior.phone) == (number, "王秀英", "13800138000")
    assert senior.self_care == "partial"


@pytest.mark.parametrize(
    "cell",
    [
        dt.date(2024, 3, 1),
        dt.datetime(2024, 3, 1, 0, 0),
        "2024-03-01",
        "2024/3/1",
        "2024年3月1日",
        "２０２４-０３-０１",
    ],
)
def test_dates_are_read_from_excel_dates_and_from_text(community, worker, cell):
    report = run_import(data=workbook([senior_row(community, status_date=cell)]), user=worker)
    assert report.ok, codes(report)
    assert Senior.objects.get().status_date == dt.date(2024, 3, 1)


def test_a_15_digit_card_stored_as_a_number_is_read(community, worker):
    # given an old 15-digit card, whose digits Excel keeps even as a number
    old = "330106450301001"
    report = run_import(data=workbook([senior_row(community, id_card_number=int(old))]), user=worker)
    assert report.ok, codes(report)
    assert Senior.objects.get().id_card_number == normalise_id_card_number(old)


def test_a_table_under_a_title_and_beside_an_empty_column_reports_spreadsheet_rows_and_headers(community):
    # given a title row, a blank row, and the table starting in column B of row 3
    book = Workbook()
    sheet = book.active
    sheet.title = DATA_SHEET
    sheet["A1"] = "2026年老年人名单"
    headers = ["身份证号", "姓名", "社区编码", "备注"]
    for offset, header in enumerate(headers):
        sheet.cell(row=3, column=2 + offset, value=header)
    good = senior_row(community)
    values = [
        [good["id_card_number"], "王秀英", community.code, "ok"],
        [make_id_card_number(), "", community.code, "x"],
    ]
    for row_offset, row in enumerate(values):
        for offset, value in enumerate(row):
            sheet.cell(row=4 + row_offset, column=2 + offset, value=value)
    out = io.BytesIO()
    book.save(out)

    # when it is imported
    report = run_import(data=out.getvalue(), user=None)

    # then the error is at the spreadsheet's row 5 under its header, and the copy marks cell C5
    assert codes(report) == [(5, "姓名", "required")]
    marked = load_workbook(io.BytesIO(report.annotated_workbook))[DATA_SHEET]["C5"]
    assert marked.fill.fgColor.rgb == importer.BAD_FILL_COLOUR


def test_blank_rows_between_seniors_are_skipped(community):
    rows = [senior_row(community), {"name": "   "}, {}, senior_row(community, name="李建国")]
    report = run_import(data=workbook(rows), user=None)
    assert report.ok, codes(report)
    assert (report.total_rows, report.created) == (2, 2)


def test_progress_is_reported_up_to_all_rows(community):
    calls = []
    run_import(
        data=workbook([senior_row(community)]),
        user=None,
        progress=lambda done, total: calls.append((done, total)),
    )
    assert calls[-1] == (1, 1)


def test_a_senior_registered_meanwhile_makes_the_import_refuse_everything(community, monkeypatch):
    # given a senior registered by someone else after the import looked the rows up
    taken = register_senior(id_card_number=make_id_card_number(), name="王秀英", community=community)
    database = importer._CopyDatabase if importer.connection.vendor == "postgresql" else importer._OrmDatabase
    looked_up = database.lookup

    def lookup_before_the_registration(self, numbers, *, new_ids):
        return looked_up(self, [f"unregistered-{i}" for i in range(len(numbers))], new_ids=new_ids)

    monkeypatch.setattr(database, "lookup", lookup_before_the_registration)
    rows = [senior_row(community), senior_row(community, id_card_number=taken.id_card_number)]

    # when the import inserts them
    report = run_import(data=workbook(rows), user=None)

    # then it is refused as a whole and nothing is written
    assert codes(report) == [(0, "", "duplicate_senior")]
    assert list(Senior.objects.all()) == [taken]


# --- The template -------------------------------------------------------------------------------


def test_the_template_explains_every_column_and_its_examples_import_as_they_are(db):
    # given the template, and the community its examples are in
    out = io.BytesIO()
    write_template(out)
    district = Region.objects.create(code="330106", name="西湖区", level="district")
    subdistrict = Region.objects.create(
        code="330106001", name="北山街道", level="subdistrict", parent=district
    )
    Region.objects.create(code=EXAMPLE_COMMUNITY_CODE, name="保俶社区", level="community", parent=subdistrict)

    # then it has the instructions, one row per column, and the data sheet's header
    book = load_workbook(io.BytesIO(out.getvalue()))
    assert book.sheetnames == [INSTRUCTIONS_SHEET, DATA_SHEET]
    instructions = list(
        book[INSTRUCTIONS_SHEET].iter_rows(min_row=2, max_row=len(COLUMNS) + 1, values_only=True)
    )
    assert [(row[0], row[1]) for row in instructions] == [(c.zh, c.en) for c in COLUMNS]
    assert all(row[3] and row[4] is not None for row in instructions if row[1] != "status_date")
    assert [cell.value for cell in book[DATA_SHEET][1]] == [ZH[c.field] for c in COLUMNS]

    # when the template is imported as it is
    report = run_import(data=out.getvalue(), user=None)

    # then its two examples are registered
    assert report.ok, codes(report)
    assert report.created == 2
    assert set(Senior.objects.values_list("name", flat=True)) == {"王秀英", "李建国"}


def test_the_template_can_carry_the_worker_s_own_community(community, worker):
    out = io.BytesIO()
    write_template(out, community_code=community.code)
    report = run_import(data=out.getvalue(), user=worker)
    assert report.ok, codes(report)
    assert Senior.objects.filter(community=community).count() == 2


# --- The report, the job, the task --------------------------------------------------------------


def test_the_report_keeps_every_message_in_both_languages(community):
    report = run_import(data=workbook([senior_row(community, phone="12345")]), user=None)
    stored = ImportReport.from_json(report.to_json())
    assert codes(stored) == codes(report)
    for language in ("zh-hans", "en"):
        with translation.override(language):
            assert str(stored.errors[0].message) == importer.message_in(report.errors[0].message, language)
    assert RowError.from_json(report.errors[0].to_json()).row == 2


def test_a_small_upload_is_imported_at_once(community, worker):
    job = start_import(
        data=workbook([senior_row(community)]), filename="名单.xlsx", user=worker, dry_run=False
    )
    assert (job.state, job.total_rows, job.filename, job.created_by) == ("done", 1, "名单.xlsx", worker)
    assert job.report["created"] == 1 and job.finished_at is not None
    assert import_progress(job=job) == (1, 1)
    assert Senior.objects.count() == 1


def test_imported_seniors_are_evaluated_at_once_like_one_registered_by_hand(community, worker):
    # Given the default policy, and a file of a 三无 senior (subsidized) and an ordinary one (paid)
    ensure_default_policy()
    rows = [
        senior_row(community, three_no="是", receives_dibao="否"),
        senior_row(
            community, id_card_number=make_id_card_number(birth_date=dt.date(1950, 1, 2)), receives_dibao="否"
        ),
    ]

    # When the worker uploads it
    start_import(data=workbook(rows), filename="名单.xlsx", user=worker, dry_run=False)

    # Then each has a current determination made by the worker, with the tier their facts give
    current = {
        d.senior.three_no: (d.tier.code, d.determined_by)
        for d in Determination.objects.filter(is_current=True).select_related("senior", "tier")
    }
    assert current == {True: ("subsidized", worker), False: ("paid", worker)}


def test_a_refused_upload_keeps_its_report_and_annotated_copy(community, worker):
    job = start_import(
        data=workbook([senior_row(community, phone="12345")]), filename="x.xlsx", user=worker, dry_run=True
    )
    job.refresh_from_db()
    assert job.state == "failed"
    assert [(e["row"], e["column"], e["code"]) for e in job.report["errors"]] == [
        (2, "联系电话", "invalid_phone")
    ]
    assert set(job.report["errors"][0]["message"]) == {"zh-hans", "en"}
    assert load_workbook(io.BytesIO(bytes(job.annotated_workbook)))[DATA_SHEET]["D2"].comment is not None


def test_a_dry_run_upload_is_checked(community, worker):
    job = start_import(data=workbook([senior_row(community)]), filename="x.xlsx", user=worker, dry_run=True)
    assert (job.state, job.report["created"]) == ("checked", 1)
    assert Senior.objects.count() == 0


def test_an_upload_without_the_permission_is_refused_and_not_kept(community):
    with pytest.raises(EligibilityError) as refusal:
        start_import(data=b"", filename="x.xlsx", user=make_user("zhao", "provider"), dry_run=False)
    assert refusal.value.code == "not_permitted"
    assert ImportJob.objects.count() == 0


def _large_workbook(community, rows: int) -> bytes:
    book = Workbook(write_only=True)
    sheet = book.create_sheet(DATA_SHEET)
    sheet.append(["身份证号", "姓名", "社区编码", "居住情况"])
    for index in range(rows):
        birth = dt.date(1930, 1, 1) + dt.timedelta(days=index % 9000)
        number = make_id_card_number(birth_date=birth, serial=1)
        sheet.append([number, f"老人{index}", community.code, "独居"])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_a_large_upload_is_imported_by_a_celery_task(
    community, worker, django_capture_on_commit_callbacks, monkeypatch
):
    # given a file larger than an upload imported at once, and tasks run where they are sent
    # (as without Redis; with REDIS_URL set they would wait for a worker)
    monkeypatch.setattr(celery_app.conf, "CELERY_TASK_ALWAYS_EAGER", True)  # the name settings give it
    data = _large_workbook(community, importer.INLINE_LIMIT + 1)

    # when it is uploaded, the job waits for the commit; then the task runs it (eagerly in tests)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        job = start_import(data=data, filename="big.xlsx", user=worker, dry_run=False)
        assert (job.state, job.total_rows) == ("queued", importer.INLINE_LIMIT + 1)
        cache.delete(import_progress_key(job.pk))  # left by an earlier test's job of the same id
        assert import_progress(job=job) == (0, importer.INLINE_LIMIT + 1)
    assert len(callbacks) == 1

    # then the job is done and every row registered, its progress complete
    job.refresh_from_db()
    assert job.state == "done", (job.state, job.report)
    assert job.report["created"] == importer.INLINE_LIMIT + 1
    assert Senior.objects.count() == importer.INLINE_LIMIT + 1
    assert History.objects.filter(history_user=worker).count() == importer.INLINE_LIMIT + 1
    assert import_progress(job=job) == (importer.INLINE_LIMIT + 1, importer.INLINE_LIMIT + 1)
    # and the worker's last report is in the cache
    assert cache.get(import_progress_key(job.pk)) == (job.total_rows, job.total_rows)


def test_a_failing_cache_never_fails_an_import(community, worker, monkeypatch):
    # given a cache that fails on every call, as Redis down does
    def broken(*args, **kwargs):
        raise ConnectionError("redis is down")

    monkeypatch.setattr(cache, "set", broken)
    monkeypatch.setattr(cache, "get", broken)
    job = ImportJob.objects.create(
        created_by=worker, filename="x.xlsx", workbook=workbook([senior_row(community)])
    )

    # then the progress shows nothing yet, and the import runs to the end
    assert import_progress(job=job) == (0, 0)
    job = finish_import_job(job_id=job.pk)
    assert job.state == "done"
    assert Senior.objects.count() == 1


def test_a_finished_job_is_not_run_twice(community, worker):
    job = start_import(data=workbook([senior_row(community)]), filename="x.xlsx", user=worker, dry_run=False)
    again = finish_import_job(job_id=job.pk)
    assert (again.state, again.report) == ("done", job.report)
    assert History.objects.count() == 1


def test_workers_see_their_own_imports_and_the_bureau_sees_all(community, worker):
    other = make_user("li", "worker", region=community)
    bureau = make_user("wang", "bureau")
    mine = ImportJob.objects.create(created_by=worker, filename="a.xlsx", workbook=b"")
    theirs = ImportJob.objects.create(created_by=other, filename="b.xlsx", workbook=b"")
    assert list(import_jobs_visible_to(worker)) == [mine]
    assert set(import_jobs_visible_to(bureau)) == {mine, theirs}
    assert list(import_jobs_visible_to(make_user("zhao", "provider"))) == []


# --- The command --------------------------------------------------------------------------------


def _run(*args) -> str:
    out = io.StringIO()
    call_command("import_seniors", *args, stdout=out)
    return out.getvalue()


def test_the_command_imports_a_good_file_and_exits_zero(community, tmp_path):
    path = tmp_path / "seniors.xlsx"
    path.write_bytes(workbook([senior_row(community), senior_row(community, name="李建国")]))
    with translation.override("en"):
        assert "2 new" in _run(str(path))
    assert Senior.objects.count() == 2
    assert History.objects.filter(history_user=None).count() == 2  # a system import


def test_the_command_prints_every_error_writes_the_marked_copy_and_exits_non_zero(community, tmp_path):
    path, marked = tmp_path / "seniors.xlsx", tmp_path / "errors.xlsx"
    path.write_bytes(workbook([senior_row(community), senior_row(community, phone="12345", dementia="?")]))
    out = io.StringIO()
    with translation.override("en"), pytest.raises(CommandError) as failure:
        call_command("import_seniors", str(path), "--errors-out", str(marked), stdout=out)
    assert failure.value.returncode == 1
    assert "2 errors" in str(failure.value)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("Row 3, 联系电话: ")
    assert lines[1].startswith("Row 3, 失智: ")
    assert load_workbook(marked)[DATA_SHEET]["D3"].fill.fgColor.rgb == importer.BAD_FILL_COLOUR
    assert Senior.objects.count() == 0


def test_the_command_dry_run_writes_nothing(community, tmp_path):
    path = tmp_path / "seniors.xlsx"
    path.write_bytes(workbook([senior_row(community)]))
    with translation.override("en"):
        assert "1 would be new" in _run(str(path), "--dry-run")
    assert Senior.objects.count() == 0


def test_the_command_imports_as_a_user_within_their_community(community, worker, tmp_path):
    path = tmp_path / "seniors.xlsx"
    path.write_bytes(workbook([senior_row(community, community=make_community("B").code)]))
    with pytest.raises(CommandError):
        _run(str(path), "--by", worker.username)
    with pytest.raises(CommandError, match="nobody"):
        _run(str(path), "--by", "nobody")


def test_the_command_writes_the_template(db, tmp_path):
    path = tmp_path / "template.xlsx"
    _run("--template", str(path))
    assert load_workbook(path).sheetnames == [INSTRUCTIONS_SHEET, DATA_SHEET]
    with pytest.raises(CommandError):
        _run("--template", str(tmp_path / "missing" / "template.xlsx"))
    with pytest.raises(CommandError):
        _run(str(tmp_path / "nothing-here.xlsx"))


def test_a_status_set_by_the_service_is_kept_by_an_import_without_a_status_column(community, worker):
    # given a senior who moved away, and a file that only corrects their phone
    senior = register_senior(id_card_number=make_id_card_number(), name="王秀英", community=community)
    change_senior_status(senior=senior, status="moved_away", on=local_date(timezone.now()), by=worker)
    row = {
        "id_card_number": senior.id_card_number,
        "name": "王秀英",
        "community": community.code,
        "phone": "13700137000",
    }

    # when it is imported
    assert run_import(data=workbook([row]), user=worker).updated == 1

    # then the status stays
    senior.refresh_from_db()
    assert (senior.status, senior.phone) == ("moved_away", "13700137000")


# --- The quick ID-card check --------------------------------------------------------------------

_BIRTH_PLACES = ["330106", "110101", "440305", "999999", "000000", "330100"]


@settings(max_examples=300, deadline=None)
@given(
    place=st.sampled_from(_BIRTH_PLACES),
    birth=st.dates(min_value=dt.date(1890, 1, 1), max_value=dt.date(2030, 12, 31)),
    sequence=st.integers(min_value=0, max_value=999),
    check=st.sampled_from([*"0123456789X", "x", "right"]),
    month=st.sampled_from(["", "13", "00"]),
)
def test_the_quick_id_card_check_agrees_with_the_registry_s(place, birth, sequence, check, month):
    body = f"{place}{birth:%Y}{month or f'{birth:%m}'}{birth:%d}{sequence:03d}"
    number = body + (ric.calc_check_digit(body + "0") if check == "right" else check)
    try:
        expected = normalise_id_card_number(number)
    except EligibilityError as error:
        with pytest.raises(EligibilityError) as refusal:
            read_id_card_number(number)
        assert (refusal.value.code, refusal.value.message) == (error.code, error.message)
    else:
        assert read_id_card_number(number) == expected


def test_only_a_clean_check_is_confirmed_and_only_by_whoever_checked_it(community, worker):
    # Given a checked workbook and a refused one
    checked = start_import(
        data=workbook([senior_row(community)]), filename="a.xlsx", user=worker, dry_run=True
    )
    refused = start_import(
        data=workbook([senior_row(community, phone="12345")]), filename="b.xlsx", user=worker, dry_run=True
    )

    # Then the refused one cannot be confirmed, nor the checked one by someone else
    with pytest.raises(EligibilityError, match="invalid_input"):
        confirm_import(job=refused, user=worker)
    with pytest.raises(EligibilityError, match="not_permitted"):
        confirm_import(job=checked, user=make_user("li", "worker", region=community))
    assert Senior.objects.count() == 0

    # And the checked one, confirmed, is imported as a new job
    imported = confirm_import(job=checked, user=worker)
    assert (imported.state, imported.dry_run, imported.report["created"]) == ("done", False, 1)
    assert imported.pk != checked.pk and Senior.objects.count() == 1


def test_an_import_that_breaks_unexpectedly_ends_refused_and_writes_nothing(community, worker, monkeypatch):
    # Given an import that breaks halfway (a bug, a lost connection)
    def broken(**kwargs):
        Senior.objects.create(
            id_card_number=make_id_card_number(),
            name="半截",
            birth_date=dt.date(1950, 1, 1),
            sex="F",
            community=community,
            status_date=dt.date(2026, 1, 1),
        )
        raise RuntimeError("boom")

    monkeypatch.setattr(importer, "run_import", broken)

    # When a worker uploads a workbook
    job = start_import(data=workbook([senior_row(community)]), filename="x.xlsx", user=worker, dry_run=False)

    # Then the job is refused with its own code (the page stops waiting), nothing was written,
    # and the uploaded workbook (ID numbers, phones) is not kept
    job.refresh_from_db()
    assert job.state == "failed" and [e["code"] for e in job.report["errors"]] == ["import_failed"]
    assert Senior.objects.count() == 0
    assert bytes(job.workbook) == b""


def test_a_finished_import_keeps_no_copy_of_the_workbook_but_a_clean_check_does(community, worker):
    done = start_import(data=workbook([senior_row(community)]), filename="a.xlsx", user=worker, dry_run=False)
    checked = start_import(
        data=workbook([senior_row(community, id_card_number=make_id_card_number())]),
        filename="b.xlsx",
        user=worker,
        dry_run=True,
    )
    done.refresh_from_db()
    checked.refresh_from_db()
    assert bytes(done.workbook) == b"" and len(bytes(checked.workbook)) > 0


def test_a_stored_workbook_is_read_back_whole_in_chunks(worker):
    # Given an upload of 2.5 MB (more than two chunks), bytes of every value
    data = bytes(range(256)) * 10_240
    job = ImportJob.objects.create(created_by=worker, filename="big.xlsx", workbook=data)

    # Then the job reads back exactly what was uploaded
    assert _stored_workbook(job.pk) == data
