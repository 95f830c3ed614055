"""Pairing and recording (carevisits.services): who may, what is refused with which code, and what
the database refuses whoever writes."""

import datetime as dt

import pytest
from django.db import IntegrityError, transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from carevisits import selectors, services
from carevisits.errors import CareVisitError
from carevisits.models import Pairing, VisitRecord
from config.months import SHANGHAI
from eligibility.models import Region
from tests.carevisits.conftest import MONTH, NOW
from tests.factories import RegionFactory


def at(day: int, hour: int = 10) -> dt.datetime:
    return dt.datetime(2026, 11, day, hour, tzinfo=SHANGHAI)


def test_a_new_contact_person_ends_the_old_pairing_and_keeps_the_history(world):
    senior = world.senior("A")
    first = services.pair_contact(senior=senior, by=world.worker1, visitor=world.worker1)
    second = services.pair_contact(
        senior=senior, by=world.worker1, volunteer_name="林志华", volunteer_phone="13857100001"
    )
    first.refresh_from_db()
    assert first.ended_at is not None and first.ended_by == world.worker1
    assert selectors.current_pairing(senior=senior) == second
    assert second.volunteer.name == "林志华" and second.volunteer.community == world.c1
    assert [p.pk for p in selectors.pairing_history(senior=senior)] == [second.pk, first.pk]


def test_pairing_the_same_contact_person_again_is_refused(world):
    senior = world.senior("B")
    services.pair_contact(senior=senior, by=world.worker1, visitor=world.worker1)
    with pytest.raises(CareVisitError) as refused:
        services.pair_contact(senior=senior, by=world.worker1, visitor=world.worker1)
    assert refused.value.code == "already_paired"


def test_only_a_worker_of_the_seniors_community_can_be_the_contact_person(world):
    senior = world.senior("A")
    with pytest.raises(CareVisitError) as refused:
        services.pair_contact(senior=senior, by=world.worker1, visitor=world.worker2)
    assert refused.value.code == "not_a_worker"
    assert "宝石社区" not in refused.value.detail and "保俶社区" in refused.value.detail


def test_the_database_keeps_one_current_pairing_and_one_contact_person(world):
    senior = world.senior("A")
    services.pair_contact(senior=senior, by=world.worker1, visitor=world.worker1)
    with pytest.raises(IntegrityError), transaction.atomic():
        Pairing.objects.create(
            senior=senior, visitor=world.worker1, starts_on=dt.date(2026, 11, 1), assigned_by=world.worker1
        )
    with pytest.raises(IntegrityError), transaction.atomic():
        Pairing.objects.create(
            senior=senior, starts_on=dt.date(2026, 11, 1), assigned_by=world.worker1, ended_at=NOW
        )


@pytest.mark.parametrize(
    ("who", "code"),
    [("worker2", "not_found"), ("worker3", "not_found"), ("officer", "not_permitted")],
)
def test_a_visit_is_recorded_only_by_a_worker_of_the_community_or_the_bureau(world, who, code):
    senior = world.senior("A")
    with pytest.raises(CareVisitError) as refused:
        services.record_visit(senior=senior, by=getattr(world, who), mode="home", visited_at=at(3))
    assert refused.value.code == code
    services.record_visit(senior=senior, by=world.worker1, mode="home", visited_at=at(3))
    services.record_visit(senior=senior, by=world.bureau, mode="phone", visited_at=at(4))
    assert VisitRecord.objects.filter(senior=senior).count() == 2


def test_a_senior_without_a_class_has_no_visits(world):
    senior = world.senior("")
    with pytest.raises(CareVisitError) as refused:
        services.record_visit(senior=senior, by=world.worker1, mode="home", visited_at=at(3))
    assert refused.value.code == "not_classed"


@pytest.mark.parametrize(
    ("values", "code", "field"),
    [
        ({"outcome": "declined", "notes": " "}, "invalid_input", "notes"),
        ({"urgent": True}, "invalid_input", "referral"),
        ({"follow_up_on": dt.date(2026, 11, 2)}, "invalid_input", "follow_up_on"),
        ({"mode": "letter"}, "invalid_input", "mode"),
        ({"referral": "mayor"}, "invalid_input", "referral"),
        ({"visited_at": dt.datetime(2026, 11, 16, 12, 0, tzinfo=SHANGHAI)}, "visit_in_future", "visited_at"),
    ],
)
def test_a_bad_visit_is_refused_on_its_field_and_nothing_is_written(world, values, code, field):
    senior = world.senior("A")
    data = {"mode": "home", "visited_at": at(3), **values}
    with pytest.raises(CareVisitError) as refused:
        services.record_visit(senior=senior, by=world.worker1, **data)
    assert (refused.value.code, refused.value.field) == (code, field)
    assert not VisitRecord.objects.exists()


