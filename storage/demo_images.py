"""Pictures for the demo catalog, drawn with Pillow: plain, deterministic, colour-true.

Each picture is the product's colour as background, one simple shape in a lighter or darker
tone, and the product's initials. A product with colours gets one picture per colour (up to
MAX_PER_PRODUCT), in the order its variants list them; one without gets PICTURES_WITHOUT_COLOUR
in a tone of its own, chosen from its name. The shape drawn varies with the picture's place, and
its proportions (square, landscape, portrait) with the place and the product, so lists show
what staff uploads look like: mixed.

The same product name, colour and place always give the same JPEG bytes (no clock, no random
state: Pillow's encoder and its bundled font are the only inputs besides the arguments).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from io import BytesIO

from PIL import Image, ImageDraw, ImageFont

MAX_PER_PRODUCT = 3
PICTURES_WITHOUT_COLOUR = 2
# (width, height): square, landscape, portrait; all wider than 640, so renditions 320 and 640.
SIZES = ((720, 720), (880, 660), (660, 880))
# Tones for products without a colour attribute: muted, so the initials read on each.
NEUTRAL_TONES = ("#5b6c8f", "#8f6b5b", "#5b8f7a", "#7a5b8f", "#8f845b", "#5b8a8f")
# JPEG: a few milliseconds to encode where PNG takes four times as long (seeding stays quick);
# flat colours survive it within a step or two of each channel. Fixed settings: the bytes must
# not depend on Pillow's defaults.
JPEG_QUALITY = 90
JPEG_SUBSAMPLING = 2  # 4:2:0, twice as quick to encode as 4:4:4; flat colours keep their tone


@dataclass(frozen=True)
class Picture:
    """One demo picture to draw: what it shows and which of the product's it is."""

    name: str  # the product's name (for the initials and the tone)
    colour: str  # "#rrggbb"
    colour_name: str  # "Red"; "" for a product without colours
    place: int  # 0 for the first (the card's) picture

    @property
    def alt(self) -> str:
        """Alt text: the product, and its colour where the picture shows one."""
        return f"{self.name} in {self.colour_name}" if self.colour_name else self.name


def pictures_of(name: str, colours: list[tuple[str, str]]) -> list[Picture]:
    """The pictures of a product from its colours ([(name, "#rrggbb")], variants' order)."""
    if colours:
        return [
            Picture(name, swatch, colour_name, place)
            for place, (colour_name, swatch) in enumerate(colours[:MAX_PER_PRODUCT])
        ]
    tone = NEUTRAL_TONES[zlib.crc32(name.encode()) % len(NEUTRAL_TONES)]
    return [Picture(name, tone, "", place) for place in range(PICTURES_WITHOUT_COLOUR)]


def initials(name: str) -> str:
    """Up to two letters: the first of the first two words ("Heritage Cotton T-Shirt": "HC")."""
    letters = [word[0] for word in name.split() if word[:1].isalnum()]
    return "".join(letters[:2]).upper() or "?"


def _rgb(colour: str) -> tuple[int, int, int]:
    value = int(colour.lstrip("#"), 16)
    return (value >> 16) & 255, (value >> 8) & 255, value & 255


def _is_light(rgb: tuple[int, int, int]) -> bool:
    red, green, blue = rgb
    return 0.299 * red + 0.587 * green + 0.114 * blue > 150


def _mix(rgb: tuple[int, int, int], toward: int, share: float) -> tuple[int, int, int]:
    red, green, blue = (round(c + (toward - c) * share) for c in rgb)
    return red, green, blue


def draw(picture: Picture) -> bytes:
    """The picture as JPEG bytes. Blocking (about 5 ms on an idle core): run it in a thread."""
    # The proportions turn with the place, from a start of the product's own: lists mix them.
    width, height = SIZES[(picture.place + zlib.crc32(picture.name.encode())) % len(SIZES)]
    background = _rgb(picture.colour)
    light = _is_light(background)
    shape = _mix(background, 0 if light else 255, 0.18)
    ink = (39, 39, 42) if light else (255, 255, 255)
    image = Image.new("RGB", (width, height), background)
    pen = ImageDraw.Draw(image)
    side = min(width, height) * 0.62
    left, top = (width - side) / 2, (height - side) / 2
    box = (left, top, left + side, top + side)
    kind = picture.place % 3
    if kind == 0:
        pen.ellipse(box, fill=shape)
    elif kind == 1:
        pen.rounded_rectangle(box, radius=side * 0.12, fill=shape)
    else:
        pen.regular_polygon((width / 2, height / 2, side / 2), 6, fill=shape)
    font = ImageFont.load_default(size=round(side * 0.36))
    pen.text((width / 2, height / 2), initials(picture.name), fill=ink, font=font, anchor="mm")
    out = BytesIO()
    image.save(out, "JPEG", quality=JPEG_QUALITY, subsampling=JPEG_SUBSAMPLING, optimize=False)
    return out.getvalue()
