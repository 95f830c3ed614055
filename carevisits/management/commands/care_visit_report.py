from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from carevisits import exports, selectors
from config.months import parse_month
from eligibility.models import Region


class Command(BaseCommand):
    help = "Write a month's care-visit statistics table (情况统计表) of the city or a region as a workbook."

    def add_arguments(self, parser):
        parser.add_argument("--period", required=True, help="YYYY-MM")
        parser.add_argument("--out", required=True, help="path of the .xlsx file to write")
        parser.add_argument(
            "--region", default=None, help="a district's or subdistrict's code (default: the city)"
        )

    def handle(self, *args, period, out, region, **options):
        try:
            month = parse_month(period)
        except ValueError as error:
            raise CommandError(str(error)) from None
        found = None
        if region:
            found = Region.objects.filter(code=region).first()
            if found is None:
                raise CommandError(f"no region with the code {region}")
        folder = Path(out).resolve().parent
        if not folder.is_dir():
            raise CommandError(f"cannot write {out}: the folder {folder} does not exist")
        picture, parents = selectors.statistics_picture(month=month, region=found)
        try:
            rows = exports.write_statistics(picture=picture, out=out, parents=parents)
        except OSError as error:
            raise CommandError(f"cannot write {out}: {error.strerror or error}") from None
        total = picture.total
        self.stdout.write(
            f"{period}: wrote {out}: {rows} communities, {total.seniors} classed seniors, "
            f"{total.done} of {total.due} visits due ({total.rate_percent})."
        )
