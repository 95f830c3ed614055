"""Printed voucher cards: the PDF a community worker prints, read back the way a phone reads a
card (rendered to an image and every QR code decoded), the command, the buttons, and who may
print what."""

import datetime as dt
import io
import re
import shutil
import subprocess
from urllib.parse import urlparse

import pytest
import qrcode
import qrcode.constants
import qrcode.util
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from config.roles import setup_roles
from eligibility.services import change_senior_status, evaluate_eligibility, register_senior
from tests.e2e.conftest import make_user
from tests.factories import ProviderFactory, StaffMemberFactory, make_id_card_number
from tests.vouchers.conftest import MONTH
from vouchers import cards, tokens
from vouchers.models import Voucher
from vouchers.selectors import vouchers_to_print

needs_pdftoppm = pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="needs poppler-utils' pdftoppm")
needs_pdftotext = pytest.mark.skipif(
    shutil.which("pdftotext") is None, reason="needs poppler-utils' pdftotext"
)
LEVEL_M = qrcode.constants.ERROR_CORRECT_M


def cards_url(community, month=MONTH) -> str:
    return f"{reverse('voucher-cards')}?period={month:%Y-%m}&community={community.code}"


def decoded(pdf: bytes, tmp_path) -> list:
    """Every QR code on every page, as zxing reads it off a 150 dpi rendering (QR codes only)."""
    import zxingcpp
    from PIL import Image

    (tmp_path / "cards.pdf").write_bytes(pdf)
    subprocess.run(["pdftoppm", "-r", "150", "-png", tmp_path / "cards.pdf", tmp_path / "page"], check=True)
    results = []
    for page in sorted(tmp_path.glob("page*.png")):
        # QR codes only: a 1D reader may take a run of type for a barcode and "read" digits
        results += zxingcpp.read_barcodes(Image.open(page), formats=zxingcpp.BarcodeFormat.QRCode)
    return results


def pdf_text(pdf: bytes, tmp_path) -> str:
    (tmp_path / "text.pdf").write_bytes(pdf)
    return subprocess.run(
        ["pdftotext", tmp_path / "text.pdf", "-"], check=True, capture_output=True, text=True
    ).stdout


def qrcode_version(text: str) -> int:
    code = qrcode.QRCode(error_correction=LEVEL_M)
    code.add_data(text)
    code.make(fit=True)
    return code.version


@pytest.fixture
def worker(world):
    setup_roles()  # a transactional test before this one may have flushed the role groups away
    return make_user("card-worker", "worker", region=world.community)


@pytest.fixture
def contacts(world):
    community = world.community
    community.contact_name, community.contact_phone = "陈晓燕", "0571-87991001"
    community.save()
    provider = world.contract.provider
    provider.contact_phone = "0571-88152468"
    provider.save()
    return provider


def in_community(world) -> list[Voucher]:
    return [v for v in world.vouchers.values() if v.senior.community_id == world.community.pk]


# --- The QR symbols ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "https://homecare.example.gov.cn/v/" + "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567" * 4 + "/",
        "http://127.0.0.1:8000/v/k3.2.aZ09_-aZ09_-aZ09_-aZ/",
        "12345678901234567890",
        "张秀兰",
        "x" * 150,
    ],
)
def test_a_symbol_is_the_one_qrcode_makes_with_the_mask_of_least_penalty(text):
    # Given qrcode's own symbol of the text under each of the eight masks, and their penalties
    symbols = []
    for mask in range(8):
        code = qrcode.QRCode(error_correction=LEVEL_M, mask_pattern=mask)
        code.add_data(text)
        code.make(fit=True)
        rows = tuple("".join("1" if module else "0" for module in row) for row in code.modules)
        symbols.append((qrcode.util.lost_point(code.modules), rows, code.version))
    _penalty, rows, version = min(symbols, key=lambda symbol: symbol[0])

    # When the cards make it, then it is the same symbol, module for module
    symbol = cards.qr_symbol(text)
    assert (symbol.rows, symbol.version) == (rows, version)
    # And its codewords are qrcode's (segments, padding, Reed–Solomon, interleaving)
    code = qrcode.QRCode(error_correction=LEVEL_M)
    code.add_data(text)
    payloads = cards._segment_bits(code.data_list)
    assert cards._fit(code.data_list, payloads) == version
    ours = cards._codewords(version, code.data_list, payloads)
    assert ours == qrcode.util.create_data(version, LEVEL_M, code.data_list)


# --- The community's PDF ----------------------------------------------------------------------


