"""Issuing the month's vouchers: one per qualifying senior, idempotent, set-based."""

import datetime as dt
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction

from config.months import SHANGHAI
from eligibility.models import Determination, Policy, Senior
from eligibility.selectors import policy_in_force
from eligibility.services import (
    activate_policy,
    change_senior_status,
    copy_policy,
    ensure_default_policy,
    evaluate_eligibility,
    register_senior,
    update_draft,
)
from tests.factories import make_community, make_id_card_number
from vouchers.errors import VoucherError
from vouchers.models import IssuanceRun, Voucher
from vouchers.services import issue_vouchers

NOVEMBER, DECEMBER = dt.date(2026, 11, 1), dt.date(2026, 12, 1)


def at(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(9), tzinfo=SHANGHAI)


@pytest.fixture
def seniors(db):
    ensure_default_policy()
    community = make_community()
    facts = [{"three_no": True}, {"hardship_assessed": True}, {}, {}]
    made = [
        register_senior(
            id_card_number=make_id_card_number(birth_date=dt.date(1950, 1, 1 + i)),
            name="孙桂芝",
            community=community,
            **f,
        )
        for i, f in enumerate(facts)
    ]
    evaluate_eligibility(as_of=NOVEMBER)
    return made


def test_each_qualifying_senior_gets_one_voucher_with_the_tier_terms(seniors):
    result = issue_vouchers(period=NOVEMBER, now=at(NOVEMBER))
    assert result.issued == 4
    by_tier = {v.tier_code: v for v in Voucher.objects.all()}
    assert (
        by_tier["subsidized"].face_value.amount == by_tier["subsidized"].balance.amount == Decimal("300.00")
    )
    assert by_tier["low_fee"].face_value.amount == Decimal("200.00")
    assert by_tier["low_fee"].government_share_rate == Decimal("0.7000")
    assert by_tier["paid"].face_value.amount == Decimal("0.00")
    voucher = by_tier["paid"]
    assert (voucher.valid_from, voucher.valid_until, voucher.status) == (
        NOVEMBER,
        dt.date(2026, 11, 30),
        "active",
    )


def test_running_twice_issues_nothing_new(seniors):
    issue_vouchers(period=NOVEMBER, now=at(NOVEMBER))
    assert issue_vouchers(period=NOVEMBER, now=at(NOVEMBER)).issued == 0
    assert Voucher.objects.count() == 4


def test_a_new_month_expires_the_old_vouchers(seniors):
    issue_vouchers(period=NOVEMBER, now=at(NOVEMBER))
    result = issue_vouchers(period=DECEMBER, now=at(DECEMBER))
    assert (result.issued, result.expired) == (4, 4)
    assert set(Voucher.objects.filter(period=NOVEMBER).values_list("status", flat=True)) == {"expired"}


def test_issuing_next_month_early_leaves_this_month_usable(seniors):
    issue_vouchers(period=NOVEMBER, now=at(NOVEMBER))
    result = issue_vouchers(period=DECEMBER, now=at(dt.date(2026, 11, 25)))
    assert (result.issued, result.expired) == (4, 0)
    assert set(Voucher.objects.filter(period=NOVEMBER).values_list("status", flat=True)) == {"active"}


def test_a_far_future_month_is_refused_and_changes_nothing(seniors):
    issue_vouchers(period=NOVEMBER, now=at(NOVEMBER))
    with pytest.raises(VoucherError) as refusal:
        issue_vouchers(period=dt.date(2099, 12, 1), now=at(NOVEMBER))
    assert refusal.value.code == "invalid_input"
    assert set(Voucher.objects.values_list("status", flat=True)) == {"active"}


def test_seniors_who_are_not_active_get_no_voucher(seniors):
    Senior.objects.filter(pk=seniors[0].pk).update(status=Senior.Status.DECEASED)
    assert issue_vouchers(period=NOVEMBER, now=at(NOVEMBER)).issued == 3


