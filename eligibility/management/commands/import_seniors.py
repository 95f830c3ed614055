from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from config.commands import user_named
from eligibility.importer import run_import, write_template


def error_line(error) -> str:
    """One error as the command prints it: 第N行 列名：message (in the active language)."""
    if not error.row:
        return str(error.message)
    return _("Row %(row)s, %(column)s: %(message)s") % {
        "row": error.row,
        "column": error.column,
        "message": error.message,
    }


def _writable(path: str, option: str) -> Path:
    target = Path(path)
    if not target.parent.is_dir():
        raise CommandError(
            _("%(option)s: the folder %(folder)s does not exist.")
            % {"option": option, "folder": target.parent}
        )
    return target


class Command(BaseCommand):
    help = (
        "Import seniors from a workbook: every row or none. Without --by it is a system import into the "
        "whole city. --template PATH.xlsx writes the blank template instead."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", nargs="?", help="the workbook to import (.xlsx)")
        parser.add_argument("--dry-run", action="store_true", help="check every row, write nothing")
        parser.add_argument(
            "--errors-out", metavar="PATH.xlsx", help="where to write the annotated copy of a refused file"
        )
        parser.add_argument("--by", metavar="USERNAME", help="import as this user, within their communities")
        parser.add_argument("--template", metavar="PATH.xlsx", help="write the blank template and stop")

    def handle(self, *args, path=None, dry_run=False, errors_out=None, by=None, template=None, **options):
        if template:
            if path:
                raise CommandError(_("Give either a workbook to import or --template, not both."))
            write_template(_writable(template, "--template"))
            self.stdout.write(_("Template written to %(path)s.") % {"path": template})
            return
        if not path:
            raise CommandError(_("Give the workbook to import (PATH.xlsx), or --template PATH.xlsx."))
        try:
            data = Path(path).read_bytes()
        except OSError as error:
            raise CommandError(
                _("Cannot read %(path)s: %(reason)s") % {"path": path, "reason": error.strerror}
            ) from None
        errors_path = _writable(errors_out, "--errors-out") if errors_out else None
        user = user_named(by, missing=_("There is no user %(username)s."))

        report = run_import(data=data, user=user, dry_run=dry_run)

        counts = {
            "total": report.total_rows,
            "created": report.created,
            "updated": report.updated,
            "unchanged": report.unchanged,
        }
        if report.ok:
            if dry_run:
                message = _(
                    "Checked %(total)s rows, nothing written (dry run): %(created)s would be new, "
                    "%(updated)s updated, %(unchanged)s unchanged."
                )
            else:
                message = _(
                    "Imported %(total)s rows: %(created)s new, %(updated)s updated, %(unchanged)s unchanged."
                )
            self.stdout.write(message % counts)
            return
        for error in report.errors:
            self.stdout.write(error_line(error))
        if errors_path is not None and report.annotated_workbook is not None:
            errors_path.write_bytes(report.annotated_workbook)
            self.stdout.write(_("The file with the errors marked is at %(path)s.") % {"path": errors_path})
        raise CommandError(_("Nothing was imported: %(count)s errors.") % {"count": len(report.errors)})
