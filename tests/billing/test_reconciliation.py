"""The reconciliation checks every settlement runs and stores, with the rows behind a failure; and
PostgreSQL's one-pass settlement agreeing with the portable statements to the fen."""

import datetime as dt
from decimal import Decimal

import django.db
import pytest
from djmoney.money import Money

from billing import selectors, services
from billing.models import ReconciliationCheck, Statement, StatementLine
from billing.services import settle
from config.months import SHANGHAI
from providers.models import Contract
from tests.billing.conftest import MONTH
from tests.billing.test_settlement import figures_of, make_finance, serve_a_month
from vouchers.models import Voucher
from vouchers.services import void_redemption

SETTLED_AT = dt.datetime(2026, 11, 2, 9, tzinfo=SHANGHAI)


def outcomes() -> dict:
    return {
        check.code: (check.status, check.failing_count, sorted(map(str, check.sample)))
        for check in ReconciliationCheck.objects.filter(period__month=MONTH)
    }


def test_a_clean_month_passes_every_check(city):
    serve_a_month(city)
    settle(month=MONTH, job="test", now=SETTLED_AT)
    assert outcomes() == {code: ("passed", 0, []) for code in selectors.CHECKS}


def test_services_outside_the_voucher_or_the_contract_and_overspent_vouchers_fail_their_checks(
    city, finance_user
):
    # given services on the 5th and on the 25th, then records changed behind the services' back
    # (as a bad import or a console might): provider B's contract ends on the 20th, the low-fee
    # voucher is valid only until the 20th, and the subsidized voucher's face value is cut to 50
    early = city.serve(tier="low_fee", provider="prov-a", day=5)
    late_voucher = city.serve(tier="low_fee", provider="prov-a", day=25)
    late_contract = city.serve(tier="paid", provider="prov-b", day=25)
    city.serve(tier="subsidized", provider="prov-a", quantity="2", day=6)  # 80.00 of government money
    Contract.objects.filter(provider__code="prov-b").update(ends_on=dt.date(2026, 10, 20))
    Voucher.objects.filter(pk=early.voucher_id).update(valid_until=dt.date(2026, 10, 20))
    subsidized = city.vouchers["subsidized"]
    Voucher.objects.filter(pk=subsidized.pk).update(
        face_value=Money("50.00", "CNY"), balance=Money("0", "CNY")
    )

    # when the month is settled
    settle(month=MONTH, job="test", now=SETTLED_AT)

    # then each check names the rows behind its failure; the statements themselves add up
    result = outcomes()
    assert result["within_validity"] == ("failed", 1, [str(late_voucher.pk)])
    assert result["within_contract"] == ("failed", 1, [str(late_contract.pk)])
    assert result["voucher_not_overspent"] == ("failed", 1, [str(subsidized.pk)])
    assert result["tier_within_face_value"] == ("failed", 1, ["subsidized"])
    assert result["statements_add_up"] == ("passed", 0, [])
    checks = {check.code: check for check in selectors.checks_of(period=Statement.objects.first().period)}
    assert list(checks) == list(selectors.CHECKS)
    assert [r.pk for r in selectors.rows_behind(check=checks["within_contract"])] == [late_contract.pk]
    assert [v.pk for v in selectors.rows_behind(check=checks["voucher_not_overspent"])] == [subsidized.pk]
    # and a statement with such findings can still be approved (they become adjustments)
    statement = Statement.objects.get(period__month=MONTH, provider__code="prov-a")
    services.review_statement(statement_id=statement.pk, by=finance_user)
    assert services.approve_statement(statement_id=statement.pk, by=make_finance("other")).state == "approved"


class AsIfNotPostgreSQL:
    """The default connection, except that `settle` takes the portable path (separate statements)."""

    vendor = "sqlite"

    def __getattr__(self, name):
        return getattr(django.db.connection, name)


@pytest.mark.postgres
def test_the_one_pass_settlement_agrees_with_the_portable_one(city, monkeypatch):
    if django.db.connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: the one-pass settlement runs there only")
    # given a month with services, voids in the month and one after it (an adjustment next month)
    served = serve_a_month(city)
    settle(month=MONTH, job="test", now=SETTLED_AT)
    void_redemption(
        redemption_id=served["low_fee_small"].pk,
        reason="late",
        user=city.staff["prov-a"].user,
        now=dt.datetime(2026, 11, 3, tzinfo=SHANGHAI),
    )
    one_pass = figures_of(MONTH), outcomes()

    # when it is settled again by the portable statements
    monkeypatch.setattr(services, "connection", AsIfNotPostgreSQL())
    settle(month=MONTH, job="test", now=SETTLED_AT)

    # then the statements, lines and checks are the same, to the fen
    assert (figures_of(MONTH), outcomes()) == one_pass
    assert StatementLine.objects.filter(statement__period__month=MONTH).exists()
    assert sum(s.total_amount.amount for s in Statement.objects.all()) == Decimal("488.20")
