from config.errors import DomainError


class CareVisitError(DomainError):
    """A refusal of the care-visits app (requirements, pairings, visit records)."""
