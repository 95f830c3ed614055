"""Roles come from a migration and `setup_roles`, never from demo data (DESIGN.md §8)."""

from io import StringIO

from django.contrib.auth.models import Group
from django.core.management import call_command

from config.roles import ROLE_NAMES, ROLE_PERMISSIONS, setup_roles


def permissions_of(role: str) -> set[str]:
    group = Group.objects.get(name=role)
    return {
        f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.select_related("content_type")
    }


def test_a_database_after_migrate_alone_has_every_role_with_its_permissions(db):
    # Given the test database, built by `migrate` and nothing else
    # Then each role's group exists and holds exactly its permissions
    assert set(Group.objects.values_list("name", flat=True)) >= set(ROLE_NAMES)
    for role, names in ROLE_PERMISSIONS.items():
        assert permissions_of(role) == set(names), role


def test_setup_roles_repairs_a_changed_group_and_is_idempotent(db):
    # Given a bureau group someone emptied and a worker group given too much
    Group.objects.get(name="bureau").permissions.clear()
    worker = Group.objects.get(name="worker")
    worker.permissions.add(
        *Group.objects.get(name="bureau").permissions.model.objects.filter(codename="add_policy")
    )

    # When setup_roles runs (twice)
    out = StringIO()
    call_command("setup_roles", stdout=out)
    setup_roles()

    # Then every group is back to its listed permissions
    for role, names in ROLE_PERMISSIONS.items():
        assert permissions_of(role) == set(names), role
    assert "worker" in out.getvalue()


def test_finance_and_workers_have_what_their_pages_need(db):
    assert "billing.view_statement" in ROLE_PERMISSIONS["finance"]
    assert {"eligibility.change_senior", "eligibility.import_seniors"} <= set(ROLE_PERMISSIONS["worker"])
    assert not any(
        name.startswith(("eligibility.add_", "eligibility.change_")) for name in ROLE_PERMISSIONS["officer"]
    )
