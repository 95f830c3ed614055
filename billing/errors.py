from config.errors import DomainError


class BillingError(DomainError):
    """A refusal of the billing app (settlement, statements, exports)."""
