"""Names recorded in two languages (regions, tiers, providers, service items)."""

from django.utils.translation import get_language


def in_language(name: str, name_en: str = "") -> str:
    """The English name where the page is in English and one is recorded, else the Chinese one."""
    return name_en if name_en and (get_language() or "").startswith("en") else name


def name_in_language(obj) -> str:
    return in_language(obj.name, getattr(obj, "name_en", ""))
