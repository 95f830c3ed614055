"""Reads of the eligibility app."""

import datetime as dt

from django.db.models import Q, QuerySet

from config.roles import BUREAU, REGION_ROLES, roles_of
from eligibility.models import Determination, Policy, Region, RegionScope, Senior


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


# --- Who may see and change what (DESIGN.md §8) ---------------------------------------------------


def scope_region(user) -> Region | None:
    """The region a user works in (eligibility.RegionScope), read once per user object."""
    if not user.is_authenticated:
        return None
    if not hasattr(user, "_region_scope"):
        scope = RegionScope.objects.select_related("region").filter(user=user).first()
        user._region_scope = scope.region if scope else None
    return user._region_scope


def sees_whole_city(user) -> bool:
    """Superusers, and bureau administrators with no narrower region set."""
    return user.is_superuser or (BUREAU in roles_of(user) and scope_region(user) is None)


def regions_visible_to(user) -> QuerySet[Region]:
    """The regions a user's registry work covers: all for the city, else their scope's subtree."""
    if not user.is_authenticated:
        return Region.objects.none()
    if sees_whole_city(user):
        return Region.objects.all()
    region = scope_region(user)
    if region is None or not REGION_ROLES.intersection(roles_of(user)):
        return Region.objects.none()
    return Region.objects.filter(path__startswith=region.path)


def communities_visible_to(user) -> QuerySet[Region]:
    return regions_visible_to(user).filter(level=Region.Level.COMMUNITY).order_by("path")


def visible_to(user) -> QuerySet[Senior]:
    """The seniors a user may see: the one decision every page, export, API and admin uses.

    The bureau sees the city; an officer their subdistrict or district; a worker their community;
    everyone else (providers, staff, finance) no registry at all: a scanner sees a voucher's
    masked name through the vouchers app instead.
    """
    if not user.is_authenticated or not user.has_perm("eligibility.view_senior"):
        return Senior.objects.none()
    if sees_whole_city(user):
        return Senior.objects.all()
    region = scope_region(user)
    if region is None or not REGION_ROLES.intersection(roles_of(user)):
        return Senior.objects.none()
    return Senior.objects.filter(community__path__startswith=region.path)


def can_register_in(user, community: Region) -> bool:
    """Whether a user may register (or import) seniors into a community: bureau and workers."""
    return (
        user.has_perm("eligibility.add_senior") and regions_visible_to(user).filter(pk=community.pk).exists()
    )


def can_change(user, senior: Senior) -> bool:
    """Whether a user may edit this senior: the change permission (officers are read-only)
    and the senior inside their scope."""
    return user.has_perm("eligibility.change_senior") and visible_to(user).filter(pk=senior.pk).exists()


def may_see_full_id_card_number(user) -> bool:
    return user.has_perm("eligibility.view_full_id_card_number")
