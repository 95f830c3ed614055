"""Panels that the apps above eligibility add to a senior's registry page (DESIGN.md §3).

The registry must show a senior's vouchers and services, but eligibility never imports vouchers:
an app above registers a panel function from its `AppConfig.ready()`, and the senior's page
renders whatever is registered, in registration order.

A panel function takes `(request, senior)` and returns `(template_name, context)`, or None to
show nothing (a user who may not see it, nothing to show).
"""

from collections.abc import Callable

from django.template.loader import render_to_string
from django.utils.safestring import SafeString

Panel = Callable[..., tuple[str, dict] | None]

_panels: list[Panel] = []


def register_senior_panel(func: Panel) -> Panel:
    """Add a panel to every senior's page; registering the same function twice adds it once."""
    if func not in _panels:
        _panels.append(func)
    return func


def render_senior_panels(request, senior) -> list[SafeString]:
    """Each registered panel rendered as HTML for this request, skipping those that return None."""
    rendered = []
    for panel in _panels:
        result = panel(request, senior)
        if result is None:
            continue
        template_name, context = result
        rendered.append(render_to_string(template_name, {"senior": senior, **context}, request=request))
    return rendered
