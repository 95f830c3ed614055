from config.errors import DomainError


class VoucherError(DomainError):
    """A refusal of the vouchers app (issuance, tokens, redemption, voids)."""
