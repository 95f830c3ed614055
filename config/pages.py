"""What every signed-in page shares: who may open it, and the friendly refusal when not."""

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.views.decorators.cache import never_cache


def forbidden(request, reason=None):
    """The friendly 403 page, saying why when the page knows (`reason`)."""
    return render(request, "403.html", {"reason": reason}, status=403)


def page_for(allowed: Callable[[object], bool], reason):
    """Sign-in required; a user for whom `allowed(user)` is false gets the friendly 403 page with
    `reason`. Never cached: these pages hold personal data."""

    def decorator(view):
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if not allowed(request.user):
                return forbidden(request, reason)
            return view(request, *args, **kwargs)

        return login_required(never_cache(wrapped))

    return decorator
