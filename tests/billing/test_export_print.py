"""The approval workbook as printed: rendered to PDF by LibreOffice (where it is installed), the way
finance prints it for signatures. The summary must print on A4 landscape, one page per 30
providers, with the month on every page and the signature lines."""

import shutil
import subprocess

import pytest
from djmoney.money import Money

from billing.exports import PROVIDERS_PER_PAGE, export_settlement
from billing.services import settle
from tests.billing.conftest import MONTH, City
from tests.factories import ContractFactory, ContractItemFactory, ProviderFactory

SOFFICE = shutil.which("soffice") or shutil.which("libreoffice")
PDFTOTEXT, PDFINFO = shutil.which("pdftotext"), shutil.which("pdfinfo")
TITLE = "居家养老服务券结算汇总表"  # on every page of the approval summary (its title rows repeat)

pytestmark = pytest.mark.skipif(
    not (SOFFICE and PDFTOTEXT and PDFINFO),
    reason="needs LibreOffice (soffice) and poppler-utils (pdftotext, pdfinfo) to render the workbook",
)


def render(tmp_path, *workbooks) -> list:
    """Each workbook rendered to PDF by LibreOffice; per workbook, the text of each page."""
    profile = tmp_path / "lo-profile"
    subprocess.run(
        [SOFFICE, f"-env:UserInstallation=file://{profile}", "--headless", "--convert-to", "pdf",
         "--outdir", str(tmp_path), *map(str, workbooks)],
        check=True, capture_output=True, timeout=180,
    )  # fmt: skip
    rendered = []
    for workbook in workbooks:
        pdf = workbook.with_suffix(".pdf")
        info = subprocess.run([PDFINFO, str(pdf)], check=True, capture_output=True, text=True).stdout
        pages = int(next(line.split()[-1] for line in info.splitlines() if line.startswith("Pages:")))
        size = next(line for line in info.splitlines() if line.startswith("Page size:"))
        text = subprocess.run(
            [PDFTOTEXT, "-layout", str(pdf), "-"], check=True, capture_output=True, text=True
        ).stdout
        page_texts = text.split("\f")[:pages]
        rendered.append((size, page_texts))
    return rendered


def contracted_providers(city, count: int, first: int = 0) -> None:
    for number in range(first, first + count):
        provider = ProviderFactory(code=f"print-{number:02d}", name=f"印刷测试家政服务有限公司{number:02d}")
        contract = ContractFactory(provider=provider, area=[city.community])
        ContractItemFactory(contract=contract, service_item=city.cleaning, unit_price=Money("40.00", "CNY"))


def test_the_approval_summary_prints_one_a4_landscape_page_per_30_providers(db, tmp_path):
    # given a settled month of exactly 30 providers (3 of the small city, 27 more), exported
    city = City()
    city.serve(tier="low_fee", quantity="1.5")
    contracted_providers(city, PROVIDERS_PER_PAGE - 3)
    settle(month=MONTH, job="test")
    thirty = tmp_path / "thirty.xlsx"
    export_settlement(month=MONTH, out=thirty)
    # and the same month with a 31st provider, settled again
    contracted_providers(city, 1, first=PROVIDERS_PER_PAGE)
    settle(month=MONTH, job="test")
    thirty_one = tmp_path / "thirty-one.xlsx"
    export_settlement(month=MONTH, out=thirty_one)

    # when LibreOffice prints both
    (size, pages), (_size, more_pages) = render(tmp_path, thirty, thirty_one)

    # then the pages are A4 landscape (842 × 595 points)
    width, height = float(size.split()[2]), float(size.split()[4])
    assert (round(width), round(height)) == (842, 595)
    # and the approval summary of 30 providers takes one page, of 31 two, each with the title
    summary = [page for page in pages if TITLE in page]
    assert len(summary) == 1
    assert len([page for page in more_pages if TITLE in page]) == 2
    page = summary[0]
    assert "2026年10月" in page
    # every provider and every column on it: the first and the last column's headers, the total row
    assert all(f"印刷测试家政服务有限公司{n:02d}" in page for n in range(PROVIDERS_PER_PAGE - 3))
    assert "序号" in page and "付款到期日" in page and "合计" in page
    # and the signature lines, the preparer named (the job) and blanks to sign by hand
    assert "编制人：test" in page and "复核人：" in page and "审批人：" in page
