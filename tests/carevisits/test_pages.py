"""The care-visit pages, the API and the three workbooks, per role: a worker records in their own
community only, an officer reads their subtree, the bureau sees the city, other roles nothing."""

import datetime as dt
import io

import openpyxl
import pytest
from django.core.management import call_command
from django.test import Client

from carevisits import selectors, services
from carevisits.models import VisitRecord
from config.months import SHANGHAI
from config.roles import FINANCE, PROVIDER, STAFF
from tests.carevisits.conftest import MONTH
from tests.e2e.conftest import make_user


def client_for(user) -> Client:
    client = Client(HTTP_ACCEPT_LANGUAGE="zh-hans")
    client.force_login(user)
    return client


@pytest.fixture
def seniors(world):
    mine = world.senior("A")
    other = world.senior("C", community=world.c2)
    far = world.senior("B", community=world.c3)
    services.pair_contact(senior=mine, by=world.worker1, visitor=world.worker1)
    return {"mine": mine, "other": other, "far": far}


def test_a_worker_records_a_home_visit_and_the_communitys_rate_goes_up(world, seniors):
    client = client_for(world.worker1)
    page = client.get("/visits/mine/")
    assert (
        page.status_code == 200
        and "记录探访" in page.content.decode()
        and "探访老人" in page.content.decode()
    )
    before = selectors.monthly_picture(user=world.worker1, month=MONTH).total
    assert (before.due, before.done) == (1, 0)
    form = client.get(f"/visits/seniors/{seniors['mine'].pk}/record/")
    assert (
        "王小明" in form.content.decode() and "13900001111" in form.content.decode()
    )  # the emergency contact
    answer = client.post(
        f"/visits/seniors/{seniors['mine'].pk}/record/",
        {
            "outcome": "visited",
            "mode": "home",
            "visited_at": "2026-11-16T09:30",
            "health_problem": "on",
            "notes": "血压偏高",
        },
    )
    assert answer.status_code == 302
    record = VisitRecord.objects.get()
    assert (record.mode, record.health_problem, record.recorded_by) == ("home", True, world.worker1)
    after = selectors.monthly_picture(user=world.worker1, month=MONTH).total
    assert (after.due, after.done, after.rate_percent) == (1, 1, "100.0%")
    assert "100.0%" in client.get("/visits/").content.decode()


def test_a_refused_visit_shows_its_error_on_the_field(world, seniors):
    client = client_for(world.worker1)
    answer = client.post(
        f"/visits/seniors/{seniors['mine'].pk}/record/",
        {"outcome": "declined", "mode": "home", "visited_at": "2026-11-16T09:30", "notes": ""},
    )
    assert answer.status_code == 400 and "书面记录" in answer.content.decode()
    assert not VisitRecord.objects.exists()


@pytest.mark.parametrize(
    ("who", "senior", "page", "record"),
    [
        ("worker1", "mine", 200, 200),
        ("worker1", "other", 404, 404),
        ("worker1", "far", 404, 404),
        ("worker2", "other", 200, 200),
        ("officer", "mine", 200, 403),
        ("officer", "other", 200, 403),
        ("officer", "far", 404, 404),
        ("bureau", "far", 200, 200),
    ],
)
def test_who_sees_and_records_which_senior(world, seniors, who, senior, page, record):
    client = client_for(getattr(world, who))
    assert client.get(f"/visits/seniors/{seniors[senior].pk}/").status_code == page
    assert client.get(f"/visits/seniors/{seniors[senior].pk}/record/").status_code == record
    assert client.get(f"/visits/seniors/{seniors[senior].pk}/registration.xlsx").status_code == page


@pytest.mark.parametrize("role", [PROVIDER, STAFF, FINANCE])
def test_other_roles_have_no_care_visits(world, seniors, role):
    client = client_for(make_user(f"{role}-user", role))
    assert client.get("/visits/").status_code == 403
    assert client.get(f"/visits/seniors/{seniors['mine'].pk}/").status_code == 403


def test_the_picture_of_an_officer_and_the_bureau(world, seniors):
    officer = client_for(world.officer).get("/visits/").content.decode()
    assert "保俶社区" in officer and "宝石社区" in officer and "东坡社区" not in officer
    bureau = client_for(world.bureau).get("/visits/").content.decode()
    assert "西湖区" in bureau and "上城区" in bureau
    # a region outside the officer's subtree is not found
    assert client_for(world.officer).get("/visits/?region=330102").status_code == 404


def test_a_worker_pairs_a_senior_with_a_new_volunteer(world, seniors):
    client = client_for(world.worker1)
    answer = client.post(
        f"/visits/seniors/{seniors['mine'].pk}/pair/",
        {"volunteer_name": "林志华", "volunteer_phone": "13857100001"},
    )
    assert answer.status_code == 302
    assert selectors.current_pairing(senior=seniors["mine"]).volunteer.name == "林志华"
    assert (
        client_for(world.officer).post(f"/visits/seniors/{seniors['mine'].pk}/pair/", {}).status_code == 403
    )


