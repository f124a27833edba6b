"""Product image uploads, removal and order, on the product's edit page.

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

from aiohttp import BodyPartReader, web
from aiohttp.web_request import FileField

from storage import images, media, transaction
from storage.images import ImageNotFound
from storage.media import InvalidImage, NotAnImage, Spool, UploadTooLarge
from web.admin.products import editor_for, product_id_of, product_or_404
from web.catalog import catalog_changed, product_changed
from web.cookies import CSRF_HEADER
from web.fields import text_problem
from web.keys import DB, REQUEST_ID, SETTINGS
from web.params import path_id, posted_form

CHUNK_BYTES = 64 * 1024
MAX_ALT_LENGTH = 200
MAX_PARTS = 8  # csrf_token, alt, image, and room for a browser's extras


class UploadRefused(Exception):
    """The upload form is wrong in a way the page shows beside `field`."""

    def __init__(self, field: str, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.field, self.status = field, status


async def upload_image(request: web.Request) -> web.Response:
    """Store a checked image and its row; 303 back to the edit page, or the page with the error."""
    settings = request.config_dict[SETTINGS]
    db = request.config_dict[DB]
    product_id = product_id_of(request)
    product = await product_or_404(db.primary, product_id)
    spool = Spool(
        settings.media_dir, media.product_directory(product_id), settings.max_upload_bytes
    )
    try:
        alt = await _receive(request, spool)
        temporary = await spool.written()
        if temporary is None:
            raise UploadRefused("image", "Choose an image file to upload.")
        info = await asyncio.to_thread(media.inspect, temporary)
        relative = media.original_path(product_id, info.extension)
        await spool.keep(relative)
    except UploadTooLarge as exc:
        await spool.discard()
        return await editor_for(request, product, image_errors={"image": str(exc)}, status=413)
    except InvalidImage as exc:
        await spool.discard()
        return await editor_for(request, product, image_errors={"image": str(exc)}, status=422)
    except UploadRefused as exc:
        await spool.discard()
        errors = {exc.field: str(exc)}
        return await editor_for(request, product, image_errors=errors, status=exc.status)
    except BaseException:
        await spool.discard()
        raise
    try:
        async with transaction(db) as conn:
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
        await asyncio.to_thread(media.remove, settings.media_dir, [relative])
        raise
    await catalog_changed(request)
    raise web.HTTPSeeOther(f"/admin/products/{product_id}?saved=1#images")


async def _receive(request: web.Request, spool: Spool) -> str:
    """Write the posted file into `spool`; returns the alt text. Raises UploadRefused and
    InvalidImage (UploadTooLarge while the file streams)."""
    if request.content_type != "multipart/form-data":
        raise UploadRefused("image", "Send the image as a file upload (multipart/form-data).", 415)
    if request.headers.get(CSRF_HEADER) is None:
        return await _from_parsed_form(request, spool)
    return await _streamed(request, spool)


async def _from_parsed_form(request: web.Request, spool: Spool) -> str:
    posted = await posted_form(request)  # already parsed by the CSRF check, so not read again
    upload = posted.get("image")
    if not isinstance(upload, FileField):
        raise UploadRefused("image", "Choose an image file to upload.")
    try:
        while chunk := await asyncio.to_thread(upload.file.read, CHUNK_BYTES):
            await spool.write(chunk)
    finally:
        upload.file.close()  # aiohttp's temporary file of the parsed form
    alt = posted.get("alt")
    return _alt_text(alt if isinstance(alt, str) else "")


async def _streamed(request: web.Request, spool: Spool) -> str:
    reader = await request.multipart()
    alt = ""
    received = False
    for _ in range(MAX_PARTS):
        part = await reader.next()
        if part is None:
            return _alt_text(alt)
        if not isinstance(part, BodyPartReader):
            raise NotAnImage()
        if part.name == "image" and part.filename is not None:
            if received:  # it would be appended to the first one's file
                raise UploadRefused("image", "Upload one image at a time.")
            received = True
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


def add_routes(app: web.Application) -> None:
    """The image routes on the /admin application."""
    product = "/products/{id:[0-9]{1,19}}/images"
    app.router.add_post(product, upload_image)
    app.router.add_post(product + "/{image_id:[0-9]{1,19}}/delete", delete_image)
    app.router.add_post(product + "/{image_id:[0-9]{1,19}}/move", move_image)
