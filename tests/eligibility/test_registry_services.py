"""The registry's writers: registration rules, edits with history, status changes, scopes."""

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stdnum.cn import ric

from eligibility.errors import EligibilityError
from eligibility.models import Region, RegionScope, Senior
from eligibility.selectors import visible_to
from eligibility.services import (
    assign_region_scope,
    build_senior,
    change_senior_status,
    normalise_id_card_number,
    normalise_phone,
    register_senior,
    update_senior,
)
from tests.e2e.conftest import make_user
from tests.factories import RegionFactory, make_community, make_id_card_number

TODAY = dt.date(2026, 12, 1)


def register(community=None, **values):
    values.setdefault("name", "张三")
    return register_senior(
        id_card_number=values.pop("id_card_number", None) or make_id_card_number(),
        community=community or make_community(),
        **values,
    )


def test_a_15_digit_card_of_before_1999_is_stored_as_its_18_digit_number(db):
    # Given the old card of someone born on 1945-03-01 (6 region digits, YYMMDD, 3 sequence)
    legacy = "330106450301123"

    # When they are registered with it
    senior = register(id_card_number=legacy)

    # Then the number is the 18-digit one, with the century and a check digit, and dates follow
    body = "33010619450301123"
    assert senior.id_card_number == body + ric.calc_check_digit(body + "0")
    assert (senior.birth_date, senior.sex) == (dt.date(1945, 3, 1), "M")


def test_full_width_digits_and_spaces_are_normalised(db):
    number = make_id_card_number()
    full_width = " ".join(chr(ord(c) + 0xFEE0) if c.isdigit() else c for c in number[:9]) + number[9:]
    assert normalise_id_card_number(full_width) == number
    assert normalise_phone("１３８ ０５７１ ２３４５") == "13805712345"
    assert normalise_phone("(0571) 8706-1234") == normalise_phone("057187061234") == "0571-87061234"
    assert normalise_phone("+86 010 6512 3456") == "010-65123456"


@pytest.mark.parametrize("phone", ["12345", "23805712345", "1380571234", "phone"])
def test_a_phone_number_that_cannot_be_dialled_is_refused_at_its_field(db, phone):
    with pytest.raises(EligibilityError) as refusal:
        register(phone=phone)
    assert (refusal.value.code, refusal.value.field) == ("invalid_phone", "phone")
    assert Senior.objects.count() == 0


def test_a_person_under_60_is_refused_with_their_age(db):
    young = make_id_card_number(birth_date=dt.date(1970, 6, 1))
    with pytest.raises(EligibilityError) as refusal:
        register(id_card_number=young)
    assert refusal.value.code == "under_60"
    assert "56" in refusal.value.detail
    assert Senior.objects.count() == 0


@settings(max_examples=100, deadline=None)
@given(birth=st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(1999, 12, 31)))
def test_a_legacy_number_and_its_18_digit_form_are_one_person(birth):
    legacy = f"330106{birth:%y%m%d}007"
    converted = normalise_id_card_number(legacy)
    assert converted[6:14] == f"{birth:%Y%m%d}" and normalise_id_card_number(converted) == converted


def test_an_edit_records_who_changed_which_fields_from_what_to_what(db):
    # Given a registered senior
    worker = make_user("worker-a", "worker")
    senior = register(created_by=worker, phone="13805712345")

    # When the worker records a new phone and that she now lives alone
    changed = update_senior(senior=senior, by=worker, phone="13905713333", living_arrangement="alone")

    # Then only those fields changed, and the history says so, attributed to the worker
    assert sorted(changed) == ["living_arrangement", "phone"]
    latest, first = senior.history.order_by("-history_id")[:2]
    assert (first.history_type, latest.history_type) == ("+", "~")
    assert latest.history_user == worker
    diff = {c.field: (c.old, c.new) for c in latest.diff_against(first).changes}
    assert diff == {"phone": ("13805712345", "13905713333"), "living_arrangement": ("with_family", "alone")}


def test_an_edit_that_changes_nothing_writes_no_history(db):
    senior = register(phone="13805712345")
    assert update_senior(senior=senior, by=None, phone="138 0571 2345") == []
    assert senior.history.count() == 1


