"""Evaluating seniors against the default policy (DESIGN.md §4.1, §4.4)."""

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from eligibility.errors import EligibilityError
from eligibility.models import Determination, Senior
from eligibility.services import ensure_default_policy, evaluate_eligibility, register_senior
from tests.factories import SeniorFactory, make_community, make_id_card_number

AS_OF = dt.date(2026, 11, 1)


@pytest.fixture
def register(db):
    ensure_default_policy()
    community = make_community()

    def register_one(born=dt.date(1950, 1, 1), **facts):
        return register_senior(
            id_card_number=make_id_card_number(birth_date=born), name="测试老人", community=community, **facts
        )

    return register_one


def current(senior) -> Determination:
    return Determination.objects.get(senior=senior, is_current=True)


@pytest.mark.parametrize(
    ("born", "facts", "tier", "rule"),
    [
        (dt.date(1950, 1, 1), {}, "paid", "paid_resident"),
        (dt.date(1950, 1, 1), {"three_no": True}, "subsidized", "subsidized_three_no"),
        (dt.date(1950, 1, 1), {"five_old": True}, "subsidized", "subsidized_five_old"),
        (dt.date(1950, 1, 1), {"special_care_recipient": True}, "subsidized", "subsidized_special_care"),
        (dt.date(1926, 10, 31), {}, "subsidized", "subsidized_centenarian"),
        (
            dt.date(1960, 1, 1),  # 66: too young for the 70+ subsidized rule
            {
                "self_care": "disabled",
                "living_arrangement": "empty_nest",
                "children_in_city": False,
                "receives_dibao": True,
            },
            "low_fee",
            "low_fee_empty_nest_dependent",
        ),
        (
            dt.date(1950, 1, 1),
            {
                "self_care": "disabled",
                "living_arrangement": "empty_nest",
                "children_in_city": False,
                "receives_dibao": True,
            },
            "subsidized",
            "subsidized_70_dependent_no_children_dibao",
        ),
        (
            dt.date(1945, 1, 1),
            {"living_arrangement": "empty_nest", "children_in_city": False},
            "low_fee",
            "low_fee_80_empty_nest_no_assistance",
        ),
        (dt.date(1960, 1, 1), {"hardship_assessed": True}, "low_fee", "low_fee_hardship"),
    ],
)
def test_each_rule_grants_its_tier_and_is_recorded(register, born, facts, tier, rule):
    senior = register(born=born, **facts)
    evaluate_eligibility(as_of=AS_OF)
    determination = current(senior)
    assert determination.tier.code == tier
    assert rule in determination.matched_rules


def test_the_most_favourable_tier_wins_and_every_matched_rule_is_kept(register):
    senior = register(
        born=dt.date(1945, 1, 1), living_arrangement="empty_nest", children_in_city=False, three_no=True
    )
    evaluate_eligibility(as_of=AS_OF)
    determination = current(senior)
    assert determination.tier.code == "subsidized"
    assert set(determination.matched_rules) >= {
        "subsidized_three_no",
        "low_fee_80_empty_nest_no_assistance",
        "paid_resident",
    }


def test_a_birthday_moves_a_senior_into_a_tier_on_the_day(register):
    senior = register(born=dt.date(1946, 11, 2), living_arrangement="empty_nest", children_in_city=False)
    evaluate_eligibility(as_of=dt.date(2026, 11, 1))
    assert current(senior).tier.code == "paid"
    evaluate_eligibility(as_of=dt.date(2026, 11, 2))
    assert current(senior).tier.code == "low_fee"


