"""The registry pages (/registry/) through Django's test client: who sees whom, searching
without personal data in any URL, filters, pages, the Excel export, registering and editing with
errors on their fields, the history of changes, moving out, read-only officers, and the import."""

import datetime as dt
import io
import re
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.auth.models import Group
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.html import escape
from django.utils.translation import gettext
from openpyxl import Workbook, load_workbook

from config.months import month_of
from config.roles import BUREAU, FINANCE, OFFICER, WORKER, setup_roles
from eligibility import importer
from eligibility.forms import FLAG_GROUPS
from eligibility.models import Determination, ImportJob, Region, Senior
from eligibility.services import (
    FLAG_FACTS,
    assign_region_scope,
    ensure_default_policy,
    evaluate_eligibility,
    register_senior,
)
from eligibility.views import _shown_value
from tests.e2e.conftest import serve_cleaning_and_a_voided_meal
from tests.factories import (
    RegionFactory,
    SeniorFactory,
    StaffMemberFactory,
    UserFactory,
    make_id_card_number,
    make_priced_contract,
)
from vouchers.models import Voucher
from vouchers.services import issue_vouchers
from vouchers.tokens import voucher_token

LIST = reverse("registry-list")
EXPORT = reverse("registry-export")
ADD = reverse("registry-add")


def t(text: str) -> str:
    """`text` as a Chinese page shows it, HTML-escaped."""
    with translation.override("zh-hans"):
        return escape(gettext(text))


def page_of(response) -> str:
    return response.content.decode()


def names_listed(response) -> set[str]:
    return set(re.findall(r'<span class="record-name">([^<]+)</span>', page_of(response)))


@dataclass
class City:
    """Two districts: 西湖区 with 北山街道 (保俶社区, 宝石社区) and 西溪街道 (古荡社区); 上城区 with
    湖滨街道 (东坡社区). One senior in each community, plus users of each role."""

    c1: Region
    c2: Region
    c3: Region
    c4: Region
    s1: Region
    seniors: dict
    users: dict


def make_user(username: str, role: str | None, region: Region | None = None, **fields):
    user = UserFactory(username=username, **fields)
    if role:
        user.groups.add(Group.objects.get(name=role))
    if region is not None:
        assign_region_scope(user=user, region=region, by=None)
    return user


def build_city() -> City:
    setup_roles()  # the migration made them, but a transactional test before this one flushed them
    ensure_default_policy()
    d1 = RegionFactory(code="330106", name="西湖区", level=Region.Level.DISTRICT)
    s1 = RegionFactory(code="330106001", name="北山街道", level=Region.Level.SUBDISTRICT, parent=d1)
    s2 = RegionFactory(code="330106002", name="西溪街道", level=Region.Level.SUBDISTRICT, parent=d1)
    c1 = RegionFactory(code="330106001001", name="保俶社区", level=Region.Level.COMMUNITY, parent=s1)
    c2 = RegionFactory(code="330106001002", name="宝石社区", level=Region.Level.COMMUNITY, parent=s1)
    c3 = RegionFactory(code="330106002001", name="古荡社区", level=Region.Level.COMMUNITY, parent=s2)
    d2 = RegionFactory(code="330102", name="上城区", level=Region.Level.DISTRICT)
    s3 = RegionFactory(code="330102001", name="湖滨街道", level=Region.Level.SUBDISTRICT, parent=d2)
    c4 = RegionFactory(code="330102001001", name="东坡社区", level=Region.Level.COMMUNITY, parent=s3)
    seniors = {
        # 张三: three-no (subsidized, 无偿), with a mobile phone
        "张三": register_senior(
            id_card_number=make_id_card_number(birth_date=dt.date(1940, 5, 1), serial=11),
            name="张三",
            community=c1,
            phone="13812345678",
            three_no=True,
        ),
        # 李四: lives alone, disabled, children elsewhere (low fee, care class A)
        "李四": register_senior(
            id_card_number=make_id_card_number(birth_date=dt.date(1950, 5, 1), serial=12),
            name="李四",
            community=c2,
            phone="0571-87061234",
            living_arrangement="alone",
            children_in_city=False,
            self_care="disabled",
        ),
        "王五": register_senior(
            id_card_number=make_id_card_number(birth_date=dt.date(1955, 5, 1), serial=13),
            name="王五",
            community=c3,
        ),
        "赵六": register_senior(
            id_card_number=make_id_card_number(birth_date=dt.date(1948, 5, 1), serial=14),
            name="赵六",
            community=c4,
        ),
    }
    evaluate_eligibility(as_of=timezone.localdate())
    users = {
        "worker": make_user("worker", WORKER, c1, first_name="陈丽"),
        "worker3": make_user("worker3", WORKER, c3),
        "officer": make_user("officer", OFFICER, s1, first_name="周科长"),
        "bureau": make_user("bureau", BUREAU),
        "finance": make_user("finance", FINANCE),
    }
    return City(c1, c2, c3, c4, s1, seniors, users)