def test_issuance_is_one_statement_whatever_the_number_of_seniors(seniors):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as small:
        assert issue_vouchers(period=NOVEMBER, now=at(NOVEMBER)).issued == 4
    for i in range(6):  # a city more than twice as large
        register_senior(
            id_card_number=make_id_card_number(birth_date=dt.date(1941, 3, 1 + i)),
            name="吴秀英",
            community=seniors[0].community,
            three_no=True,
        )
    with CaptureQueriesContext(connection) as large:
        assert issue_vouchers(period=DECEMBER, now=at(dt.date(2026, 11, 25))).issued == 10
    # A fixed handful either way: the lock (PostgreSQL), the last run, whether the month has
    # vouchers, the mark, the INSERT … SELECT, whether any policy carries balance over, the expiry,
    # the run record, and the transaction's savepoint.
    assert len(large.captured_queries) == len(small.captured_queries) <= 10
    inserts = [q["sql"] for q in large.captured_queries if q["sql"].lstrip().startswith("INSERT INTO")]
    assert len([q for q in inserts if "vouchers_voucher" in q]) == 1


def test_the_database_refuses_a_second_voucher_or_a_negative_balance(seniors):
    issue_vouchers(period=NOVEMBER, now=at(NOVEMBER))
    voucher = Voucher.objects.first()
    with pytest.raises(IntegrityError), transaction.atomic():
        Voucher.objects.filter(pk=voucher.pk).update(balance=Decimal("-0.01"))
    with pytest.raises(IntegrityError), transaction.atomic():
        Voucher.objects.filter(pk=voucher.pk).update(balance=voucher.face_value.amount + Decimal("0.01"))
    voucher.pk = None
    with pytest.raises(IntegrityError), transaction.atomic():
        voucher.save()


def test_issue_vouchers_command(seniors, capsys, monkeypatch):
    monkeypatch.setattr("django.utils.timezone.now", lambda: at(NOVEMBER))
    call_command("issue_vouchers", "--period", "2026-11")
    assert "issued 4" in capsys.readouterr().out
    with pytest.raises(Exception, match="YYYY-MM"):
        call_command("issue_vouchers", "--period", "2026-13")


def test_a_past_month_is_refused_and_issues_nothing(seniors):
    # Given it is December: November's services are over
    with pytest.raises(VoucherError) as refusal:
        issue_vouchers(period=NOVEMBER, now=at(DECEMBER))
    assert refusal.value.code == "invalid_input" and "2026-11" in refusal.value.detail
    assert not Voucher.objects.exists()
    # And this month is still issued
    assert issue_vouchers(period=DECEMBER, now=at(DECEMBER)).issued == 4


# --- Re-runs read only what is new; the run is recorded ---------------------------------------


def test_a_rerun_issues_to_the_seniors_registered_since_and_records_each_run(seniors, django_user_model):
    first = issue_vouchers(period=NOVEMBER, now=at(NOVEMBER), job="monthly")
    # Given a senior registered after the first run (registering evaluates them)
    late = register_senior(
        id_card_number=make_id_card_number(birth_date=dt.date(1940, 2, 2)),
        name="周美华",
        community=seniors[0].community,
        three_no=True,
    )
    admin = django_user_model.objects.create(username="issuer")
    second = issue_vouchers(period=NOVEMBER, now=at(NOVEMBER), by=admin)

    assert (first.issued, first.incremental) == (4, False)
    assert (second.issued, second.incremental) == (1, True)
    assert Voucher.objects.get(senior=late, period=NOVEMBER).tier_code == "subsidized"
    runs = list(
        IssuanceRun.objects.order_by("id").values_list("issued", "incremental", "job", "run_by__username")
    )
    assert runs == [(4, False, "monthly", None), (1, True, "", "issuer")]
    assert issue_vouchers(period=NOVEMBER, now=at(NOVEMBER)).issued == 0
    # A full run reads every determination again, and finds nothing missing either
    assert issue_vouchers(period=NOVEMBER, now=at(NOVEMBER), full=True).issued == 0


