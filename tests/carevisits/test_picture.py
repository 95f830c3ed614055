"""The monthly picture (DESIGN.md §4.4; issue 12): figures per region computed in SQL, checked by
hand on a generated community."""

import datetime as dt

import pytest

from carevisits import selectors, services
from config.months import SHANGHAI
from tests.carevisits.conftest import MONTH


def at(day: int, month: dt.date = MONTH) -> dt.datetime:
    return dt.datetime(month.year, month.month, day, 9, 30, tzinfo=SHANGHAI)


def visit(world, senior, mode="home", day=3, month=MONTH, **kwargs):
    return services.record_visit(
        senior=senior,
        by=world.worker1 if senior.community_id == world.c1.pk else world.bureau,
        mode=mode,
        visited_at=at(day, month),
        **kwargs,
    )


def row_of(picture, region):
    return next(row for row in picture.rows if row.region_id == region.pk)


def test_visit_rate_of_a_community_checked_by_hand(world):
    # Given in 保俶社区: two A seniors (home visits only count), two B and one C (any mode counts),
    # and one senior with no class
    a1, a2 = world.senior("A"), world.senior("A")
    b1, _b2 = world.senior("B"), world.senior("B")
    c1 = world.senior("C")
    world.senior("")
    # When this month a1 gets a home visit, a2 only a phone call (does not count for A),
    # b1 a phone call, b2 nothing, and c1 two video calls (counted once: one is due)
    visit(world, a1, "home")
    visit(world, a2, "phone")
    visit(world, b1, "phone")
    visit(world, c1, "video", day=4)
    visit(world, c1, "video", day=5)
    picture = selectors.monthly_picture(user=world.bureau, month=MONTH, region=world.subdistrict)
    row = row_of(picture, world.c1)
    # Then: 5 classed seniors, 5 visits due, 3 done (a1, b1, c1), 60 %
    assert (row.seniors, row.class_a, row.class_b, row.class_c) == (5, 2, 2, 1)
    assert (row.due, row.done, row.met, row.missed, row.declined) == (5, 3, 3, 2, 0)
    assert row.rate == pytest.approx(0.6)
    assert row.rate_percent == "60.0%"
    # a2 has had no home visit this month (A: every month); b1, b2 and c1 none in 6 and 12 months
    assert row.home_overdue == 4
    # The subdistrict's total is its communities' sum; the other district is not in it
    assert picture.total.seniors == 5 and [r.region_id for r in picture.rows] == [world.c1.pk]


def test_a_declined_senior_is_not_missed_but_shown_as_declined(world):
    a1, b1 = world.senior("A"), world.senior("B")
    services.record_visit(
        senior=a1,
        by=world.worker1,
        mode="home",
        outcome="declined",
        visited_at=at(2),
        notes="本人拒绝，子女每天照看",
    )
    row = row_of(selectors.monthly_picture(user=world.worker1, month=MONTH), world.c1)
    assert (row.seniors, row.declined, row.due, row.done, row.missed) == (2, 1, 1, 0, 1)
    # the refusal is a record of this month: next month a1 is due again
    nxt = row_of(selectors.monthly_picture(user=world.worker1, month=dt.date(2026, 12, 1)), world.c1)
    assert (nxt.declined, nxt.due) == (0, 2)
    _ = b1


def test_a_home_visit_within_the_interval_keeps_b_and_c_in_time(world):
    b1, c1 = world.senior("B"), world.senior("C")
    # A home visit 5 months before this month keeps B (6 months) in time; 7 months does not
    visit(world, b1, "home", month=dt.date(2026, 6, 1))
    visit(world, c1, "home", month=dt.date(2026, 4, 1))
    row = row_of(
        selectors.monthly_picture(user=world.bureau, month=MONTH, region=world.subdistrict), world.c1
    )
    assert row.home_overdue == 0
    row = row_of(
        selectors.monthly_picture(user=world.bureau, month=dt.date(2027, 1, 1), region=world.subdistrict),
        world.c1,
    )
    assert row.home_overdue == 1  # b1: June is 7 months before January; c1 still within 12


def test_a_temporary_festival_rule_raises_the_count_for_its_dates_and_region_only(world):
    # Given a festival rule: class C in 北山街道 needs 2 visits in months touching 20 Jan – 5 Feb 2027
    services.add_temporary_requirement(
        care_visit_class="C",
        visits_per_month=2,
        effective_from=dt.date(2027, 1, 20),
        effective_until=dt.date(2027, 2, 5),
        region=world.subdistrict,
        label="春节走访",
        by=world.bureau,
    )
    inside, elsewhere = world.senior("C"), world.senior("C", community=world.c3)
    b_inside = world.senior("B")

    def due(month, region, senior_region):
        picture = selectors.monthly_picture(user=world.bureau, month=month, region=region)
        return row_of(picture, senior_region).due

    # Then 北山街道's C senior owes 2 in January and February, 1 in December and March
    assert due(dt.date(2027, 1, 1), world.subdistrict, world.c1) == 2 + 1  # + the B senior's one
    assert due(dt.date(2027, 2, 1), world.subdistrict, world.c1) == 3
    assert due(dt.date(2026, 12, 1), world.subdistrict, world.c1) == 2
    assert due(dt.date(2027, 3, 1), world.subdistrict, world.c1) == 2
    # and the other district's C senior owes 1 throughout
    assert due(dt.date(2027, 1, 1), world.other_district.children.get(), world.c3) == 1
    _ = (inside, elsewhere, b_inside)


def test_the_picture_rolls_up_districts_for_the_city(world):
    world.senior("A"), world.senior("A", community=world.c2), world.senior("C", community=world.c3)
    picture = selectors.monthly_picture(user=world.bureau, month=MONTH)
    assert picture.level == "district"
    assert {row.code: row.seniors for row in picture.rows} == {"330106": 2, "330102": 1}
    assert picture.total.due == 3


def test_the_picture_is_one_statement_whatever_the_number_of_seniors(world):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def statements() -> list[str]:
        with CaptureQueriesContext(connection) as context:
            selectors.monthly_picture(user=world.bureau, month=MONTH)
        return [query["sql"] for query in context.captured_queries]

    world.senior("A")
    selectors.monthly_picture(user=world.bureau, month=MONTH)  # the user's permissions, read once
    few = statements()
    for _ in range(8):
        world.senior("A", community=world.c2)
    many = statements()
    # Then: the same statements for 1 or 9 seniors; two small reads of the requirements, one picture
    assert len(many) == len(few) == 3
    assert sum("carevisits_visitrecord" in sql for sql in many) == 1