@needs_pdftoppm
def test_every_card_of_the_community_decodes_to_its_seniors_page(client, world, worker, contacts, tmp_path):
    # Given the worker's community, with three seniors holding this month's vouchers
    client.force_login(worker)

    # When the worker downloads the month's cards
    response = client.get(cards_url(world.community))

    # Then it is a PDF to download, not to keep in any cache, with the font embedded
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"].startswith("attachment; filename=")
    assert "no-store" in response["Cache-Control"]
    pdf = response.content
    assert pdf.startswith(b"%PDF") and b"/FontFile2" in pdf

    # And its QR codes are exactly the vouchers' URLs, level M, small enough to read off paper
    results = decoded(pdf, tmp_path)
    expected = {tokens.voucher_url(v) for v in in_community(world)}
    assert len(results) == len(expected) == 3
    assert {result.text for result in results} == expected
    for result in results:
        assert result.ec_level == "M"
        assert qrcode_version(result.text) <= 10
        assert cards.qr_symbol(result.text).version <= 10
        # And each opens the senior's page
        assert client.get(urlparse(result.text).path).status_code == 200


@needs_pdftotext
def test_a_card_shows_the_masked_name_and_whom_to_call_but_nothing_else_personal(
    client, world, worker, contacts, tmp_path
):
    client.force_login(worker)
    text = pdf_text(client.get(cards_url(world.community)).content, tmp_path)
    for voucher in in_community(world):
        senior = voucher.senior
        assert senior.masked_name in text
        assert senior.name not in text and senior.id_card_number not in text
        assert senior.id_card_number[-4:] not in text
    assert "保俶社区" in text and "陈晓燕" in text and "0571-87991001" in text
    assert contacts.name in text and "0571-88152468" in text
    assert "2026年11月" in text and "¥300.00" in text and "¥200.00" in text
    # The senior of the other community has no card here
    assert world.vouchers["far_away"].senior.masked_name not in text


def test_the_cards_come_in_the_registry_order_and_only_active_vouchers(world, worker):
    # Given the three seniors of the community (李建国 ljg, 王芳 wf, 张秀兰 zxl), one of whom moves away
    change_senior_status(
        senior=world.vouchers["paid"].senior, status="moved_away", on=dt.date(2026, 11, 10), by=worker
    )

    # When the month's cards are chosen, then they follow the pinyin order, the leaver left out
    chosen = list(vouchers_to_print(period=MONTH, community=world.community, user=worker))
    assert [v.senior.name for v in chosen] == ["李建国", "张秀兰"]
    # And another month, or a community outside the user's scope, has none
    assert not vouchers_to_print(period=dt.date(2026, 12, 1), community=world.community, user=worker).exists()
    assert not vouchers_to_print(period=MONTH, community=world.other_community, user=worker).exists()
    # A script (the command) sees them all
    assert vouchers_to_print(period=MONTH, community=world.other_community).count() == 1


def test_the_queries_do_not_grow_with_the_number_of_cards(client, world, worker, contacts):
    client.force_login(worker)
    with CaptureQueriesContext(connection) as few:
        assert client.get(cards_url(world.community)).status_code == 200
    for i in range(5):
        register_senior(
            id_card_number=make_id_card_number(birth_date=dt.date(1941, 1, 1 + i)),
            name=f"孙桂{i}英",
            community=world.community,
            three_no=True,
        )
    evaluate_eligibility(as_of=MONTH)
    from vouchers.services import issue_vouchers

    issue_vouchers(period=MONTH)
    assert Voucher.objects.filter(senior__community=world.community).count() == 8
    with CaptureQueriesContext(connection) as many:
        assert client.get(cards_url(world.community)).status_code == 200
    assert len(many) == len(few)


# --- The command ------------------------------------------------------------------------------


def test_the_command_writes_the_cards_and_says_how_many(world, tmp_path):
    out = io.StringIO()
    path = tmp_path / "cards.pdf"
    call_command(
        "print_vouchers",
        "--period",
        "2026-11",
        "--community",
        world.community.code,
        "--out",
        str(path),
        stdout=out,
    )
    assert path.read_bytes().startswith(b"%PDF")
    assert re.match(r"^3 cards of ", out.getvalue())


def test_the_command_refuses_an_unknown_community_and_a_month_without_vouchers(world, tmp_path):
    path = tmp_path / "cards.pdf"
    with pytest.raises(CommandError, match="no community with the code 'NOPE'"):
        call_command("print_vouchers", "--period", "2026-11", "--community", "NOPE", "--out", str(path))
    # A subdistrict is not a community
    with pytest.raises(CommandError, match="no community"):
        call_command(
            "print_vouchers",
            "--period",
            "2026-11",
            "--community",
            world.community.parent.code,
            "--out",
            str(path),
        )
    with pytest.raises(CommandError, match="no active vouchers for 2026-12"):
        call_command(
            "print_vouchers", "--period", "2026-12", "--community", world.community.code, "--out", str(path)
        )
    with pytest.raises(CommandError, match="YYYY-MM"):
        call_command(
            "print_vouchers", "--period", "2026-13", "--community", world.community.code, "--out", str(path)
        )
    assert not path.exists()


def test_a_missing_font_names_the_setting_and_the_package(client, world, worker, settings, tmp_path):
    settings.CARD_FONT_PATH = str(tmp_path / "no-such-font.ttc")
    path = tmp_path / "cards.pdf"
    with pytest.raises(CommandError, match=r"CARD_FONT_PATH.*fonts-wqy-microhei"):
        call_command(
            "print_vouchers", "--period", "2026-11", "--community", world.community.code, "--out", str(path)
        )
    assert not path.exists()
    # The page says the cards cannot be printed now, without the server's details
    client.force_login(worker)
    response = client.get(cards_url(world.community))
    assert response.status_code == 503
    assert "no-such-font" not in response.content.decode()