def test_a_tier_change_mid_month_keeps_this_months_voucher_until_the_next_issuance(seniors):
    issue_vouchers(period=NOVEMBER, now=at(NOVEMBER))
    paid = Voucher.objects.get(senior=seniors[3], period=NOVEMBER)
    # Given the senior becomes a three-no senior mid-month (a new determination: subsidized)
    Senior.objects.filter(pk=seniors[3].pk).update(three_no=True)
    evaluate_eligibility(as_of=dt.date(2026, 11, 15))

    assert issue_vouchers(period=NOVEMBER, now=at(dt.date(2026, 11, 16))).issued == 0
    kept = Voucher.objects.get(pk=paid.pk)
    assert (kept.tier_code, kept.face_value, kept.balance) == ("paid", paid.face_value, paid.balance)
    # While next month's voucher carries the new tier
    issue_vouchers(period=DECEMBER, now=at(dt.date(2026, 11, 28)))
    assert Voucher.objects.get(senior=seniors[3], period=DECEMBER).tier_code == "subsidized"


def test_a_senior_who_died_before_the_month_gets_no_voucher_for_it(seniors):
    change_senior_status(senior=seniors[0], status="deceased", on=dt.date(2026, 11, 20), by=None)
    assert issue_vouchers(period=DECEMBER, now=at(dt.date(2026, 11, 28))).issued == 3
    assert not Voucher.objects.filter(senior=seniors[0], period=DECEMBER).exists()


# --- The database keeps each voucher true to its determination --------------------------------


def test_the_database_refuses_a_voucher_that_does_not_match_its_determination(seniors):
    issue_vouchers(period=NOVEMBER, now=at(NOVEMBER))
    voucher = Voucher.objects.get(senior=seniors[0])
    other = Voucher.objects.get(senior=seniors[1])
    stray = Voucher.objects.get(pk=voucher.pk)
    stray.pk, stray.period = None, DECEMBER
    stray.determination_id = other.determination_id  # another senior's determination
    with pytest.raises(IntegrityError), transaction.atomic():
        stray.save()
    stray.determination_id, stray.tier_code = voucher.determination_id, "paid"  # the wrong snapshot
    with pytest.raises(IntegrityError), transaction.atomic():
        stray.save()
    with pytest.raises(IntegrityError), transaction.atomic():
        Voucher.objects.filter(pk=voucher.pk).update(senior=seniors[1])
    with pytest.raises(IntegrityError), transaction.atomic():
        Voucher.objects.filter(pk=voucher.pk).update(period=DECEMBER)
    with pytest.raises(IntegrityError), transaction.atomic():
        Determination.objects.filter(pk=voucher.determination_id).delete()  # Django's PROTECT
    if connection.vendor == "postgresql":  # and the database's own, past Django's check
        with pytest.raises(IntegrityError), transaction.atomic():
            Determination.objects.filter(pk=voucher.determination_id)._raw_delete("default")
    assert Determination.objects.filter(pk=voucher.determination_id).exists()
    Voucher.objects.filter(pk=voucher.pk).update(balance=Decimal("1.00"))  # the balance may change


# --- Carry-over of unused balance: a policy option, default off --------------------------------


@pytest.fixture
def carrying_policy(seniors):
    """The default policy's next version with carry-over on, in force from November."""
    current = policy_in_force(as_of=NOVEMBER)
    draft = copy_policy(policy=current, by=None)
    update_draft(policy=draft, by=None, carry_over_unused=True)
    activate_policy(policy=draft, effective_from=NOVEMBER, by=None, today=dt.date(2026, 10, 20))
    evaluate_eligibility(as_of=NOVEMBER)
    return draft


def spend(voucher, amount: str) -> None:
    Voucher.objects.filter(pk=voucher.pk).update(balance=voucher.balance.amount - Decimal(amount))


def test_by_default_nothing_carries_over(seniors):
    issue_vouchers(period=NOVEMBER, now=at(NOVEMBER))
    spend(Voucher.objects.get(senior=seniors[0]), "100.00")
    result = issue_vouchers(period=DECEMBER, now=at(DECEMBER))
    december = Voucher.objects.get(senior=seniors[0], period=DECEMBER)
    assert result.carried_over == 0
    assert (december.balance.amount, december.carried_over) == (Decimal("300.00"), Decimal("0.00"))


