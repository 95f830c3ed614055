"""The base of every domain refusal.

Each app has its own subclass in its `errors.py`. A refusal carries a stable snake_case `code`
(DESIGN.md §5) and a lazily translated message, so the API, pages and commands can each show it
in the user's language. The API maps `code` to an HTTP status in one place (`config.api`).
"""

from django.utils.functional import Promise


class DomainError(Exception):
    code: str = "invalid_input"

    def __init__(
        self,
        code: str,
        message: str | Promise,
        /,
        *,
        field: str | None = None,
        extra: dict | None = None,
        **params,
    ):
        self.code = code
        # More for an API client to act on, sent beside code and detail (e.g. the quote to confirm).
        self.extra = extra or {}
        self.message = message
        self.params = params
        # The input field the refusal is about, where there is one: forms show it there.
        self.field = field
        super().__init__(code)

    @property
    def detail(self) -> str:
        text = str(self.message)
        return text % self.params if self.params else text

    def __str__(self) -> str:
        return f"{self.code}: {self.detail}"
