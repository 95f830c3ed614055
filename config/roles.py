"""The roles of DESIGN.md §8, as Django groups with permissions. One place names them.

`setup_roles()` creates or updates the groups so that each holds exactly the permissions listed
here. A data migration runs it (billing's, the last app in the chain), so a production database
has working roles after `migrate` alone; `manage.py setup_roles` runs it again at will.
"""

from django.utils.translation import gettext_lazy as _

BUREAU = "bureau"  # 民政局 administrators: policy, oversight, the whole city
OFFICER = "officer"  # 街道/区 officers: read their subdistrict or district
WORKER = "worker"  # 社区工作人员: the senior registry of one community
PROVIDER = "provider"  # a provider's manager
STAFF = "staff"  # a provider's service staff, scanning at the door
FINANCE = "finance"  # settlement, approval, export

ROLE_NAMES = {
    BUREAU: _("Bureau administrator"),
    OFFICER: _("Subdistrict or district officer"),
    WORKER: _("Community worker"),
    PROVIDER: _("Provider manager"),
    STAFF: _("Service staff"),
    FINANCE: _("Finance"),
}

# Roles whose scope is a region (data on the user: eligibility.RegionScope).
REGION_ROLES = frozenset({BUREAU, OFFICER, WORKER})
# Roles whose scope is a provider (data on the user: providers.StaffMember).
PROVIDER_ROLES = frozenset({PROVIDER, STAFF})

_REGISTRY_READ = [
    "eligibility.view_senior",
    "eligibility.view_region",
    "eligibility.view_determination",
    "eligibility.view_historicalsenior",
    "eligibility.view_policy",
    "eligibility.view_tier",
    "eligibility.view_policyrule",
    "eligibility.view_tieroverride",
    "vouchers.view_voucher",
    "vouchers.view_redemption",
    "vouchers.view_voucherreissue",
]
_REGISTRY_WRITE = [
    "eligibility.add_senior",
    "eligibility.change_senior",
    "eligibility.view_full_id_card_number",
    "eligibility.import_seniors",
    "eligibility.add_importjob",
    "eligibility.view_importjob",
    # A manual tier for one senior, with a reason and an expiry date.
    "eligibility.add_tieroverride",
    "eligibility.change_tieroverride",
    # A new QR code for a lost or damaged card; the old one is refused from then on.
    "vouchers.reissue_voucher",
]

# Care visits (carevisits): workers pair seniors with their contact person and record visits in
# their community; officers read their subtree; the bureau also sets the visit requirements.
_CARE_READ = [
    "carevisits.view_visitrequirement",
    "carevisits.view_volunteer",
    "carevisits.view_pairing",
    "carevisits.view_visitrecord",
]
_CARE_WRITE = [
    "carevisits.add_volunteer",
    "carevisits.add_pairing",
    "carevisits.change_pairing",
    "carevisits.add_visitrecord",
    # Closing an urgent finding once it has been dealt with.
    "carevisits.change_visitrecord",
]