def test_with_carry_over_what_is_left_of_last_month_is_added_once_the_month_is_over(carrying_policy, seniors):
    issue_vouchers(period=NOVEMBER, now=at(NOVEMBER))
    subsidized = Voucher.objects.get(senior=seniors[0], period=NOVEMBER)
    spend(subsidized, "120.50")  # ¥179.50 of ¥300.00 left

    # Given December is issued early, on 25 November: November may still be spent
    early = issue_vouchers(period=DECEMBER, now=at(dt.date(2026, 11, 25)))
    december = Voucher.objects.get(senior=seniors[0], period=DECEMBER)
    assert (early.carried_over, december.balance.amount) == (0, Decimal("300.00"))

    # When the issuance runs again once November is over
    later = issue_vouchers(period=DECEMBER, now=at(DECEMBER))
    december.refresh_from_db()
    assert later.carried_over == 2  # the subsidized and low-fee seniors; the paid tier's ¥0 has nothing
    assert (december.carried_over, december.balance.amount) == (Decimal("179.50"), Decimal("479.50"))
    assert december.face_value.amount == Decimal("300.00")

    # And a third run adds nothing more
    assert issue_vouchers(period=DECEMBER, now=at(DECEMBER)).carried_over == 0
    december.refresh_from_db()
    assert december.balance.amount == Decimal("479.50")


def test_carry_over_never_exceeds_one_months_face_value_and_a_revoked_voucher_passes_nothing(
    carrying_policy, seniors
):
    issue_vouchers(period=NOVEMBER, now=at(NOVEMBER))
    Voucher.objects.filter(senior=seniors[1], period=NOVEMBER).update(status=Voucher.Status.REVOKED)
    issue_vouchers(period=DECEMBER, now=at(DECEMBER))
    january = dt.date(2027, 1, 1)
    issue_vouchers(period=january, now=at(january))  # nothing spent: December held 300 + 300
    assert Voucher.objects.get(senior=seniors[0], period=DECEMBER).balance.amount == Decimal("600.00")
    assert Voucher.objects.get(senior=seniors[0], period=january).carried_over == Decimal("300.00")
    assert Voucher.objects.get(senior=seniors[1], period=DECEMBER).carried_over == Decimal("0.00")


def test_a_published_policys_carry_over_cannot_change(carrying_policy):
    with pytest.raises(IntegrityError), transaction.atomic():
        Policy.objects.filter(pk=carrying_policy.pk).update(carry_over_unused=False)


def test_this_months_carry_over_is_made_up_by_next_months_early_run_if_the_1st_was_missed(
    carrying_policy, seniors
):
    issue_vouchers(period=NOVEMBER, now=at(NOVEMBER))
    issue_vouchers(period=DECEMBER, now=at(dt.date(2026, 11, 25)))  # early: November not over
    # The run of 1 December is missed; the next one issues January early, on 25 December
    result = issue_vouchers(period=dt.date(2027, 1, 1), now=at(dt.date(2026, 12, 25)))
    december = Voucher.objects.get(senior=seniors[0], period=DECEMBER)
    assert (december.carried_over, december.balance.amount) == (Decimal("300.00"), Decimal("600.00"))
    assert result.carried_over == 2


def test_deleting_a_drafts_tier_does_not_read_the_whole_voucher_table(seniors):
    """The voucher table has no index on its tier (issuance is cheaper without): deleting a draft's
    tier must not make Django look for vouchers of it (a published tier is never deleted)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from eligibility.services import delete_tier, save_tier

    issue_vouchers(period=NOVEMBER, now=at(NOVEMBER))
    draft = copy_policy(policy=policy_in_force(as_of=NOVEMBER), by=None)
    extra = save_tier(
        policy=draft,
        by=None,
        code="trial",
        name="试点",
        rank=9,
        government_share_rate=Decimal("0.5"),
        monthly_face_value=Decimal("10.00"),
    )
    with CaptureQueriesContext(connection) as queries:
        delete_tier(tier=extra, by=None)
    assert not any("vouchers_voucher" in query["sql"] for query in queries.captured_queries)