@pytest.fixture
def city(db) -> City:
    return build_city()


def signed_in(client, user):
    client.force_login(user)
    return client


def search_for(client, query: str, **filters):
    """POST a search as the list's form does; returns (redirect response, followed page)."""
    posted = client.post(LIST, {"q": query, **filters})
    assert posted.status_code == 302, posted.status_code
    return posted, client.get(posted.url)


# --- Who sees whom ---


def test_a_worker_sees_only_their_community(client, city):
    # Given the worker of 保俶社区
    signed_in(client, city.users["worker"])

    # When they open the registry
    response = client.get(LIST)

    # Then only 张三 of their community is listed, with the total count
    assert response.status_code == 200
    assert names_listed(response) == {"张三"}
    assert 'id="result-count"' in page_of(response)


def test_an_officer_sees_their_subdistrict_and_the_bureau_the_whole_city(client, city):
    # When the officer of 北山街道 opens the registry, they see both its communities
    assert names_listed(signed_in(client, city.users["officer"]).get(LIST)) == {"张三", "李四"}

    # And the bureau administrator sees every senior of the city
    assert names_listed(signed_in(client, city.users["bureau"]).get(LIST)) == {"张三", "李四", "王五", "赵六"}


@pytest.mark.parametrize("page", ["registry-senior", "registry-edit", "registry-status"])
def test_a_senior_outside_the_workers_community_is_not_found(client, city, page):
    # Given the worker of 保俶社区 and 王五, who lives in 古荡社区
    signed_in(client, city.users["worker"])
    url = reverse(page, args=[city.seniors["王五"].pk])

    # When they open 王五's page, form or status change (or post to them)
    # Then each is a 404, as if 王五 did not exist, and nothing changes
    assert client.get(url).status_code == 404
    if page != "registry-senior":  # the senior's page itself is read-only (405 to a POST)
        posted = {"status": "deceased", "status_date": "2026-01-01", "confirmed": "on", "name": "改名"}
        assert client.post(url, posted).status_code == 404
    assert Senior.objects.get(pk=city.seniors["王五"].pk).status == Senior.Status.ACTIVE


def test_users_without_the_registry_get_the_friendly_403_page(client, city):
    # Given finance staff, who have no registry
    signed_in(client, city.users["finance"])

    for url in (LIST, EXPORT, ADD, reverse("registry-senior", args=[city.seniors["张三"].pk])):
        # When they open a registry page
        response = client.get(url)

        # Then they get the project's 403 page with a way home
        assert response.status_code == 403, url
        assert t("Not permitted") in page_of(response)
        assert f'href="{reverse("home")}"' in page_of(response)


def test_signing_in_is_required(client, city):
    response = client.get(LIST)
    assert response.status_code == 302 and response.url.startswith(reverse("login"))


# --- Searching: POSTed, kept in the session, never in a URL ---


def assert_not_in_url(text: str, url: str) -> None:
    """`text` is nowhere in the URL but for the search's random key, which may hold any letters
    by chance (it names the query kept in the session, and tells nothing of it)."""
    key = parse_qs(urlsplit(url).query).get("s", [""])[0]
    assert text.lower() not in url.replace(key, "").lower(), url


@pytest.mark.parametrize(
    "query, found",
    [
        ("张三", {"张三"}),
        ("张", {"张三"}),
        ("zs", {"张三"}),
        ("ZS", {"张三"}),
        ("ｚｓ", {"张三"}),  # full-width letters from a Chinese keyboard
        ("13812345678", {"张三"}),
        ("5678", {"张三"}),
        ("87061234", {"李四"}),
        ("057187061234", {"李四"}),  # the landline without its dash
        ("zz", set()),
    ],
)
def test_the_officer_finds_seniors_by_name_initials_and_phone(client, city, query, found):
    # Given the officer of 北山街道 (张三 and 李四)
    signed_in(client, city.users["officer"])

    # When they search
    posted, response = search_for(client, query)

    # Then the matching seniors are listed, and the URL carries only a random key
    assert names_listed(response) == found
    assert_not_in_url(query, posted.url)
    assert set(parse_qs(urlsplit(posted.url).query)) == {"s"}