# "app_label.codename" for each role. What a user may *see* is decided further by their scope.
ROLE_PERMISSIONS: dict[str, list[str]] = {
    BUREAU: [
        *_REGISTRY_READ,
        *_REGISTRY_WRITE,
        *_CARE_READ,
        *_CARE_WRITE,
        "carevisits.add_visitrequirement",
        "carevisits.change_visitrequirement",
        "eligibility.add_region",
        "eligibility.change_region",
        "eligibility.add_policy",
        "eligibility.change_policy",
        "eligibility.add_tier",
        "eligibility.change_tier",
        "eligibility.add_policyrule",
        "eligibility.change_policyrule",
        "eligibility.delete_policyrule",
        "eligibility.activate_policy",
        "eligibility.view_evaluationrun",
        "eligibility.add_evaluationrun",
        "eligibility.view_regionscope",
        "eligibility.add_regionscope",
        "eligibility.change_regionscope",
        # The accounts page: the bureau gives people their role and their region or provider.
        "auth.view_user",
        "auth.add_user",
        "auth.change_user",
        "providers.view_provider",
        "providers.view_contract",
        "providers.view_contractitem",
        "providers.view_serviceitem",
        "providers.view_staffmember",
        # The providers pages: providers, their suspension, contracts and the service catalogue.
        "providers.add_provider",
        "providers.change_provider",
        "providers.view_providerstatuschange",
        "providers.add_providerstatuschange",
        "providers.add_contract",
        "providers.change_contract",
        "providers.add_contractitem",
        "providers.change_contractitem",
        "providers.delete_contractitem",
        "providers.add_serviceitem",
        "providers.change_serviceitem",
        "billing.view_settlementperiod",
        "billing.view_statement",
        "billing.view_statementline",
        "billing.view_adjustment",
        "billing.view_reconciliationcheck",
        # Seniors' "this service did not happen" (read here; checked on the oversight page later).
        "vouchers.view_dispute",
    ],
    OFFICER: [*_REGISTRY_READ, *_CARE_READ],
    WORKER: [*_REGISTRY_READ, *_REGISTRY_WRITE, *_CARE_READ, *_CARE_WRITE],
    PROVIDER: [
        "providers.view_provider",
        "providers.view_contract",
        "providers.view_contractitem",
        "providers.view_serviceitem",
        "providers.view_staffmember",
        # Their own team (/providers/<id>/staff/): add staff, deactivate them, revoke devices.
        "providers.add_staffmember",
        "providers.change_staffmember",
        "providers.view_device",
        "providers.change_device",
        "vouchers.view_redemption",
    ],
    STAFF: ["vouchers.view_redemption"],
    FINANCE: [
        # The providers they settle with: contracts, prices and areas (read only).
        "providers.view_provider",
        "providers.view_contract",
        "providers.view_contractitem",
        "providers.view_serviceitem",
        "billing.view_settlementperiod",
        "billing.view_statement",
        "billing.view_statementline",
        "billing.view_adjustment",
        "billing.view_reconciliationcheck",
        "vouchers.view_redemption",
    ],
}


def setup_roles(*, group_model=None, permission_model=None, missing_ok=False) -> dict[str, int]:
    """Create each role's group and give it exactly ROLE_PERMISSIONS; idempotent.

    The models are parameters so a migration can pass its historical ones. Raises LookupError
    naming any listed permission that does not exist (a typo must not pass silently), unless
    `missing_ok` (data migrations, whose last one runs when every model exists). Returns {role: number of permissions}.
    """
    if group_model is None or permission_model is None:
        from django.contrib.auth.models import Group, Permission

        group_model, permission_model = group_model or Group, permission_model or Permission
    wanted = {name for names in ROLE_PERMISSIONS.values() for name in names}
    found = {
        f"{app_label}.{codename}": pk
        for pk, app_label, codename in permission_model.objects.values_list(
            "pk", "content_type__app_label", "codename"
        )
        if f"{app_label}.{codename}" in wanted
    }
    missing = sorted(wanted - set(found))
    if missing and missing_ok:
        # A data migration earlier than a model's own (a later roles migration gives it).
        wanted -= set(missing)
    elif missing:
        raise LookupError("permissions not found: " + ", ".join(missing))
    counts = {}
    for role, names in ROLE_PERMISSIONS.items():
        group, _created = group_model.objects.get_or_create(name=role)
        group.permissions.set([found[name] for name in names if name in wanted])
        counts[role] = len(names)
    return counts


def roles_of(user) -> list[str]:
    """The role codes of a signed-in user, in the order of ROLE_NAMES (read once per request)."""
    if not user.is_authenticated:
        return []
    cached = getattr(user, "_role_codes", None)
    if cached is None:
        names = set(user.groups.values_list("name", flat=True))
        cached = user._role_codes = [role for role in ROLE_NAMES if role in names]
    return cached


def setup_roles_in_migration(apps, schema_editor):
    """A data migration's step: create the permissions of every app as they stand in that
    migration's state (normally made after all migrations, post_migrate), then `setup_roles`."""
    from django.contrib.auth.management import create_permissions

    for app_config in apps.get_app_configs():
        app_config.models_module = True  # historical app configs: create_permissions skips them otherwise
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    setup_roles(
        group_model=apps.get_model("auth", "Group"),
        permission_model=apps.get_model("auth", "Permission"),
        missing_ok=True,
    )
