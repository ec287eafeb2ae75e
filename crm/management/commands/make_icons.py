"""Draw the app's icons (static/icons: PNGs for the PWA manifest and apple-touch, favicon.ico)
with Pillow; run once when the mark changes, and commit the files."""

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

SIZES = (192, 512)
TOP, BOTTOM = (99, 102, 241), (168, 85, 247)  # the brand mark's gradient (app.css)


def draw(size: int, *, maskable: bool = False):
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("RGB", (size, size), (22, 26, 43))
    draw = ImageDraw.Draw(image)
    inset = int(size * (0.1 if maskable else 0.0))
    for y in range(inset, size - inset):
        t = (y - inset) / max(1, size - 2 * inset - 1)
        color = tuple(int(a + (b - a) * t) for a, b in zip(TOP, BOTTOM, strict=True))
        draw.line([(inset, y), (size - inset - 1, y)], fill=color)
    if not maskable:  # rounded corners on the plain icon
        mask = Image.new("L", (size, size), 0)
        ImageDraw.Draw(mask).rounded_rectangle(
            [0, 0, size - 1, size - 1], radius=size // 5, fill=255
        )
        background = Image.new("RGB", (size, size), (255, 255, 255))
        image = Image.composite(image, background, mask)
        draw = ImageDraw.Draw(image)
    try:
        font = ImageFont.truetype("DejaVuSans-Bold.ttf", int(size * 0.55))
    except OSError:
        font = ImageFont.load_default(size=int(size * 0.55))
    draw.text((size / 2, size / 2), "S", font=font, fill=(255, 255, 255), anchor="mm")
    return image


class Command(BaseCommand):
    help = __doc__

    def handle(self, *args, **options):
        folder = Path(settings.BASE_DIR) / "static" / "icons"
        folder.mkdir(parents=True, exist_ok=True)
        for size in SIZES:
            draw(size).save(folder / f"icon-{size}.png", optimize=True)
            draw(size, maskable=True).save(folder / f"icon-maskable-{size}.png", optimize=True)
        draw(64).save(folder / "favicon.ico", sizes=[(16, 16), (32, 32), (48, 48)])
        self.stdout.write(f"Icons written to {folder}.")
