from config.errors import DomainError


class ProviderError(DomainError):
    """A refusal of the providers app (providers, contracts, staff, devices)."""
