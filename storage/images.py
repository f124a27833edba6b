"""Product image rows. The files live under the media directory (storage.media); rows name them.

A row is inserted after its original is on disk and deleted before its files are removed, so a
row never names a file that was not written; a failed insert leaves a file for the caller to
remove. The image actor fills `renditions` later.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from domain.events import MAKE_RENDITIONS
from storage import outbox
from storage.errors import NotFound, ProductNotFound

IMAGE_COLUMNS = "id, product_id, path, width, height, alt, renditions, position"
# New images go last. The product row's KEY SHARE lock (taken by the foreign key) does not
# serialise two uploads, so two may share a position; `id` breaks the tie when listing.
INSERT_IMAGE = f"""
    INSERT INTO product_images (product_id, path, width, height, alt, position)
    SELECT $1, $2, $3, $4, $5, coalesce(max(position) + 1, 0)
    FROM product_images WHERE product_id = $1
    RETURNING {IMAGE_COLUMNS}
"""
# The image actor holds this lock while it writes renditions, so a delete waits for it and then
# returns the renditions to remove as well.
LOCK_IMAGE = f"SELECT {IMAGE_COLUMNS} FROM product_images WHERE id = $1 FOR UPDATE"
DELETE_IMAGE = f"""
    DELETE FROM product_images WHERE id = $1 AND product_id = $2 RETURNING {IMAGE_COLUMNS}
"""
SET_RENDITIONS = "UPDATE product_images SET renditions = $2 WHERE id = $1"
# Swap places with the neighbour before (-1) or after (+1) in display order; both rows get
# distinct positions, which repairs ties left by concurrent uploads.
LIST_ORDER = "SELECT id FROM product_images WHERE product_id = $1 ORDER BY position, id FOR UPDATE"
SET_POSITION = "UPDATE product_images SET position = $2 WHERE id = $1"


class ImageNotFound(NotFound):
    """No such image (for this product)."""

    def __init__(self, image_id: int) -> None:
        super().__init__(f"image {image_id} does not exist")
        self.image_id = image_id


@dataclass(frozen=True)
class ProductImage:
    id: int
    product_id: int
    path: str  # the original, relative to the media directory
    width: int
    height: int
    alt: str
    renditions: dict[str, str]  # width -> path relative to the media directory
    position: int

    @property
    def files(self) -> list[str]:
        """Every file of this image: the original and its renditions."""
        return [self.path, *self.renditions.values()]


def _image(row: Any) -> ProductImage:
    return ProductImage(**dict(row))


async def insert(
    conn: asyncpg.Connection, product_id: int, *, path: str, width: int, height: int, alt: str
) -> ProductImage:
    """Add an image after the product's others; raises ProductNotFound (transaction unusable)."""
    try:
        return _image(await conn.fetchrow(INSERT_IMAGE, product_id, path, width, height, alt))
    except asyncpg.ForeignKeyViolationError:
        raise ProductNotFound(product_id) from None


async def add_original(
    conn: asyncpg.Connection,
    product_id: int,
    *,
    path: str,
    width: int,
    height: int,
    alt: str,
    request_id: str | None = None,
) -> ProductImage:
    """A stored original's row and, in the same transaction, the MAKE_RENDITIONS event that has
    the image actor make its renditions: what a staff upload and the demo seed both do.

    Raises ProductNotFound (transaction unusable)."""
    image = await insert(conn, product_id, path=path, width=width, height=height, alt=alt)
    await outbox.add(conn, MAKE_RENDITIONS, request_id=request_id, image_id=image.id)
    return image


async def lock(conn: asyncpg.Connection, image_id: int) -> ProductImage | None:
    """The image, locked until the caller's transaction ends; None when it was deleted."""
    row = await conn.fetchrow(LOCK_IMAGE, image_id)
    return None if row is None else _image(row)


async def delete(conn: asyncpg.Connection, product_id: int, image_id: int) -> ProductImage:
    """Delete the product's image row and return it (its files are the caller's to remove after
    commit); raises ImageNotFound."""
    row = await conn.fetchrow(DELETE_IMAGE, image_id, product_id)
    if row is None:
        raise ImageNotFound(image_id)
    return _image(row)


async def set_renditions(
    conn: asyncpg.Connection, image_id: int, renditions: dict[str, str]
) -> None:
    """Record the image's renditions (width -> relative path)."""
    await conn.execute(SET_RENDITIONS, image_id, renditions)


async def move(conn: asyncpg.Connection, product_id: int, image_id: int, step: int) -> None:
    """Move an image one place earlier (step -1) or later (+1); raises ImageNotFound.

    Renumbers the product's images 0..n-1 under row locks; at either end it changes nothing.
    """
    order = [row["id"] for row in await conn.fetch(LIST_ORDER, product_id)]
    if image_id not in order:
        raise ImageNotFound(image_id)
    at = order.index(image_id)
    to = at + step
    if 0 <= to < len(order):
        order[at], order[to] = order[to], order[at]
    for position, each in enumerate(order):
        await conn.execute(SET_POSITION, each, position)


async def reorder(conn: asyncpg.Connection, product_id: int, wanted: dict[int, int]) -> None:
    """Put the product's images in the order of `wanted` (image id -> position number, as staff
    typed them: 1 first; on a tie the image whose number changed goes first, so typing 1 for
    the third image makes it the first; images left out keep their place).
    Renumbers 0..n-1 under row locks; raises ImageNotFound for an id not of this product."""
    order = [row["id"] for row in await conn.fetch(LIST_ORDER, product_id)]
    for image_id in wanted:
        if image_id not in order:
            raise ImageNotFound(image_id)
    now = {image_id: at for at, image_id in enumerate(order)}

    def place(image_id: int) -> tuple[int, int, int]:
        was = now[image_id] + 1
        to = wanted.get(image_id, was)
        return (to, 0 if to != was else 1, was)

    order.sort(key=place)
    for position, each in enumerate(order):
        await conn.execute(SET_POSITION, each, position)
