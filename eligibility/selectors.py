"""Reads of the eligibility app."""

import datetime as dt

from django.db.models import Q

from eligibility.models import Determination, Policy


def policy_in_force(*, as_of: dt.date) -> Policy | None:
    """The policy effective on `as_of`; the latest version wins when several are."""
    return (
        Policy.objects.filter(effective_from__lte=as_of)
        .filter(Q(effective_until__isnull=True) | Q(effective_until__gte=as_of))
        .order_by("-effective_from", "-version")
        .first()
    )


def current_determination(*, senior) -> Determination | None:
    return (
        Determination.objects.select_related("tier", "policy").filter(senior=senior, is_current=True).first()
    )
