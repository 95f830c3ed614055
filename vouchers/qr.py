"""QR images of voucher URLs, sized for paper and poor eyesight: low density, a wide margin."""

import qrcode
import qrcode.constants


def make_qr_image(data: str):
    # Level M survives smudges and folds; box_size 10 prints about 3 cm wide for a short URL.
    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, box_size=10, border=4)
    code.add_data(data)
    code.make(fit=True)
    return code.make_image(fill_color="black", back_color="white")


def write_qr_png(data: str, path) -> None:
    make_qr_image(data).save(path, format="PNG")
