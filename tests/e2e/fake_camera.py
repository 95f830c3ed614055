"""A camera for headless Chromium that shows a QR code: a .y4m video (raw YUV 4:2:0 frames) that
Chromium plays, looped, as its webcam with
`--use-fake-device-for-media-stream --use-file-for-fake-video-capture=PATH`. Pure Python, no
ffmpeg: the QR as greyscale on a grey frame is the Y plane; U and V are flat grey (0x80)."""

from pathlib import Path

import qrcode
from PIL import Image

WIDTH, HEIGHT = 640, 480
BACKGROUND = 0xA0  # a grey room, not a white page: the decoder must find the code's quiet zone
FRAMES = 10


def qr_image(text: str, *, size: int = 360) -> Image.Image:
    """`text` as a QR code (level M, as the printed cards), `size` pixels square, greyscale."""
    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=4)
    code.add_data(text)
    code.make(fit=True)
    return (
        code.make_image(fill_color="black", back_color="white")
        .get_image()
        .convert("L")
        .resize((size, size), Image.Resampling.NEAREST)
    )


def chromium_camera_args(path: Path) -> list[str]:
    return [
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={path}",
    ]


def write_y4m(path: Path, text: str) -> Path:
    """A short looped video of the QR code of `text`, centred on a grey frame, at `path`."""
    frame = Image.new("L", (WIDTH, HEIGHT), BACKGROUND)
    qr = qr_image(text, size=min(WIDTH, HEIGHT) - 80)
    frame.paste(qr, ((WIDTH - qr.width) // 2, (HEIGHT - qr.height) // 2))
    luma = frame.tobytes()
    chroma = bytes([0x80]) * ((WIDTH // 2) * (HEIGHT // 2))
    with path.open("wb") as video:
        video.write(f"YUV4MPEG2 W{WIDTH} H{HEIGHT} F30:1 Ip A1:1 C420jpeg\n".encode("ascii"))
        for _ in range(FRAMES):
            video.write(b"FRAME\n" + luma + chroma + chroma)
    return path