def test_the_last_four_of_the_id_card_number_finds_the_senior_and_never_reaches_a_url(client, city):
    # Given the officer and 李四's ID-card number
    signed_in(client, city.users["officer"])
    number = city.seniors["李四"].id_card_number

    # When they search by its last four characters, and by the whole number
    for query in (number[-4:], number, number.lower()):
        posted, response = search_for(client, query)

        # Then 李四 is found, and neither the number nor a part of it is in the redirect
        assert names_listed(response) == {"李四"}
        assert_not_in_url(number[-4:], posted.url)
        assert_not_in_url(number[:6], posted.url)
        # And the pages of the result carry the key, not the query
        assert number[-4:] not in page_of(response).split('name="q"')[0]


def test_a_search_is_scoped_like_the_list(client, city):
    # Given the worker of 保俶社区, searching for 李四 of 宝石社区 by name
    signed_in(client, city.users["worker"])

    # Then nobody is found
    _posted, response = search_for(client, "李四")
    assert names_listed(response) == set()
    assert t(
        "Nobody matches. Check the spelling, or try the pinyin initials or the last four characters of the ID-card number."
    ) in page_of(response)


def test_three_digits_are_too_few_to_search_by(client, city):
    signed_in(client, city.users["officer"])

    response = client.post(LIST, {"q": "123"})

    assert response.status_code == 400
    assert 'class="error-text"' in page_of(response)


def test_an_unknown_search_key_shows_everyone_and_says_so(client, city):
    signed_in(client, city.users["officer"])

    response = client.get(LIST, {"s": "not-a-key"})

    assert names_listed(response) == {"张三", "李四"}
    assert t("That search is no longer remembered; please search again.") in page_of(response)


def test_another_users_search_key_finds_nothing_of_theirs(client, city):
    # Given the officer's search for 张三
    signed_in(client, city.users["officer"])
    posted, _response = search_for(client, "张三")

    # When the bureau administrator opens the same URL in their own session
    signed_in(client, city.users["bureau"])
    response = client.get(posted.url)

    # Then the key is unknown there: the search lives in the officer's session only
    assert len(names_listed(response)) == 4


# --- Filters and pages ---


def test_filters_by_tier_care_class_status_and_community(client, city):
    # Given the bureau administrator
    signed_in(client, city.users["bureau"])

    # Then each filter narrows the list, by GET (nothing personal in it)
    assert names_listed(client.get(LIST, {"tier": "subsidized"})) == {"张三"}
    assert names_listed(client.get(LIST, {"tier": "low_fee"})) == {"李四"}
    assert names_listed(client.get(LIST, {"care_class": "A"})) == {"李四"}
    assert names_listed(client.get(LIST, {"community": city.c4.code})) == {"赵六"}
    assert names_listed(client.get(LIST, {"tier": "paid", "community": city.c3.code})) == {"王五"}
    assert names_listed(client.get(LIST, {"status": "deceased"})) == set()


def test_a_search_keeps_its_filters(client, city):
    signed_in(client, city.users["bureau"])

    posted, response = search_for(client, "张", tier="paid")

    assert names_listed(response) == set()
    assert parse_qs(urlsplit(posted.url).query)["tier"] == ["paid"]


def test_a_community_outside_the_users_scope_is_not_a_filter(client, city):
    # Given the officer of 北山街道, asking for 东坡社区 of another district
    signed_in(client, city.users["officer"])

    response = client.get(LIST, {"community": city.c4.code})

    # Then the filter is ignored and the list stays theirs; the community is not offered either
    assert names_listed(response) == {"张三", "李四"}
    assert city.c4.name not in page_of(response)


def test_the_list_has_pages_of_fifty_and_the_total(client, city):
    # Given 60 more seniors in 保俶社区
    for serial in range(60):
        SeniorFactory(community=city.c1, id_card_number=make_id_card_number(serial=100 + serial))
    signed_in(client, city.users["worker"])

    # When the worker opens the list, and then the next page
    first = client.get(LIST)
    second = client.get(LIST, {"page": 2})

    # Then 50 are on the first page, 11 on the second, and both give the total of 61
    assert len(names_listed(first)) == 50 and len(names_listed(second)) == 11
    assert "61" in page_of(first)
    assert 'href="?page=2"' in page_of(first)
    assert names_listed(first).isdisjoint(names_listed(second))


