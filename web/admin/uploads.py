"""Product image uploads (one or several files at once), removal and order, on the product's edit
page. The order is set by position numbers posted in a form (admin-images.js fills them in after
a drag) or one step at a time (move).

An upload is checked before anything is kept, and a refused one leaves nothing behind (no file,
no row): it is written to a temporary file in the product's media directory while it arrives,
refused once it passes `max_upload_bytes`, opened with Pillow (header only: format and pixel
count, which stops decompression bombs before anything is decoded), renamed to an unguessable
name, and only then given its row, in a transaction with the outbox event that has the image
actor make the renditions. If that transaction fails, the file is deleted.

Two ways the body arrives: a plain HTML form repeats the CSRF token as a form field, so the CSRF
check (web.cookies) has already parsed the form, with aiohttp spooling the file to disk within the
application's client_max_size; a script sending `X-CSRF-Token` leaves the body unread, and it is
streamed here, bounded only by `max_upload_bytes`.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from pathlib import Path

from aiohttp import BodyPartReader, web
from aiohttp.web_request import FileField

from storage import images, media, transaction
from storage.images import ImageNotFound
from storage.media import ImageInfo, InvalidImage, NotAnImage, Spool, UploadTooLarge
from web.admin.products import editor_for, product_id_of, product_or_404
from web.catalog import catalog_changed, product_changed
from web.cookies import CSRF_HEADER
from web.fields import BIGINT_MAX, text_problem, whole_number
from web.keys import DB, REQUEST_ID, SETTINGS
from web.params import path_id, posted_form

CHUNK_BYTES = 64 * 1024
MAX_ALT_LENGTH = 200
MAX_FILES = 10  # images in one upload
MAX_PARTS = MAX_FILES + 6  # csrf_token, alt, the images, and room for a browser's extras
MAX_POSITION = 1000
POSITION_FIELD = re.compile(r"^position-([0-9]{1,19})$")


class UploadRefused(Exception):
    """The upload form is wrong in a way the page shows beside `field`."""

    def __init__(self, field: str, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.field, self.status = field, status


async def upload_image(request: web.Request) -> web.Response:
    """Store checked images (one or several, each through the same checks) and their rows;
    303 back to the edit page, or the page with the error. One bad file refuses them all."""
    settings = request.config_dict[SETTINGS]
    db = request.config_dict[DB]
    product_id = product_id_of(request)
    product = await product_or_404(db.primary, product_id)
    spools: list[Spool] = []

    def new_spool() -> Spool:
        if len(spools) >= MAX_FILES:
            raise UploadRefused("image", f"Upload at most {MAX_FILES} images at a time.")
        spool = Spool(
            settings.media_dir, media.product_directory(product_id), settings.max_upload_bytes
        )
        spools.append(spool)
        return spool

    kept: list[tuple[str, ImageInfo]] = []
    which = 0  # the chosen file a refusal is about (1 is the first), for its message
    try:
        alt = await _receive(request, new_spool)
        for number, spool in enumerate(spools, start=1):
            which = number
            temporary = await spool.written()
            if temporary is None:
                continue  # an empty part: the browser's "no file chosen"
            info = await asyncio.to_thread(media.inspect, temporary)
            relative = media.original_path(product_id, info.extension)
            await spool.keep(relative)
            kept.append((relative, info))
        if not kept:
            raise UploadRefused("image", "Choose an image file, or several, to upload.")
    except (UploadTooLarge, InvalidImage, UploadRefused) as exc:
        await _undo(settings.media_dir, spools, kept)
        status = exc.status if isinstance(exc, UploadRefused) else 422
        status = 413 if isinstance(exc, UploadTooLarge) else status
        field = exc.field if isinstance(exc, UploadRefused) else "image"
        message = str(exc)
        if len(spools) > 1 and not isinstance(exc, UploadRefused):
            which = which or len(spools)  # 0: refused while arriving, so the last one so far
            message = f"Image {which} of those chosen: {message} Nothing was uploaded."
        return await editor_for(request, product, image_errors={field: message}, status=status)
    except BaseException:
        await _undo(settings.media_dir, spools, kept)
        raise
    try:
        async with transaction(db) as conn:
            for relative, info in kept:
                await images.add_original(
                    conn,
                    product_id,
                    path=relative,
                    width=info.width,
                    height=info.height,
                    alt=alt,
                    request_id=request.get(REQUEST_ID),
                )
            await product_changed(conn, request, product_id)
    except BaseException:
        await asyncio.to_thread(media.remove, settings.media_dir, [path for path, _ in kept])
        raise
    await catalog_changed(request)
    raise web.HTTPSeeOther(f"/admin/products/{product_id}?saved=1#images")


async def _undo(media_dir: Path, spools: list[Spool], kept: list[tuple[str, ImageInfo]]) -> None:
    """Leave nothing of a refused upload: the temporary files and the ones already renamed."""
    for spool in spools:
        await spool.discard()
    if kept:
        await asyncio.to_thread(media.remove, media_dir, [path for path, _ in kept])


async def _receive(request: web.Request, new_spool: Callable[[], Spool]) -> str:
    """Write each posted file into a spool of its own; returns the alt text. Raises
    UploadRefused and InvalidImage (UploadTooLarge while a file streams)."""
    if request.content_type != "multipart/form-data":
        raise UploadRefused("image", "Send the image as a file upload (multipart/form-data).", 415)
    if request.headers.get(CSRF_HEADER) is None:
        return await _from_parsed_form(request, new_spool)
    return await _streamed(request, new_spool)


async def _from_parsed_form(request: web.Request, new_spool: Callable[[], Spool]) -> str:
    posted = await posted_form(request)  # already parsed by the CSRF check, so not read again
    uploads = [each for each in posted.getall("image", []) if isinstance(each, FileField)]
    try:
        for upload in uploads:
            spool = new_spool()
            while chunk := await asyncio.to_thread(upload.file.read, CHUNK_BYTES):
                await spool.write(chunk)
    finally:
        for upload in uploads:
            upload.file.close()  # aiohttp's temporary files of the parsed form
    alt = posted.get("alt")
    return _alt_text(alt if isinstance(alt, str) else "")


async def _streamed(request: web.Request, new_spool: Callable[[], Spool]) -> str:
    reader = await request.multipart()
    alt = ""
    for _ in range(MAX_PARTS):
        part = await reader.next()
        if part is None:
            return _alt_text(alt)
        if not isinstance(part, BodyPartReader):
            raise NotAnImage()
        if part.name == "image" and part.filename is not None:
            spool = new_spool()
            while chunk := await part.read_chunk(CHUNK_BYTES):
                await spool.write(chunk)
        elif part.name == "alt":
            alt = await _small_text(part)
        else:
            await _small_text(part)  # the CSRF token (already checked from the header)
    raise UploadRefused("image", "The form has too many parts.", 400)


async def _small_text(part: BodyPartReader, limit: int = 4 * MAX_ALT_LENGTH) -> str:
    """A short text field, read with a bound (a field is not a second upload)."""
    data = bytearray()
    while chunk := await part.read_chunk(1024):
        data += chunk
        if len(data) > limit:
            raise UploadRefused("alt", f"Use at most {MAX_ALT_LENGTH} characters.")
    return data.decode("utf-8", errors="replace")


def _alt_text(alt: str) -> str:
    alt = " ".join(alt.split())
    if len(alt) > MAX_ALT_LENGTH:
        raise UploadRefused("alt", f"Use at most {MAX_ALT_LENGTH} characters.")
    if problem := text_problem(alt):
        raise UploadRefused("alt", f"The text {problem}.")
    return alt


async def delete_image(request: web.Request) -> web.Response:
    """Remove an image: its row (with the product's outbox event), then, after commit, its files."""
    db = request.config_dict[DB]
    product_id = product_id_of(request)
    try:
        async with transaction(db) as conn:
            image = await images.delete(conn, product_id, path_id(request, "image_id"))
            await product_changed(conn, request, product_id)
    except ImageNotFound:
        raise web.HTTPNotFound(text="No such image.") from None
    await asyncio.to_thread(media.remove, request.config_dict[SETTINGS].media_dir, image.files)
    await catalog_changed(request)
    raise web.HTTPSeeOther(f"/admin/products/{product_id}#images")


async def move_image(request: web.Request) -> web.Response:
    """Move an image one place earlier or later (`direction` up or down)."""
    db = request.config_dict[DB]
    product_id = product_id_of(request)
    posted = await posted_form(request)
    step = {"up": -1, "down": 1}.get(str(posted.get("direction", "")))
    if step is None:
        raise web.HTTPBadRequest(text="direction must be up or down")
    try:
        async with transaction(db) as conn:
            await images.move(conn, product_id, path_id(request, "image_id"), step)
            await product_changed(conn, request, product_id)
    except ImageNotFound:
        raise web.HTTPNotFound(text="No such image.") from None
    await catalog_changed(request)
    raise web.HTTPSeeOther(f"/admin/products/{product_id}#images")


async def reorder_images(request: web.Request) -> web.Response:
    """Put the images in the order of the posted position numbers (position-<image id>: 1 is
    first), as typed without JavaScript or filled in by admin-images.js after a drag."""
    db = request.config_dict[DB]
    product = await product_or_404(db.primary, product_id_of(request))
    product_id = product.id
    posted = await posted_form(request)
    wanted: dict[int, int] = {}
    for key, value in posted.items():
        match = POSITION_FIELD.match(key)
        if match is None:
            continue
        image_id = whole_number(match.group(1), 1, BIGINT_MAX)
        position = whole_number(value, 1, MAX_POSITION) if isinstance(value, str) else None
        if image_id is None or position is None:
            message = f"Number the images 1, 2, 3… (whole numbers up to {MAX_POSITION})."
            return await editor_for(request, product, image_errors={"order": message}, status=422)
        wanted[image_id] = position
    try:
        async with transaction(db) as conn:
            await images.reorder(conn, product_id, wanted)
            await product_changed(conn, request, product_id)
    except ImageNotFound:
        raise web.HTTPNotFound(text="No such image.") from None
    await catalog_changed(request)
    raise web.HTTPSeeOther(f"/admin/products/{product_id}?saved=1#images")


def add_routes(app: web.Application) -> None:
    """The image routes on the /admin application."""
    product = "/products/{id:[0-9]{1,19}}/images"
    app.router.add_post(product, upload_image)
    app.router.add_post(product + "/order", reorder_images)
    app.router.add_post(product + "/{image_id:[0-9]{1,19}}/delete", delete_image)
    app.router.add_post(product + "/{image_id:[0-9]{1,19}}/move", move_image)
