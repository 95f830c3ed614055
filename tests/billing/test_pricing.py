"""The price split (DESIGN.md §4.2–4.3): properties for all inputs, and the worked examples."""

from decimal import Decimal

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from billing.pricing import PricingInputError, split_price, to_fen


def hundredths(low: int, high: int):
    """Decimals with two places from low/100 to high/100, as money and quantities are recorded."""
    return st.integers(low, high).map(lambda n: Decimal(n).scaleb(-2))


unit_prices = hundredths(1, 999_999)  # ¥0.01 … ¥9,999.99
quantities = hundredths(1, 9_999) | st.integers(1, 99).map(Decimal)  # 0.01 … 99.99, or whole units
rates = st.integers(0, 10_000).map(lambda n: Decimal(n).scaleb(-4))  # 0 … 1, four decimals
balances = hundredths(0, 999_999)  # ¥0.00 … ¥9,999.99


@given(unit_price=unit_prices, quantity=quantities, rate=rates, balance=balances)
@example(unit_price=Decimal("0.05"), quantity=Decimal("1"), rate=Decimal("0.5"), balance=Decimal("100.00"))
@example(unit_price=Decimal("9999.99"), quantity=Decimal("99.99"), rate=Decimal("1"), balance=Decimal("0.00"))
def test_the_parts_always_add_up_and_respect_the_balance(unit_price, quantity, rate, balance):
    split = split_price(unit_price=unit_price, quantity=quantity, government_share_rate=rate, balance=balance)

    assert split.amount == to_fen(unit_price * quantity)
    assert split.government_share >= 0
    assert split.senior_share >= 0
    assert split.government_share + split.senior_share == split.amount
    assert split.government_share <= balance
    # the government pays its rate of the price, or what is left on the voucher if that is less
    assert split.government_share == min(to_fen(split.amount * rate), balance)
    # every part is a whole number of fen
    for part in (split.amount, split.government_share, split.senior_share):
        assert part == part.quantize(Decimal("0.01"))


@given(unit_price=unit_prices, quantity=quantities, balance=balances)
def test_a_subsidized_senior_pays_nothing_while_the_balance_lasts(unit_price, quantity, balance):
    split = split_price(
        unit_price=unit_price, quantity=quantity, government_share_rate=Decimal("1"), balance=balance
    )
    if split.amount <= balance:
        assert (split.government_share, split.senior_share) == (split.amount, Decimal("0.00"))
    else:
        assert (split.government_share, split.senior_share) == (balance, split.amount - balance)


@given(unit_price=unit_prices, quantity=quantities, balance=balances)
def test_a_paying_senior_pays_everything(unit_price, quantity, balance):
    split = split_price(
        unit_price=unit_price, quantity=quantity, government_share_rate=Decimal("0"), balance=balance
    )
    assert (split.government_share, split.senior_share) == (Decimal("0.00"), split.amount)


@pytest.mark.parametrize(
    ("unit_price", "quantity", "rate", "balance", "expected"),
    [
        # ¥40 an hour × 1.5 h for a low-fee senior with ¥200 on the voucher
        ("40.00", "1.5", "0.7", "200.00", ("60.00", "42.00", "18.00")),
        # the same with only ¥10 left: the government pays what is left, the senior the rest
        ("40.00", "1.5", "0.7", "10.00", ("60.00", "10.00", "50.00")),
        # rounding half up, once: 33.33 × 0.7 = 23.331 → 23.33
        ("33.33", "1", "0.7", "200.00", ("33.33", "23.33", "10.00")),
        # 0.05 × 0.5 = 0.025 → 0.03 (half up, not banker's rounding to 0.02)
        ("0.05", "1", "0.5", "200.00", ("0.05", "0.03", "0.02")),
        # the amount itself is rounded half up: 10.01 × 0.25 h = 2.5025 → 2.50; 0.7 × 2.50 = 1.75
        ("10.01", "0.25", "0.7", "200.00", ("2.50", "1.75", "0.75")),
        # subsidized: all government; paid: all senior
        ("25.00", "2", "1", "300.00", ("50.00", "50.00", "0.00")),
        ("25.00", "2", "0", "0.00", ("50.00", "0.00", "50.00")),
    ],
)
def test_worked_examples(unit_price, quantity, rate, balance, expected):
    split = split_price(
        unit_price=Decimal(unit_price),
        quantity=Decimal(quantity),
        government_share_rate=Decimal(rate),
        balance=Decimal(balance),
    )
    assert (split.amount, split.government_share, split.senior_share) == tuple(map(Decimal, expected))


VALID = {
    "unit_price": Decimal("40.00"),
    "quantity": Decimal("1"),
    "government_share_rate": Decimal("0.7"),
    "balance": Decimal("200.00"),
}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("unit_price", 40.0),  # a float is never money
        ("unit_price", "40.00"),
        ("unit_price", Decimal("-0.01")),
        ("unit_price", Decimal("NaN")),
        ("quantity", Decimal("0")),
        ("quantity", Decimal("-1")),
        ("quantity", Decimal("Infinity")),
        ("quantity", 1),
        ("government_share_rate", Decimal("1.0001")),
        ("government_share_rate", Decimal("-0.1")),
        ("government_share_rate", 0.7),
        ("balance", Decimal("-0.01")),
        ("balance", Decimal("10.001")),  # not a whole number of fen
        ("balance", None),
    ],
)
def test_inputs_that_cannot_be_priced_are_refused(field, value):
    with pytest.raises(PricingInputError):
        split_price(**{**VALID, field: value})
