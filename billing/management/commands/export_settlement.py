from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from billing.exports import export_detail_csv, export_settlement
from config.errors import DomainError
from config.months import parse_month


class Command(BaseCommand):
    help = "Export a settled month to an Excel workbook (sheets 汇总 and 明细)."

    def add_arguments(self, parser):
        parser.add_argument("--period", required=True, help="YYYY-MM")
        parser.add_argument("--out", required=True, help="path of the .xlsx file to write")
        parser.add_argument("--provider", default=None, help="only this provider's code")
        parser.add_argument(
            "--detail-csv",
            default=None,
            help="also write every redemption (voided ones marked) to this CSV (UTF-8 with BOM)",
        )

    def handle(self, *args, period, out, provider, detail_csv, **options):
        try:
            month = parse_month(period)
        except ValueError as error:
            raise CommandError(str(error)) from None
        folder = Path(out).resolve().parent
        if not folder.is_dir():
            # Checked first: openpyxl would otherwise fail half-way and print a stray traceback.
            raise CommandError(f"cannot write {out}: the folder {folder} does not exist")
        try:
            summary = export_settlement(month=month, out=out, provider_code=provider)
        except DomainError as error:
            raise CommandError(error.detail) from error
        except OSError as error:
            raise CommandError(f"cannot write {out}: {error.strerror or error}") from None
        if detail_csv:
            try:
                rows = export_detail_csv(month=month, out=detail_csv, provider_code=provider)
            except OSError as error:
                raise CommandError(f"cannot write {detail_csv}: {error.strerror or error}") from None
            self.stdout.write(f"{period}: wrote {detail_csv}: {rows} redemptions, voided ones marked.")
        self.stdout.write(
            f"{period}: wrote {out}: {summary.statements} provider statements, "
            f"{summary.redemptions} redemptions, total {summary.total_amount.amount} CNY "
            f"(government {summary.government_total.amount}, seniors {summary.senior_total.amount})."
        )
