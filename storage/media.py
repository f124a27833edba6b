"""Image files under the media directory: checked uploads, atomic writes, resized renditions.

Files are written to a temporary name in their final directory and renamed into place, so a
reader (NGINX, the actor) never sees half a file. Uploads are checked with Pillow reading only
the header first: the pixel count is refused above MAX_PIXELS before anything is decoded, which
is what stops a decompression bomb (a small file that would inflate to gigabytes). Pillow's own
bomb check is a warning below twice its limit; both its warning and its error count as a refusal.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import tempfile
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from PIL import Image, ImageOps, UnidentifiedImageError

from storage.errors import Invalid

# Pillow format -> the extension the original is stored under (never the uploader's).
ACCEPTED_FORMATS = {"JPEG": "jpg", "MPO": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif"}
PILLOW_FORMATS = ("JPEG", "PNG", "WEBP", "GIF")  # the only parsers an upload is opened with
MAX_PIXELS = 40_000_000
RENDITION_WIDTHS = (320, 640, 1280)
RENDITION_QUALITY = 80
EXIF_ORIENTATION = 0x0112
SIDEWAYS = {5, 6, 7, 8}  # EXIF orientations shown rotated by 90 degrees


class InvalidImage(Invalid):
    """An upload that cannot become a product image; the message is for the person uploading."""


class NotAnImage(InvalidImage):
    def __init__(self) -> None:
        super().__init__("This file is not an image we can read (JPEG, PNG, WebP or GIF).")


class UnsupportedImageFormat(InvalidImage):
    def __init__(self, image_format: str) -> None:
        super().__init__(f"{image_format} images are not accepted: use JPEG, PNG, WebP or GIF.")
        self.image_format = image_format


class ImageTooLarge(InvalidImage):
    """Too many pixels: decoding it would take too much memory (or it is a decompression bomb)."""

    def __init__(self, width: int | None = None, height: int | None = None) -> None:
        size = f"{width} x {height} pixels" if width and height else "too many pixels"
        limit = MAX_PIXELS // 1_000_000
        super().__init__(f"The image is {size}; the limit is {limit} megapixels.")


class UploadTooLarge(InvalidImage):
    def __init__(self, limit_bytes: int) -> None:
        super().__init__(f"The file is larger than {_megabytes(limit_bytes)}.")
        self.limit_bytes = limit_bytes


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.3g} MB"


@dataclass(frozen=True)
class ImageInfo:
    format: str
    extension: str
    width: int  # as shown, after the EXIF orientation
    height: int


def _open(path: Path) -> Image.Image:
    """Open (header only) with the accepted parsers; Pillow's bomb check is a refusal here."""
    try:
        return Image.open(path, formats=PILLOW_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageTooLarge() from None


def inspect(path: Path) -> ImageInfo:
    """Check an uploaded file without decoding its pixels. Blocking: run it in a thread.

    Raises NotAnImage, UnsupportedImageFormat or ImageTooLarge.
    """
    try:
        with _open(path) as image:
            width, height = image.size
            image_format = image.format or ""
            if image_format not in ACCEPTED_FORMATS:
                raise UnsupportedImageFormat(image_format or "This kind of")
            if width * height > MAX_PIXELS:
                raise ImageTooLarge(width, height)
            image.verify()  # structure and checksums, without decoding the pixels
        with _open(path) as image:  # verify() leaves the image unusable: open it again
            sideways = image.getexif().get(EXIF_ORIENTATION) in SIDEWAYS
    except UnidentifiedImageError:
        other = _format_name(path)
        raise (UnsupportedImageFormat(other) if other else NotAnImage()) from None
    except InvalidImage:
        raise
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError):
        raise NotAnImage() from None
    if sideways:
        width, height = height, width
    return ImageInfo(image_format, ACCEPTED_FORMATS[image_format], width, height)


def _format_name(path: Path) -> str | None:
    """Which other format the file is, only to say so: Pillow's header parsers, nothing decoded."""
    try:
        with Image.open(path) as image:
            return image.format
    except Exception:  # anything a parser raises means "not an image we know"
        return None


def product_directory(product_id: int) -> str:
    """Where a product's images live, relative to the media directory."""
    return f"products/{product_id}"


def original_path(product_id: int, extension: str) -> str:
    """A new, unguessable name for a product's original, relative to the media directory."""
    return f"{product_directory(product_id)}/{secrets.token_hex(12)}.{extension}"


def resolve(media_dir: Path, relative: str) -> Path:
    """The file `relative` names inside `media_dir`; ValueError if it would leave it."""
    root = media_dir.resolve()
    path = (root / relative).resolve()
    if not path.is_relative_to(root) or path == root:
        raise ValueError(f"{relative!r} is not inside the media directory")
    return path


def remove(media_dir: Path, relatives: list[str]) -> None:
    """Delete these files (missing ones are fine), and their directory once it is empty."""
    directories = set()
    for relative in relatives:
        path = resolve(media_dir, relative)
        path.unlink(missing_ok=True)
        directories.add(path.parent)
    for directory in directories:
        with suppress(OSError):  # not empty, or already gone
            directory.rmdir()


