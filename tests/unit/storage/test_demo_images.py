"""The demo catalog's pictures: deterministic bytes, the product's colour, mixed proportions."""

from __future__ import annotations

from io import BytesIO

from PIL import Image

from storage.demo_images import (
    MAX_PER_PRODUCT,
    PICTURES_WITHOUT_COLOUR,
    Picture,
    draw,
    initials,
    pictures_of,
)

COLOURS = [("Red", "#c0392b"), ("White", "#ffffff"), ("Navy", "#1f2a44"), ("Sand", "#d8c3a5")]


def rgb(colour: str) -> tuple[int, int, int]:
    value = int(colour[1:], 16)
    return value >> 16, (value >> 8) & 255, value & 255


def close(actual: tuple[int, ...], expected: tuple[int, ...], tolerance: int = 4) -> bool:
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True))


def test_the_same_picture_gives_the_same_bytes_and_another_gives_others() -> None:
    picture = Picture("Heritage Cotton T-Shirt", "#c0392b", "Red", 0)
    assert draw(picture) == draw(Picture("Heritage Cotton T-Shirt", "#c0392b", "Red", 0))
    assert draw(picture) != draw(Picture("Heritage Cotton T-Shirt", "#2f6db5", "Blue", 0))
    assert draw(picture) != draw(Picture("Oak Desk Lamp", "#c0392b", "Red", 0))


def test_each_picture_is_its_colour_with_a_shape_and_initials() -> None:
    for place, (name, swatch) in enumerate(COLOURS[:3]):
        with Image.open(BytesIO(draw(Picture("Linen Tee", swatch, name, place)))) as image:
            assert image.format == "JPEG"
            image = image.convert("RGB")
            width, height = image.size
            corners = [(4, 4), (width - 5, 4), (4, height - 5), (width - 5, height - 5)]
            for corner in corners:
                assert close(image.getpixel(corner), rgb(swatch)), (name, corner)
            # The middle holds the shape and the initials: other tones than the background.
            middle = image.crop((width // 4, height // 4, 3 * width // 4, 3 * height // 4))
            tones = {tone for _, tone in middle.getcolors(maxcolors=1 << 16) or []}
            assert any(not close(tone, rgb(swatch), 12) for tone in tones)


def test_the_places_have_mixed_proportions() -> None:
    sizes = set()
    for place in range(3):
        with Image.open(BytesIO(draw(Picture("Tee", "#2e7d32", "Green", place)))) as image:
            sizes.add(image.width / image.height)
    assert len(sizes) == 3  # square, landscape and portrait
    assert any(ratio > 1 for ratio in sizes) and any(ratio < 1 for ratio in sizes)


def test_a_product_gets_one_picture_per_colour_up_to_the_cap() -> None:
    pictures = pictures_of("Merino Crew", COLOURS)
    assert len(pictures) == MAX_PER_PRODUCT
    assert [(p.colour_name, p.colour, p.place) for p in pictures] == [
        (name, swatch, place) for place, (name, swatch) in enumerate(COLOURS[:MAX_PER_PRODUCT])
    ]
    assert pictures[0].alt == "Merino Crew in Red"
    assert len(pictures_of("Merino Crew", COLOURS[:1])) == 1


def test_a_product_without_colours_gets_a_tone_of_its_own_every_time() -> None:
    first = pictures_of("Steel Cable", [])
    assert len(first) == PICTURES_WITHOUT_COLOUR
    assert first == pictures_of("Steel Cable", [])
    assert {p.colour for p in first} == {first[0].colour}
    assert first[0].alt == "Steel Cable"


def test_initials() -> None:
    assert initials("Heritage Cotton T-Shirt") == "HC"
    assert initials("lamp") == "L"
    assert initials("— — —") == "?"