def test_the_bureau_adds_a_temporary_rule_on_the_page(world, seniors):
    answer = client_for(world.bureau).post(
        "/visits/requirements/",
        {
            "care_visit_class": "A",
            "visits_per_month": 3,
            "effective_from": "2026-11-10",
            "effective_until": "2026-11-20",
            "region": world.subdistrict.pk,
            "label": "寒潮",
        },
    )
    assert answer.status_code == 302
    # the A senior of 保俶社区, raised to 3 in the rule's month
    assert selectors.monthly_picture(user=world.worker1, month=MONTH).total.due == 3
    assert client_for(world.worker1).post("/visits/requirements/", {}).status_code == 403


# --- The three forms ------------------------------------------------------------------------------


def _book(response) -> openpyxl.Workbook:
    assert response.status_code == 200
    return openpyxl.load_workbook(io.BytesIO(b"".join(response.streaming_content)))


def test_the_three_forms_download_and_open(world, seniors):
    services.record_visit(
        senior=seniors["mine"],
        by=world.worker1,
        mode="home",
        visited_at=dt.datetime(2026, 11, 3, 9, tzinfo=SHANGHAI),
        notes='=HYPERLINK("http://x")',
        urgent=True,
        referral="medical",
    )
    client = client_for(world.officer)
    statistics = _book(client.get("/visits/export/statistics.xlsx?month=2026-11"))
    sheet = statistics["情况统计表"]
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[2][:4] == ("序号", "街道", "社区", "特殊困难老年人合计")
    assert rows[3][1:7] == ("北山街道", "保俶社区", 1, 1, 0, 0)
    assert rows[3][11:14] == (1, 1, 1)  # due, done, rate 100 %
    assert sheet.page_setup.orientation == "landscape"

    registration = _book(client.get(f"/visits/seniors/{seniors['mine'].pk}/registration.xlsx"))
    cells = [value for row in registration.active.iter_rows(values_only=True) for value in row]
    assert "特殊困难老年人基本信息登记表" in cells and "王小明" in cells and "A类" in cells
    assert not any(
        isinstance(v, str) and v.startswith("330106") and "*" not in v for v in cells
    )  # masked for an officer

    records = _book(client_for(world.worker1).get("/visits/export/records.xlsx?month=2026-11"))
    rows = list(records["服务记录表"].iter_rows(values_only=True))
    assert rows[1][0] == "序号" and rows[2][6] == "入户探访" and rows[2][13] == "是"
    assert rows[2][12] == '=HYPERLINK("http://x")'  # text, not a formula
    assert records["服务记录表"].cell(3, 13).data_type == "s"


def test_care_visit_report_writes_the_statistics_table(world, seniors, tmp_path):
    out = tmp_path / "report.xlsx"
    call_command("care_visit_report", "--period", "2026-11", "--out", str(out), stdout=io.StringIO())
    rows = list(openpyxl.load_workbook(out)["情况统计表"].iter_rows(values_only=True))
    assert [row[2] for row in rows[3:6]] == ["东坡社区", "保俶社区", "宝石社区"]  # by region code


# --- The API ----------------------------------------------------------------------------------------


def test_the_api_records_a_visit_and_refuses_outside_the_scope(world, seniors, api_client):
    api_client.force_authenticate(world.worker1)
    body = {
        "senior": seniors["mine"].pk,
        "mode": "phone",
        "visited_at": "2026-11-15T10:00:00+08:00",
        "needs_help": True,
    }
    answer = api_client.post("/api/v1/care-visits/", body, format="json")
    assert answer.status_code == 201, answer.json()
    assert answer.json()["needs_help"] is True and VisitRecord.objects.get().source == "api"
    elsewhere = api_client.post("/api/v1/care-visits/", {**body, "senior": seniors["far"].pk}, format="json")
    assert (elsewhere.status_code, elsewhere.json()["code"]) == (404, "not_found")
    bad = api_client.post("/api/v1/care-visits/", {**body, "outcome": "declined"}, format="json")
    assert (bad.status_code, bad.json()["code"]) == (400, "invalid_input")
    listed = api_client.get("/api/v1/care-visits/?month=2026-11").json()
    assert [row["senior"] for row in listed] == [seniors["mine"].pk]
    mine = api_client.get("/api/v1/care-visits/mine/").json()
    assert [row["senior"] for row in mine] == [seniors["mine"].pk]


def test_the_api_refuses_an_officer_writing(world, seniors, api_client):
    api_client.force_authenticate(world.officer)
    answer = api_client.post(
        "/api/v1/care-visits/", {"senior": seniors["mine"].pk, "mode": "home"}, format="json"
    )
    assert (answer.status_code, answer.json()["code"]) == (403, "not_permitted")