class Spool:
    """An upload being written: a temporary file in the directory its original will live in.

    Counts bytes as they arrive and refuses past `limit_bytes` (UploadTooLarge), so a large
    upload is stopped while it streams. `keep` renames it into place; `discard` removes it.
    """

    def __init__(self, media_dir: Path, directory: str, limit_bytes: int) -> None:
        self.media_dir = media_dir
        self.directory = resolve(media_dir, directory)
        self.limit_bytes = limit_bytes
        self.size = 0
        self._file: IO[bytes] | None = None
        self._path: Path | None = None

    def _open(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 (closed by written or discard)
            dir=self.directory, prefix=".upload-", suffix=".part", delete=False
        )
        self._file, self._path = handle, Path(handle.name)

    async def write(self, chunk: bytes) -> None:
        """Append a chunk; raises UploadTooLarge (the spool must then be discarded)."""
        self.size += len(chunk)
        if self.size > self.limit_bytes:
            raise UploadTooLarge(self.limit_bytes)
        if self._file is None:
            await asyncio.to_thread(self._open)
        assert self._file is not None
        await asyncio.to_thread(self._file.write, chunk)

    def _close(self) -> None:
        if self._file is not None and not self._file.closed:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()

    async def written(self) -> Path | None:
        """Finish writing; the temporary file to inspect, or None when nothing arrived."""
        await asyncio.to_thread(self._close)
        return self._path

    async def keep(self, relative: str) -> None:
        """Rename the temporary file to `relative` (atomic: the same directory)."""
        assert self._path is not None
        target = resolve(self.media_dir, relative)
        if target.parent != self.directory:
            raise ValueError(f"{relative!r} is not in the spool's directory")
        await asyncio.to_thread(os.replace, self._path, target)
        self._path = None

    async def discard(self) -> None:
        """Remove the temporary file (if not kept) and the directory if that left it empty."""
        await asyncio.to_thread(self._discard)

    def _discard(self) -> None:
        if self._file is not None and not self._file.closed:
            self._file.close()
        if self._path is not None:
            self._path.unlink(missing_ok=True)
            self._path = None
        with suppress(OSError):  # not empty, or never made
            self.directory.rmdir()


def make_renditions(
    media_dir: Path, original: str, widths: tuple[int, ...] = RENDITION_WIDTHS
) -> dict[str, str]:
    """Write WebP renditions of `original` next to it; returns {"320": relative path, ...}.

    Never upscales: widths at or above the image's own are left out, and an image narrower than
    all of them gets one rendition at its own width. Blocking: run it in a thread. Idempotent:
    the same original always gives the same names, each replaced atomically.
    Raises NotAnImage or ImageTooLarge when the original cannot be decoded.
    """
    source = resolve(media_dir, original)
    try:
        with _open(source) as image:
            if image.width * image.height > MAX_PIXELS:
                raise ImageTooLarge(image.width, image.height)
            image.seek(0)  # the first frame of an animation
            frame = ImageOps.exif_transpose(image)
    except UnidentifiedImageError:
        raise NotAnImage() from None
    except FileNotFoundError:
        raise
    except (OSError, SyntaxError, ValueError, EOFError) as exc:  # truncated, or corrupt inside
        raise NotAnImage() from exc
    has_alpha = "A" in frame.getbands() or "transparency" in frame.info
    frame = frame.convert("RGBA" if has_alpha else "RGB")
    stem = original.rsplit(".", 1)[0]
    targets = [width for width in widths if width < frame.width] or [frame.width]
    renditions: dict[str, str] = {}
    for width in targets:
        height = max(1, round(frame.height * width / frame.width))
        resized = (
            frame
            if width == frame.width
            else frame.resize((width, height), Image.Resampling.LANCZOS)
        )
        relative = f"{stem}-{width}.webp"
        target = resolve(media_dir, relative)
        temporary = target.with_name(f".{target.name}.part")
        resized.save(temporary, "WEBP", quality=RENDITION_QUALITY)
        os.replace(temporary, target)
        renditions[str(width)] = relative
    return renditions


async def store_original(
    media_dir: Path, product_id: int, data: bytes, limit_bytes: int
) -> tuple[str, ImageInfo]:
    """Keep `data` as a new original of the product, the way an upload is kept: spooled to a
    temporary file, inspected, renamed into place. Returns its relative path and what it is.

    Raises InvalidImage (nothing is left behind then)."""
    spool = Spool(media_dir, product_directory(product_id), limit_bytes)
    try:
        await spool.write(data)
        temporary = await spool.written()
        assert temporary is not None
        info = await asyncio.to_thread(inspect, temporary)
        relative = original_path(product_id, info.extension)
        await spool.keep(relative)
    except BaseException:
        await spool.discard()
        raise
    return relative, info