@pytest.mark.parametrize(
    ("born", "facts", "visit_class"),
    [
        (dt.date(1950, 1, 1), {"self_care": "disabled"}, "A"),
        (dt.date(1944, 1, 1), {"living_arrangement": "alone"}, "A"),
        (dt.date(1950, 1, 1), {"receives_dibao": True, "living_arrangement": "left_behind"}, "A"),
        (dt.date(1950, 1, 1), {"family_planning_special": True, "living_arrangement": "alone"}, "A"),
        (dt.date(1955, 1, 1), {"couple_one_disabled": True}, "B"),
        (dt.date(1955, 1, 1), {"severely_disabled": True, "living_arrangement": "alone"}, "B"),
        (dt.date(1955, 1, 1), {"cares_for_disabled_child": True}, "B"),
        (dt.date(1955, 1, 1), {"special_difficulty": True}, "C"),
        (dt.date(1955, 1, 1), {}, ""),
    ],
)
def test_care_visit_classes(register, born, facts, visit_class):
    senior = register(born=born, **facts)
    evaluate_eligibility(as_of=AS_OF)
    assert current(senior).care_visit_class == visit_class


def test_unchanged_outcomes_write_nothing_and_changes_write_one_row(register):
    # Registration evaluates the senior at once; evaluating again with the same facts writes nothing
    senior = register()
    assert current(senior).tier.code == "paid"
    first = evaluate_eligibility(as_of=AS_OF)
    again = evaluate_eligibility(as_of=AS_OF)
    assert (first.changed, again.changed) == (0, 0)
    Senior.objects.filter(pk=senior.pk).update(three_no=True)
    changed = evaluate_eligibility(as_of=AS_OF)
    assert changed.changed == 1
    rows = Determination.objects.filter(senior=senior).order_by("id")
    assert [(row.tier.code, row.is_current) for row in rows] == [("paid", False), ("subsidized", True)]


def test_seniors_who_move_away_or_are_under_60_lose_their_determination(register):
    moved = register()
    # Registration refuses the under-60s; one who slipped in (an old record) is still not evaluated.
    young = SeniorFactory(birth_date=dt.date(1967, 1, 1), community=moved.community)
    evaluate_eligibility(as_of=AS_OF)
    assert not Determination.objects.filter(senior=young).exists()
    Senior.objects.filter(pk=moved.pk).update(status=Senior.Status.MOVED_AWAY)
    result = evaluate_eligibility(as_of=AS_OF)
    assert result.retired == 1
    assert not Determination.objects.filter(senior=moved, is_current=True).exists()


def test_evaluation_is_set_based(register, django_assert_max_num_queries):
    for i in range(30):
        register(
            born=dt.date(1930 + i, 1, 1),
            three_no=bool(i % 3),
            living_arrangement="empty_nest" if i % 2 else "with_family",
        )
    # A fixed number of queries whatever the number of seniors: one per rule, not one per senior.
    with django_assert_max_num_queries(30):
        evaluate_eligibility(as_of=AS_OF)


def test_no_policy_in_force_is_refused(db):
    # The default policy (loaded by a migration) is in force from 2025-01-01
    with pytest.raises(EligibilityError) as refusal:
        evaluate_eligibility(as_of=dt.date(2024, 12, 31))
    assert refusal.value.code == "no_policy"


def test_the_default_policy_is_created_once(db):
    assert ensure_default_policy().pk == ensure_default_policy().pk
    tiers = {tier.code: tier for tier in ensure_default_policy().tiers.all()}
    assert {
        code: (str(t.government_share_rate), str(t.monthly_face_value.amount)) for code, t in tiers.items()
    } == {
        "subsidized": ("1.0000", "300.00"),
        "low_fee": ("0.7000", "200.00"),
        "paid": ("0.0000", "0.00"),
    }


def test_evaluating_one_senior_reads_only_that_senior(register, django_assert_max_num_queries):
    # Given a registry of many seniors
    seniors = [register(born=dt.date(1930 + i, 1, 1), three_no=bool(i % 2)) for i in range(20)]
    one = seniors[7]

    # When one senior is evaluated (as an edit does)
    with CaptureQueriesContext(connection) as queries, django_assert_max_num_queries(30):
        evaluate_eligibility(as_of=AS_OF, senior_ids=[one.pk])

    # Then no query reads the determinations of a range of other seniors
    determination_reads = [q["sql"] for q in queries if "eligibility_determination" in q["sql"]]
    assert determination_reads and not any(">=" in sql for sql in determination_reads)
