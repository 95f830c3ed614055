"""What the management commands share."""

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError


def user_named(username: str | None, *, missing=None):
    """The user a command's `--by USERNAME` names (None when not given: a script), or a refusal:
    `missing` % {"username": …} where a command words it itself, else "no user '…'"."""
    if not username:
        return None
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise CommandError(missing % {"username": username} if missing else f"no user {username!r}")
    return user
