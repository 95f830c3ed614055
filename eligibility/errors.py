from config.errors import DomainError


class EligibilityError(DomainError):
    """A refusal of the eligibility app (registry, policies, determinations)."""
