"""Registering seniors: the ID-card number is validated and is the one key per person."""

import datetime as dt

import pytest
from django.db import IntegrityError, connection, transaction
from hypothesis import given, settings
from hypothesis import strategies as st
from stdnum.cn import ric

from eligibility.errors import EligibilityError
from eligibility.models import Region, Senior
from eligibility.services import normalise_id_card_number, register_senior
from tests.factories import SeniorFactory, make_community, make_id_card_number


def test_birth_date_and_sex_come_from_the_id_card_number(db):
    number = make_id_card_number(birth_date=dt.date(1942, 7, 9), sex="M")
    senior = register_senior(id_card_number=number.lower(), name=" 刘德明 ", community=make_community())
    assert (senior.birth_date, senior.sex, senior.name) == (dt.date(1942, 7, 9), "M", "刘德明")
    assert senior.id_card_number == number.upper()


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "330106194207090",
        "33010619420709001",
        "330106194213090014",
        "99999919420709001X",
        "3301061942070900AB",
    ],
)
def test_invalid_id_card_numbers_are_refused_without_echoing_them(db, bad):
    with pytest.raises(EligibilityError) as refusal:
        register_senior(id_card_number=bad, name="张三", community=make_community())
    assert refusal.value.code == "invalid_id_card_number"
    assert not bad or bad not in refusal.value.detail
    assert Senior.objects.count() == 0


def test_a_wrong_check_digit_is_refused(db):
    good = make_id_card_number()
    wrong = good[:-1] + ("0" if good[-1] != "0" else "1")
    with pytest.raises(EligibilityError, match="invalid_id_card_number"):
        normalise_id_card_number(wrong)


def test_one_record_per_person(db):
    community = make_community()
    number = make_id_card_number()
    register_senior(id_card_number=number, name="张三", community=community)
    with pytest.raises(EligibilityError) as refusal:
        register_senior(id_card_number=number, name="张三", community=community)
    assert refusal.value.code == "duplicate_senior"


def test_seniors_live_in_communities_not_districts(db):
    district = make_community().parent.parent
    assert district.level == Region.Level.DISTRICT
    with pytest.raises(EligibilityError, match="invalid_input"):
        register_senior(id_card_number=make_id_card_number(), name="张三", community=district)


def test_the_database_refuses_a_duplicate_or_short_id_card_number(db):
    senior = SeniorFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        SeniorFactory(id_card_number=senior.id_card_number)
    with pytest.raises(IntegrityError), transaction.atomic():
        SeniorFactory(id_card_number="12345")


@pytest.mark.postgres
@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite has no regular expressions of its own")
def test_postgresql_refuses_a_malformed_id_card_number_of_the_right_length(db):
    with pytest.raises(IntegrityError), transaction.atomic():
        SeniorFactory(id_card_number="33010619450301ABCD")


@settings(max_examples=200, deadline=None)
@given(
    birth=st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(1966, 12, 31)),
    sequence=st.integers(min_value=0, max_value=999),
)
def test_every_number_with_a_right_check_digit_is_accepted_and_no_other(birth, sequence):
    body = f"330106{birth:%Y%m%d}{sequence:03d}"
    right = ric.calc_check_digit(body + "0")
    assert normalise_id_card_number(body + right) == body + right
    for wrong in "0123456789X":
        if wrong != right:
            with pytest.raises(EligibilityError):
                normalise_id_card_number(body + wrong)
