from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from config.roles import ROLE_NAMES, setup_roles


class Command(BaseCommand):
    help = "Create or update the role groups and their permissions (idempotent; migrate runs it too)."

    def handle(self, *args, **options):
        try:
            counts = setup_roles()
        except LookupError as error:
            raise CommandError(str(error)) from error
        for role, count in counts.items():
            self.stdout.write(
                _("%(role)s (%(code)s): %(count)d permissions")
                % {"role": ROLE_NAMES[role], "code": role, "count": count}
            )