# --- One card, and the reissue that replaces it -----------------------------------------------


@needs_pdftoppm
def test_a_reissue_leads_to_the_new_cards_pdf_and_the_old_card_is_replaced(client, world, worker, tmp_path):
    voucher = world.vouchers["low_fee"]
    old_path = urlparse(tokens.voucher_url(voucher)).path
    client.force_login(worker)

    # When the worker reissues the lost card
    response = client.post(reverse("voucher-reissue", args=[voucher.pk]), {"reason": "遗失"}, follow=True)

    # Then the senior's page links to the new card's PDF, and the old card's page says "replaced"
    card_url = reverse("voucher-card", args=[voucher.pk])
    assert f'href="{card_url}"' in response.content.decode()
    assert client.get(old_path).status_code == 410
    # And the new card decodes to the new URL, which opens the senior's page
    voucher.refresh_from_db()
    pdf = client.get(card_url)
    assert pdf.status_code == 200 and pdf["Content-Type"] == "application/pdf"
    [result] = decoded(pdf.content, tmp_path)
    assert result.text == tokens.voucher_url(voucher) != "http://testserver" + old_path
    assert client.get(urlparse(result.text).path).status_code == 200
    # Printing changed nothing
    assert Voucher.objects.get(pk=voucher.pk).token_version == 2


def test_the_seniors_page_offers_the_current_card_to_print(client, world, worker):
    voucher = world.vouchers["subsidized"]
    client.force_login(worker)
    page = client.get(reverse("registry-senior", args=[voucher.senior_id])).content.decode()
    assert f'href="{reverse("voucher-card", args=[voucher.pk])}"' in page
    # A revoked voucher has no card to print
    change_senior_status(senior=voucher.senior, status="deceased", on=dt.date(2026, 11, 12), by=worker)
    page = client.get(reverse("registry-senior", args=[voucher.senior_id])).content.decode()
    assert f'href="{reverse("voucher-card", args=[voucher.pk])}"' not in page
    assert client.get(reverse("voucher-card", args=[voucher.pk])).status_code == 409


def test_the_registry_list_has_the_print_form(client, world, worker):
    client.force_login(worker)
    page = client.get(reverse("registry-list")).content.decode()
    assert f'action="{reverse("voucher-cards")}"' in page
    assert f'<input type="hidden" name="community" value="{world.community.code}">' in page
    assert 'value="2026-11"' in page and 'value="2026-12"' in page
    # The bureau chooses among the communities
    bureau = make_user("card-bureau", "bureau")
    client.force_login(bureau)
    page = client.get(reverse("registry-list")).content.decode()
    assert 'name="community" id="cards-community"' in page
    assert f'<option value="{world.other_community.code}"' in page


# --- Who may print ----------------------------------------------------------------------------


def test_only_those_who_see_the_vouchers_print_them(client, world, worker):
    one_card = reverse("voucher-card", args=[world.vouchers["low_fee"].pk])
    # Anonymous: sent to sign in
    for url in (cards_url(world.community), one_card):
        response = client.get(url)
        assert response.status_code == 302 and "/login/" in response["Location"]
    # A worker of another community: those cards do not exist for them
    client.force_login(make_user("other-worker", "worker", region=world.other_community))
    assert client.get(cards_url(world.community)).status_code == 404
    assert client.get(one_card).status_code == 404
    # Provider staff: not their kind of page
    staff = make_user("card-staff", "staff")
    StaffMemberFactory(user=staff, provider=ProviderFactory())
    client.force_login(staff)
    assert client.get(cards_url(world.community)).status_code == 403
    assert client.get(one_card).status_code == 403
    # The worker's own: a month and a community are needed, and a POST is refused
    client.force_login(worker)
    assert client.get(reverse("voucher-cards")).status_code == 400
    assert client.get(f"{reverse('voucher-cards')}?period=2026-11").status_code == 404
    assert client.post(cards_url(world.community)).status_code == 405
    response = client.get(cards_url(world.community, dt.date(2026, 12, 1)), HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 404 and "no vouchers for" in response.content.decode()


def test_a_bureau_administrator_of_one_district_prints_only_that_districts_cards(world, client):
    from config.roles import setup_roles
    from tests.e2e.conftest import make_user
    from vouchers.selectors import visible_to

    setup_roles()
    district = world.community.parent.parent
    bureau = make_user("district-bureau", "bureau", region=district)
    client.force_login(bureau)
    own, elsewhere = world.vouchers["low_fee"], world.vouchers["far_away"]

    assert set(visible_to(bureau)) == {
        v for v in world.vouchers.values() if v.senior.community == world.community
    }
    assert client.get(reverse("voucher-card", args=[own.pk])).status_code == 200
    assert client.get(reverse("voucher-card", args=[elsewhere.pk])).status_code == 404