def test_the_list_reads_the_database_a_few_times_whatever_its_length(
    client, city, django_assert_max_num_queries
):
    # Given 60 more seniors in 保俶社区, each with a current determination
    for serial in range(60):
        SeniorFactory(community=city.c1, id_card_number=make_id_card_number(serial=500 + serial))
    evaluate_eligibility(as_of=timezone.localdate())
    signed_in(client, city.users["worker"])

    # When the worker opens the list, it takes a handful of queries, not one per senior
    with django_assert_max_num_queries(12):
        response = client.get(LIST)
    assert len(names_listed(response)) == 50


def test_pages_of_a_search_keep_its_key(client, city):
    for serial in range(55):
        SeniorFactory(
            community=city.c1, name=f"张{serial}", id_card_number=make_id_card_number(serial=200 + serial)
        )
    signed_in(client, city.users["worker"])

    posted, response = search_for(client, "张")

    key = parse_qs(urlsplit(posted.url).query)["s"][0]
    assert f"s={key}&amp;page=2" in page_of(response)
    assert len(names_listed(client.get(LIST, {"s": key, "page": 2}))) == 6


# --- The Excel export ---


def export_rows(response) -> list[tuple]:
    assert response.status_code == 200
    assert response["Content-Type"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    workbook = load_workbook(io.BytesIO(b"".join(response.streaming_content)), read_only=True)
    return list(workbook.active.iter_rows(values_only=True))


def test_the_export_has_chinese_headers_and_masks_id_numbers_for_an_officer(client, city):
    # Given the officer, who may not see whole ID-card numbers
    signed_in(client, city.users["officer"])

    # When they download the list
    rows = export_rows(client.get(EXPORT))

    # Then it has Chinese headers and one row per senior of their subdistrict, numbers masked
    header, *body = rows
    assert header[:4] == ("街道", "社区", "身份证号", "姓名")
    by_name = {row[3]: dict(zip(header, row, strict=True)) for row in body}
    assert set(by_name) == {"张三", "李四"}
    number = city.seniors["张三"].id_card_number
    assert by_name["张三"]["身份证号"] == number[:6] + "********" + number[-4:]
    assert by_name["张三"]["服务类别"] == "无偿"
    assert by_name["李四"]["探访分类"] == "A"
    assert by_name["李四"]["居住情况"] == "独居" and by_name["李四"]["子女在本市"] == "否"
    assert by_name["张三"]["三无或特困"] == "是" and by_name["张三"]["社区编码"] == city.c1.code


def test_the_export_follows_the_search_and_shows_whole_numbers_to_a_worker(client, city):
    # Given the bureau administrator, who may see whole numbers, searching by pinyin initials
    signed_in(client, city.users["bureau"])
    posted, _response = search_for(client, "ls")
    key = parse_qs(urlsplit(posted.url).query)["s"][0]

    # When they download the list of the search
    _header, *body = export_rows(client.get(EXPORT, {"s": key}))

    # Then only 李四 is in it, with the whole number
    assert [row[3] for row in body] == ["李四"]
    assert body[0][2] == city.seniors["李四"].id_card_number


def test_the_export_can_be_posted_and_writes_formulas_as_text(client, city):
    # Given a senior whose name looks like a formula
    register_senior(id_card_number=make_id_card_number(serial=77), name="=HYPERLINK(1)", community=city.c1)
    signed_in(client, city.users["worker"])

    # When the worker posts the list's form to the export
    response = client.post(EXPORT, {"q": "=HYPERLINK"})
    data = b"".join(response.streaming_content)

    # Then the name is written as text, exactly as typed: a quoted string cell, never a formula
    cells = [
        c
        for row in load_workbook(io.BytesIO(data)).active.iter_rows()
        for c in row
        if c.value == "=HYPERLINK(1)"
    ]
    assert len(cells) == 1 and cells[0].data_type == "s" and cells[0].quotePrefix


def test_an_export_with_whole_numbers_imports_again_unchanged(client, city):
    # Given the bureau's export of the whole city
    signed_in(client, city.users["bureau"])
    response = client.get(EXPORT)
    data = b"".join(response.streaming_content)

    # When it is checked by the import, as it is
    report = importer.run_import(data=data, user=city.users["bureau"], dry_run=True)

    # Then every senior is found unchanged: the export speaks the import's columns and words
    assert report.ok, [(error.row, error.column, str(error.message)) for error in report.errors]
    assert (report.unchanged, report.created, report.updated) == (4, 0, 0)


# --- Registering and editing ---


def registration(city, **overrides) -> dict:
    data = {
        "id_card_number": make_id_card_number(birth_date=dt.date(1944, 2, 3), serial=301),
        "name": "孙七",
        "community": city.c1.pk,
        "phone": "13900001111",
        "living_arrangement": "empty_nest",
        "self_care": "partial",
        "children_in_city": "on",
        "receives_dibao": "on",
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


def test_a_worker_registers_a_senior_in_their_community(client, city):
    # Given the worker of 保俶社区
    signed_in(client, city.users["worker"])

    # When they open the form, their community is the only one, preselected
    form = page_of(client.get(ADD))
    assert re.search(rf'<option value="{city.c1.pk}" selected>', form)
    assert city.c2.name not in form

    # And when they register 孙七
    response = client.post(ADD, registration(city))

    # Then 孙七 is registered by them, with the facts ticked, and they land on the senior's page
    senior = Senior.objects.get(name="孙七")
    assert response.status_code == 302 and response.url == reverse("registry-senior", args=[senior.pk])
    assert (senior.created_by, senior.community, senior.birth_date) == (
        city.users["worker"],
        city.c1,
        dt.date(1944, 2, 3),
    )
    assert senior.receives_dibao and senior.children_in_city and not senior.three_no
    assert (senior.living_arrangement, senior.self_care) == ("empty_nest", "partial")


@pytest.mark.parametrize(
    "overrides, field, code",
    [
        ({"id_card_number": "330106194402030000"}, "id_card_number", "invalid_id_card_number"),
        (
            {"id_card_number": make_id_card_number(birth_date=dt.date(1990, 1, 1), serial=5)},
            "id_card_number",
            "under_60",
        ),
        ({"phone": "12345"}, "phone", "invalid_phone"),
        ({"emergency_contact_phone": "999"}, "emergency_contact_phone", "invalid_phone"),
        ({"name": ""}, "name", "required"),
    ],
)
def test_a_refused_registration_shows_the_error_on_its_field(client, city, overrides, field, code):
    signed_in(client, city.users["worker"])

    response = client.post(ADD, registration(city, **overrides))

    assert response.status_code == 400
    assert list(response.context["form"].errors) == [field]
    assert f'id="id_{field}_error"' in page_of(response)
    assert not Senior.objects.filter(name="孙七").exists()


def test_a_duplicate_is_refused_on_the_id_card_number(client, city):
    signed_in(client, city.users["worker"])

    response = client.post(ADD, registration(city, id_card_number=city.seniors["张三"].id_card_number))

    assert response.status_code == 400
    assert list(response.context["form"].errors) == ["id_card_number"]


def test_a_worker_cannot_register_into_another_community(client, city):
    signed_in(client, city.users["worker"])

    response = client.post(ADD, registration(city, community=city.c3.pk))

    assert response.status_code == 400
    assert list(response.context["form"].errors) == ["community"]
    assert not Senior.objects.filter(name="孙七").exists()


def test_the_form_groups_every_yes_no_fact_under_a_heading(client, city):
    signed_in(client, city.users["worker"])
    page = page_of(client.get(ADD))

    assert sorted(name for _heading, names in FLAG_GROUPS for name in names) == sorted(FLAG_FACTS)
    for name in FLAG_FACTS:
        assert f'type="checkbox" name="{name}"' in page


def edit_data(senior, **changes) -> dict:
    data = {
        "name": senior.name,
        "community": senior.community_id,
        "phone": senior.phone,
        "address": senior.address,
        "emergency_contact_name": senior.emergency_contact_name,
        "emergency_contact_relation": senior.emergency_contact_relation,
        "emergency_contact_phone": senior.emergency_contact_phone,
        "living_arrangement": senior.living_arrangement,
        "self_care": senior.self_care,
        **{name: "on" for name in FLAG_FACTS if getattr(senior, name)},
    }
    data.update(changes)
    return {key: value for key, value in data.items() if value is not None}


def test_an_edit_is_saved_and_shown_in_the_history_with_the_id_masked(client, city):
    # Given the worker and 张三, who lives with family and is three-no
    worker = city.users["worker"]
    senior = city.seniors["张三"]
    signed_in(client, worker)

    # When they record a new phone, that 张三 now lives alone, and untick three-no
    response = client.post(
        reverse("registry-edit", args=[senior.pk]),
        edit_data(senior, phone="13700002222", living_arrangement="alone", three_no=None),
    )

    # Then the change is saved
    assert response.status_code == 302
    senior.refresh_from_db()
    assert (senior.phone, senior.living_arrangement, senior.three_no) == ("13700002222", "alone", False)

    # And the senior's page shows who changed what, old → new, in words, not codes
    page = page_of(client.get(reverse("registry-senior", args=[senior.pk])))
    history = page[page.index('id="history"') :]
    assert "陈丽" in history
    assert "13812345678" in history and "13700002222" in history
    assert escape(str(Senior.LivingArrangement.WITH_FAMILY.label)) in history
    assert escape(str(Senior.LivingArrangement.ALONE.label)) in history
    assert re.search(rf"<del>{t('Yes')}</del>[^<]*<span[^>]*>→ <ins>{t('No')}</ins>", history)
    assert t("Registered.") in history
    # And no ID-card number appears whole in the history
    assert senior.id_card_number not in history


def test_history_values_are_shown_as_people_read_them():
    with translation.override("zh-hans"):
        assert _shown_value("id_card_number", "33010619450301002X", {}) == "330106********002X"
        assert _shown_value("special_difficulty", True, {}) == "是"
        assert _shown_value("special_difficulty", False, {}) == "否"
        assert _shown_value("community", 7, {7: "保俶社区"}) == "保俶社区"
        assert _shown_value("phone", "", {}) == "—"
        assert _shown_value("status_date", dt.date(2026, 1, 2), {}) == "2026-01-02"


def test_an_edit_with_a_bad_phone_keeps_everything_and_marks_the_field(client, city):
    senior = city.seniors["张三"]
    signed_in(client, city.users["worker"])

    response = client.post(
        reverse("registry-edit", args=[senior.pk]), edit_data(senior, phone="abc", name="张三丰")
    )

    assert response.status_code == 400
    assert list(response.context["form"].errors) == ["phone"]
    senior.refresh_from_db()
    assert (senior.name, senior.phone) == ("张三", "13812345678")


def test_an_edit_that_changes_nothing_writes_no_history(client, city):
    senior = city.seniors["张三"]
    signed_in(client, city.users["worker"])
    before = senior.history.count()

    response = client.post(reverse("registry-edit", args=[senior.pk]), edit_data(senior), follow=True)

    assert t("Nothing was changed.") in page_of(response)
    assert senior.history.count() == before


# --- The senior's page ---


@dataclass
class WithVoucher:
    senior: Senior
    voucher: Voucher


def give_voucher_and_services(city) -> WithVoucher:
    """张三's voucher of this month, with 2 hours of cleaning and a voided meal on it."""
    now = timezone.now()
    issue_vouchers(period=month_of(now), now=now)
    senior = city.seniors["张三"]
    voucher = Voucher.objects.get(senior=senior, period=month_of(now))
    contract = make_priced_contract(area=[city.c1])
    staff = StaffMemberFactory(provider=contract.provider)
    serve_cleaning_and_a_voided_meal(token=voucher_token(voucher), staff=staff, now=now)
    return WithVoucher(senior=senior, voucher=voucher)


def test_the_senior_page_shows_facts_why_and_the_vouchers_panel(client, city):
    # Given 张三 with this month's voucher, a service and a voided one
    given = give_voucher_and_services(city)
    signed_in(client, city.users["worker"])

    # When the worker opens 张三's page
    response = client.get(reverse("registry-senior", args=[given.senior.pk]))
    page = page_of(response)

    # Then it shows the tier, and why: each matched rule in words
    assert response.status_code == 200
    assert "无偿" in page
    assert "三无/特困人员" in page
    assert "60岁以上常住老人" in page
    # And the whole ID-card number (a worker may see it) and the contacts
    assert given.senior.id_card_number in page
    assert 'href="tel:13812345678"' in page
    # And the vouchers panel: the month's voucher and both services, the meal marked voided
    assert given.voucher.period.strftime("%Y-%m") in page
    assert "¥300.00" in page and "¥220.00" in page  # face value, balance after ¥80 of cleaning
    assert "助洁" in page and "助餐" in page
    assert page.count("service-voided") == 1
    assert response["Cache-Control"].startswith("max-age=0")


def test_a_senior_without_a_determination_says_why_there_is_none(client, city):
    # Given a senior recorded without an evaluation (as before the first policy was set up)
    senior = SeniorFactory(community=city.c1, id_card_number=make_id_card_number(serial=88))
    signed_in(client, city.users["worker"])

    # When the worker opens their page, it says when seniors are evaluated
    page = page_of(client.get(reverse("registry-senior", args=[senior.pk])))

    assert not Determination.objects.filter(senior=senior).exists()
    assert (
        t(
            "No current determination. Seniors are evaluated when they are registered, when their facts "
            "change and at the end of every month; a senior who has moved out or died has none."
        )
        in page
    )


# --- Moved out or deceased ---


def test_marking_a_senior_deceased_asks_first_then_revokes_the_voucher(client, city):
    # Given 张三 with an active voucher this month
    given = give_voucher_and_services(city)
    signed_in(client, city.users["worker"])
    url = reverse("registry-status", args=[given.senior.pk])
    today = timezone.localdate()

    # When the worker chooses "deceased" and today's date
    asked = client.post(url, {"status": "deceased", "status_date": today.isoformat()})

    # Then they are asked to confirm, told that the voucher is revoked at once, and nothing changed
    assert asked.status_code == 200
    assert t("Their current voucher is revoked at once.") in page_of(asked)
    assert Voucher.objects.get(pk=given.voucher.pk).status == Voucher.Status.ACTIVE

    # When they confirm
    done = client.post(url, {"status": "deceased", "status_date": today.isoformat(), "confirmed": "on"})

    # Then the senior is deceased from today, the voucher revoked, and the history says so
    assert done.status_code == 302
    senior = Senior.objects.get(pk=given.senior.pk)
    assert (senior.status, senior.status_date) == (Senior.Status.DECEASED, today)
    assert Voucher.objects.get(pk=given.voucher.pk).status == Voucher.Status.REVOKED
    page = page_of(client.get(done.url))
    history = page[page.index('id="history"') :]
    assert escape(str(Senior.Status.DECEASED.label)) in history


def test_a_status_date_in_the_future_is_refused_on_the_date_field(client, city):
    signed_in(client, city.users["worker"])
    url = reverse("registry-status", args=[city.seniors["张三"].pk])
    tomorrow = timezone.localdate() + dt.timedelta(days=1)

    response = client.post(
        url, {"status": "moved_away", "status_date": tomorrow.isoformat(), "confirmed": "on"}
    )

    assert response.status_code == 400
    assert list(response.context["form"].errors) == ["status_date"]
    assert Senior.objects.get(pk=city.seniors["张三"].pk).status == Senior.Status.ACTIVE


# --- Officers read, and change nothing ---


def test_an_officer_reads_the_registry_but_has_no_edit_buttons_and_gets_403_on_the_forms(client, city):
    # Given the officer of 北山街道 and 张三, who lives there
    signed_in(client, city.users["officer"])
    senior = city.seniors["张三"]

    # When they open the list and the senior's page
    listing = page_of(client.get(LIST))
    page = page_of(client.get(reverse("registry-senior", args=[senior.pk])))

    # Then they see no button to register, import, edit or change the status
    assert ADD not in listing and reverse("registry-import") not in listing
    assert reverse("registry-edit", args=[senior.pk]) not in page
    assert reverse("registry-status", args=[senior.pk]) not in page
    # And the ID-card number masked only
    assert senior.id_card_number not in page and senior.masked_id_card_number in page

    # And the forms answer 403, and a forged post changes nothing
    assert client.get(ADD).status_code == 403
    assert client.get(reverse("registry-edit", args=[senior.pk])).status_code == 403
    assert (
        client.post(reverse("registry-edit", args=[senior.pk]), edit_data(senior, name="改名")).status_code
        == 403
    )
    status = client.post(
        reverse("registry-status", args=[senior.pk]),
        {"status": "deceased", "status_date": timezone.localdate().isoformat(), "confirmed": "on"},
    )
    assert status.status_code == 403
    assert client.get(reverse("registry-import")).status_code == 403
    senior.refresh_from_db()
    assert (senior.name, senior.status) == ("张三", Senior.Status.ACTIVE)


# --- Home ---


@pytest.mark.parametrize("user", ["worker", "officer", "bureau"])
def test_home_links_to_the_registry(client, city, user):
    signed_in(client, city.users[user])

    page = page_of(client.get(reverse("home")))

    assert f'class="link-card" href="{LIST}"' in page


def test_home_of_finance_has_no_registry(client, city):
    page = page_of(signed_in(client, city.users["finance"]).get(reverse("home")))
    assert f'href="{LIST}"' not in page


# --- Import ---

IMPORT = reverse("registry-import")
IMPORT_HEADERS = ["身份证号", "姓名", "社区编码", "联系电话"]


def registry_workbook(rows: list[dict]) -> bytes:
    """A workbook as a worker fills it: the import's Chinese headers, one row per senior."""
    workbook = Workbook()
    sheet = workbook.active
    sheet.title = "老年人"
    sheet.append(IMPORT_HEADERS)
    for row in rows:
        sheet.append([row.get(header) for header in IMPORT_HEADERS])
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def one_good_one_bad(community: Region, *, fixed: bool = False) -> bytes:
    """欧阳修 on row 2; 苏轼 on row 3, with a wrong check digit unless `fixed`."""
    good = make_id_card_number(birth_date=dt.date(1946, 8, 8), serial=401)
    second = make_id_card_number(birth_date=dt.date(1947, 1, 8), serial=402)
    wrong = second[:-1] + ("0" if second[-1] != "0" else "1")
    return registry_workbook(
        [
            {"身份证号": good, "姓名": "欧阳修", "社区编码": community.code},
            {"身份证号": second if fixed else wrong, "姓名": "苏轼", "社区编码": community.code},
        ]
    )


def upload(client, data: bytes, *, dry_run: bool, name: str = "seniors.xlsx"):
    file = SimpleUploadedFile(name, data, content_type="application/octet-stream")
    return client.post(IMPORT, {"workbook": file, **({"dry_run": "on"} if dry_run else {})})


def test_the_import_page_offers_the_template(client, city):
    # Given the worker on the import page
    signed_in(client, city.users["worker"])
    page = page_of(client.get(IMPORT))

    # Then it links the template, which downloads as the importer's workbook
    assert reverse("registry-import-template") in page
    response = client.get(reverse("registry-import-template"))
    assert response.status_code == 200
    book = load_workbook(io.BytesIO(response.content))
    assert "老年人" in book.sheetnames
    # And its example rows are in the worker's own community, so a filled copy imports as it is
    headers = [cell.value for cell in book["老年人"][1]]
    assert book["老年人"].cell(row=2, column=headers.index("社区编码") + 1).value == city.c1.code


def test_an_import_with_a_bad_row_lists_every_error_and_imports_nothing(client, city):
    # Given the worker and a workbook whose row 3 has a wrong check digit
    signed_in(client, city.users["worker"])

    # When they upload it to import
    posted = upload(client, one_good_one_bad(city.c1), dry_run=False)

    # Then they land on the job's page, which lists the error with its row and column
    assert posted.status_code == 302
    page = page_of(client.get(posted.url))
    errors = page[page.index('class="import-errors"') :]
    assert re.search(r"Row 3|第\s*3\s*行|3", errors)
    assert "身份证号" in errors
    # And nothing was imported, and the marked-up workbook downloads
    assert not Senior.objects.filter(name__in=["欧阳修", "苏轼"]).exists()
    job_id = int(posted.url.rstrip("/").split("/")[-1])
    annotated = client.get(reverse("registry-import-annotated", args=[job_id]))
    assert annotated.status_code == 200
    assert load_workbook(io.BytesIO(annotated.content)).sheetnames


def test_a_checked_workbook_changes_nothing_and_an_imported_one_shows_its_counts(client, city):
    signed_in(client, city.users["worker"])

    # When the worker checks a correct workbook (dry run)
    checked = client.get(upload(client, one_good_one_bad(city.c1, fixed=True), dry_run=True).url)

    # Then the page says what importing would do, and nothing is registered yet
    assert 'id="count-created">2<' in page_of(checked)
    assert not Senior.objects.filter(name="欧阳修").exists()

    # When they import it with one tap on the checked job's page (no second upload)
    job_id = int(checked.request["PATH_INFO"].rstrip("/").split("/")[-1])
    confirmed = client.post(reverse("registry-import-confirm", args=[job_id]))
    imported = client.get(confirmed.url)

    # Then both seniors are registered in their community, and the page counts them
    assert 'id="count-created">2<' in page_of(imported)
    assert set(Senior.objects.filter(community=city.c1).values_list("name", flat=True)) >= {"欧阳修", "苏轼"}


def test_another_workers_import_is_not_found(client, city):
    # Given an import by the worker of 古荡社区
    signed_in(client, city.users["worker3"])
    posted = upload(client, one_good_one_bad(city.c3), dry_run=True)

    # When the worker of 保俶社区 opens it, or its marked-up workbook
    signed_in(client, city.users["worker"])
    job_id = int(posted.url.rstrip("/").split("/")[-1])

    # Then both are a 404
    assert client.get(posted.url).status_code == 404
    assert client.get(reverse("registry-import-annotated", args=[job_id])).status_code == 404


def test_a_running_import_shows_a_progress_bar_that_refreshes_itself(client, city):
    # Given a queued import job (a large file waiting for a worker)
    worker = city.users["worker"]
    job = ImportJob.objects.create(created_by=worker, filename="big.xlsx", workbook=b"", total_rows=5000)
    signed_in(client, worker)

    # When the worker opens its page
    page = page_of(client.get(reverse("registry-import-job", args=[job.pk])))

    # Then it shows a progress bar and reloads itself, without any script
    assert "<progress" in page
    assert '<meta http-equiv="refresh" content="2">' in page
    assert "<script" not in page
