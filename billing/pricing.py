"""How the price of one redemption splits between the government and the senior.

Pure: numbers in, numbers out. It imports nothing of the project and nothing of Django, so the
vouchers app can call it at redemption time and the settlement can rely on the same rule.

The rule (DESIGN.md §4.2–4.3):
- amount = unit price × quantity, rounded half up to the fen;
- government share = amount × the tier's government share rate, rounded half up to the fen,
  but never more than what is left on the voucher (the government pays what is left);
- senior share = amount − government share, so the parts always add up exactly.
"""

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

FEN = Decimal("0.01")


class PricingInputError(ValueError):
    """The inputs cannot be priced (negative, zero quantity, a rate outside 0–1)."""


@dataclass(frozen=True)
class PriceSplit:
    amount: Decimal
    government_share: Decimal
    senior_share: Decimal


def parse_hundredths(value, *, maximum: Decimal) -> Decimal | None:
    """`value` (a number or its text) as a Decimal if it is finite, above 0, at most `maximum` and
    in hundredths (a quantity, a billing increment); None for anything else."""
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError, TypeError):
        return None
    if not number.is_finite() or number <= 0 or number > maximum or number != number.quantize(FEN):
        return None
    return number


def to_fen(value: Decimal) -> Decimal:
    """Round half up to the fen: the one rounding of money in this project."""
    return value.quantize(FEN, rounding=ROUND_HALF_UP)


def split_price(
    *, unit_price: Decimal, quantity: Decimal, government_share_rate: Decimal, balance: Decimal
) -> PriceSplit:
    for name, value in (
        ("unit_price", unit_price),
        ("quantity", quantity),
        ("government_share_rate", government_share_rate),
        ("balance", balance),
    ):
        if not isinstance(value, Decimal) or not value.is_finite():
            raise PricingInputError(f"{name} must be a finite Decimal, not {value!r}")
    if unit_price < 0:
        raise PricingInputError("unit_price must not be negative")
    if quantity <= 0:
        raise PricingInputError("quantity must be positive")
    if not Decimal(0) <= government_share_rate <= Decimal(1):
        raise PricingInputError("government_share_rate must be between 0 and 1")
    if balance < 0 or balance != to_fen(balance):
        raise PricingInputError("balance must be a non-negative amount in fen")

    amount = to_fen(unit_price * quantity)
    government_share = min(to_fen(amount * government_share_rate), balance)
    return PriceSplit(
        amount=amount,
        government_share=government_share,
        senior_share=amount - government_share,
    )