def test_the_database_refuses_a_refusal_without_a_note_and_an_urgent_finding_without_action(world):
    senior = world.senior("A")
    base = {
        "senior": senior,
        "mode": "home",
        "visited_at": at(3),
        "visited_on": dt.date(2026, 11, 3),
        "recorded_by": world.worker1,
    }
    with pytest.raises(IntegrityError), transaction.atomic():
        VisitRecord.objects.create(outcome="declined", **base)
    with pytest.raises(IntegrityError), transaction.atomic():
        VisitRecord.objects.create(urgent=True, **base)


def test_an_urgent_finding_is_closed_once_by_who_and_when(world):
    senior = world.senior("A")
    record = services.record_visit(
        senior=senior,
        by=world.worker1,
        mode="home",
        visited_at=at(3),
        urgent=True,
        referral="medical",
        safety_hazard=True,
    )
    assert selectors.monthly_picture(user=world.worker1, month=MONTH).total.open_urgent == 1
    with pytest.raises(CareVisitError) as refused:
        services.close_urgent_finding(record=record, by=world.officer)
    assert refused.value.code == "not_permitted"
    services.close_urgent_finding(record=record, by=world.worker1)
    with pytest.raises(CareVisitError) as again:
        services.close_urgent_finding(record=record, by=world.worker1)
    assert again.value.code == "already_closed"
    assert selectors.monthly_picture(user=world.worker1, month=MONTH).total.open_urgent == 0


def test_temporary_rules_are_the_bureaus_of_the_whole_city(world):
    with pytest.raises(CareVisitError) as refused:
        services.add_temporary_requirement(
            care_visit_class="A",
            visits_per_month=2,
            effective_from=dt.date(2027, 1, 1),
            effective_until=dt.date(2027, 1, 31),
            by=world.worker1,
        )
    assert refused.value.code == "not_permitted"


def test_a_new_standing_rule_ends_the_old_one_the_day_before(world):
    new = services.set_standing_requirement(
        care_visit_class="C",
        visits_per_month=2,
        modes=["home", "phone"],
        home_interval_months=6,
        effective_from=dt.date(2027, 1, 1),
        by=world.bureau,
    )
    assert selectors.standing_rules(on=dt.date(2026, 12, 31))["C"].home_interval_months == 12
    assert selectors.standing_rules(on=dt.date(2027, 1, 1))["C"] == new
    with pytest.raises(CareVisitError) as refused:
        services.set_standing_requirement(
            care_visit_class="C",
            visits_per_month=1,
            modes=["home"],
            home_interval_months=1,
            effective_from=dt.date(2027, 1, 1),
            by=world.bureau,
        )
    assert refused.value.code == "requirement_overlap"


# --- The SQL agrees with the rule, for any month of visits -----------------------------------------

VISIT = st.tuples(st.sampled_from(["home", "phone", "video", "remote"]), st.integers(1, 15), st.booleans())


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=st.lists(st.tuples(st.sampled_from("ABC"), st.lists(VISIT, max_size=4)), min_size=1, max_size=5))
def test_the_months_figures_agree_with_the_rule_for_any_visits(world, plan):
    """Each senior's visits counted by the class's modes, capped at what is due; a refusal with
    nothing counted takes the senior out of what is due; the rate never exceeds 100 %."""
    community = RegionFactory(level=Region.Level.COMMUNITY, parent=world.subdistrict)  # this example's own
    expected_due = expected_done = expected_declined = 0
    modes = {
        "A": {"home"},
        "B": {"home", "phone", "video", "remote"},
        "C": {"home", "phone", "video", "remote"},
    }
    for care_class, visits in plan:
        senior = world.senior(care_class, community=community)
        counted = refused = 0
        for mode, day, declined in visits:
            services.record_visit(
                senior=senior,
                by=world.bureau,
                mode=mode,
                visited_at=at(day),
                outcome="declined" if declined else "visited",
                notes="不需要" if declined else "",
            )
            refused += declined
            counted += (not declined) and mode in modes[care_class]
        if refused and counted < 1:
            expected_declined += 1
        else:
            expected_due += 1
            expected_done += min(counted, 1)
    total = selectors.monthly_picture(user=world.bureau, month=MONTH, region=community).total
    assert (total.due, total.done, total.declined) == (expected_due, expected_done, expected_declined)
    assert total.rate is None or 0 <= total.rate <= 1
