"""The roles of DESIGN.md §1, as Django groups. One place names them."""

from django.utils.translation import gettext_lazy as _

BUREAU = "bureau"  # 民政局 administrators: policy, oversight
WORKER = "worker"  # 社区工作人员: the senior registry
PROVIDER = "provider"  # a provider's manager
STAFF = "staff"  # a provider's service staff, scanning at the door
FINANCE = "finance"  # settlement, approval, export

ROLE_NAMES = {
    BUREAU: _("Bureau administrator"),
    WORKER: _("Community worker"),
    PROVIDER: _("Provider manager"),
    STAFF: _("Service staff"),
    FINANCE: _("Finance"),
}


def roles_of(user) -> list[str]:
    """The role codes of a signed-in user, in the order of ROLE_NAMES."""
    if not user.is_authenticated:
        return []
    names = set(user.groups.values_list("name", flat=True))
    return [role for role in ROLE_NAMES if role in names]