def test_a_renamed_senior_is_found_by_the_new_initials(db):
    senior = register(name="张三")
    update_senior(senior=senior, by=None, name="李四")
    senior.refresh_from_db()
    assert senior.name_initials == " ls"


def test_the_id_number_and_status_cannot_be_edited_as_facts(db):
    senior = register()
    for field in ("id_card_number", "status", "birth_date"):
        with pytest.raises(EligibilityError, match="invalid_input"):
            update_senior(senior=senior, by=None, **{field: "x"})


def test_a_status_change_needs_a_date_not_in_the_future(db):
    senior = register()
    with pytest.raises(EligibilityError) as refusal:
        change_senior_status(
            senior=senior, status="deceased", on=TODAY + dt.timedelta(days=1), by=None, today=TODAY
        )
    assert refusal.value.field == "status_date"
    change_senior_status(senior=senior, status="deceased", on=TODAY, by=None, today=TODAY)
    senior.refresh_from_db()
    assert (senior.status, senior.status_date) == ("deceased", TODAY)
    with pytest.raises(EligibilityError, match="invalid_input"):
        change_senior_status(senior=senior, status="deceased", on=TODAY, by=None, today=TODAY)


def test_a_worker_works_in_one_community_and_an_officer_above_it(db):
    community = make_community()
    worker, officer = make_user("w1", "worker"), make_user("o1", "officer")
    with pytest.raises(EligibilityError):
        assign_region_scope(user=worker, region=community.parent, by=None)
    with pytest.raises(EligibilityError):
        assign_region_scope(user=officer, region=community, by=None)
    assign_region_scope(user=worker, region=community, by=None)
    assign_region_scope(user=officer, region=community.parent.parent, by=None)
    assert RegionScope.objects.count() == 2


def test_each_role_sees_the_seniors_of_its_scope(db):
    # Given two communities of one subdistrict and one of another district
    mine = make_community("A")
    sibling = RegionFactory(code="AC2", name="宝石社区", level="community", parent=mine.parent)
    elsewhere = make_community("B")
    seniors = {region.code: register(community=region) for region in (mine, sibling, elsewhere)}
    worker, officer, bureau = make_user("w", "worker"), make_user("o", "officer"), make_user("b", "bureau")
    provider, finance = make_user("p", "provider"), make_user("f", "finance")
    assign_region_scope(user=worker, region=mine, by=None)
    assign_region_scope(user=officer, region=mine.parent, by=None)
    unscoped_worker = make_user("w2", "worker")

    def seen(user):
        return set(visible_to(user).values_list("community__code", flat=True))

    # Then the worker sees their community, the officer the subdistrict, the bureau the city
    assert seen(worker) == {mine.code}
    assert seen(officer) == {mine.code, sibling.code}
    assert seen(bureau) == set(seniors)
    # And a worker without a community, a provider and finance see nobody in the registry
    assert seen(unscoped_worker) == seen(provider) == seen(finance) == set()


@settings(max_examples=200, deadline=None)
@given(
    birth=st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(1966, 11, 30)),
    sequence=st.integers(min_value=0, max_value=999),
    position=st.integers(min_value=0, max_value=17),
    replacement=st.sampled_from("0123456789X"),
)
def test_gb_11643_every_valid_number_registers_its_birth_and_sex_and_any_typo_is_refused(
    birth, sequence, position, replacement
):
    # Given a valid number of someone born on `birth`
    body = f"330106{birth:%Y%m%d}{sequence:03d}"
    number = body + ric.calc_check_digit(body + "0")

    # Then a registration of it is accepted and takes birth date and sex from it (odd: a man)
    community = Region(code="T", name="社区", level=Region.Level.COMMUNITY, path="T/")
    senior = build_senior(
        id_card_number=number, name="张三", community=community, status_date=TODAY, today=TODAY
    )
    assert (senior.id_card_number, senior.birth_date) == (number, birth)
    assert senior.sex == ("M" if sequence % 2 else "F")

    # And any one character typed wrong is refused (the check digit catches every substitution)
    typo = number[:position] + replacement + number[position + 1 :]
    if typo != number and (position == 17 or replacement != "X"):
        with pytest.raises(EligibilityError):
            normalise_id_card_number(typo)
