"""Reading photo files and writing results: the one photo reader of the project.

``read_photo`` (a file) and ``read_photo_bytes`` (a file's bytes, e.g. a record of a prepared
dataset) are the only decoders of photos: inference, evaluation, research and the training input
pipeline (``oldphoto_jax.data``) all use them, so a file decodes to the same pixels everywhere.
This module imports nothing of the project, so every layer may use it.

``infer.py`` runs over a folder of user photos. Each input either becomes a restored file or a
``PhotoError`` whose text is ``"<file name>: <reason>"``; the batch goes on. Inputs are only ever
opened for reading. Outputs are written atomically (temporary file in the same folder, ``fsync``,
``os.replace``), so an interrupted or failed write never leaves a partial file behind and never
destroys an earlier output. A temporary file's name holds its writer's process id, so a later run
can delete those of killed runs (``remove_stale_temp_files``) and keep those of a live one.

Policies (the official code does ``Image.open(f).convert("RGB")`` and nothing else):

* **Listing** (``list_photos``): every regular file of the folder is a candidate, whatever its
  extension, sorted by name as the official ``sorted(os.listdir)``; the reader then reports
  non-images, so nothing is skipped silently. Left out, each with a line in the returned notes:
  hidden files (leading dot), temporary files of our own interrupted writes, the Windows system
  files ``Thumbs.db``/``desktop.ini``, and sub-folders (not searched).
* **EXIF orientation** (tag 274, values 2..8) is applied with ``ImageOps.exif_transpose`` before
  anything else, so the restored photo is upright. The official code ignores it.
* **Colour modes** become 8-bit RGB:

  - ``RGB`` as is; ``1``, ``L``, ``P``, ``CMYK``, ``YCbCr``, ``LAB``, ``HSV`` through Pillow's
    ``convert("RGB")`` (CMYK with Pillow's formula and Adobe-inversion handling, no colour
    management; embedded ICC profiles are ignored throughout);
  - alpha (``RGBA``, ``LA``, ``PA``, ``RGBa``, palette or colour-key transparency) is dropped
    exactly as ``convert("RGB")`` drops it: the colour under a transparent pixel is kept, nothing
    is composited (as the official code);
  - 16-bit samples keep their **high byte** (``v >> 8``). This is what Pillow 13 itself does when
    it decodes 16-bit RGB/RGBA/LA PNGs and TIFFs (it opens them as 8-bit ``RGB``/``RGBA``), so
    16-bit greyscale (``I;16``, ``I;16B``, ``I;16L``, opened at full depth) is reduced the same
    way and a picture gives the same result whether stored as 16-bit grey or 16-bit RGB. It
    differs from ``round(v / 257)`` by at most one level. ``convert("RGB")`` would instead clip
    every value above 255 to white;
  - 32-bit integer (``I``) samples are read as 16-bit: clipped to 0..65535, then the high byte;
  - 32-bit float (``F``) samples: the range is guessed from the largest finite value (<= 1:
    0..1, <= 255: 0..255, else 0..65535), scaled to 0..255 and rounded; NaN becomes 0.

* **Size**: a photo with a side under ``min_side`` (default 32) pixels is refused. Large photos
  are returned at full size unless ``max_side`` is given: then the longer side becomes exactly
  ``max_side`` and the other ``round(side * max_side / longer)`` (exact, half to even, at least
  1), resampled with Pillow's Lanczos filter on the 8-bit RGB image.
* **Decompression bombs**: Pillow refuses images above 2 x 89.5 Mpx (``Image.MAX_IMAGE_PIXELS``),
  which would reject a legitimate 20000 x 15000 scan. ``read_photo`` replaces that check with
  its own ``max_pixels`` (default ``MAX_PIXELS`` = 400 Mpx, about 1.2 GB per decoded RGB copy),
  applied to the header's size before any pixel is decoded; ``None`` disables it. Pillow's global
  limit is lifted only while the header is parsed, under a lock, and restored at once (other
  threads opening images through Pillow directly at that instant are unprotected).
* **Truncated or corrupt data**: Pillow decodes lazily; ``read_photo`` forces the decode and
  reports any failure as ``"truncated or corrupt image data (...)"``. This relies on Pillow's
  process-wide ``ImageFile.LOAD_TRUNCATED_IMAGES`` being False (its default; this package never
  sets it).
* **Multi-frame files** (animated GIF/WebP/PNG, multi-page TIFF): the first frame is used and a
  note says so (not for MPO, whose extra frames are previews).

What ``read_photo`` did to a photo is listed in ``Photo.notes`` (e.g. ``"EXIF orientation 6
applied"``, ``"alpha dropped (not composited)"``, ``"downscaled from 5000×4000 to 2000×1600 (max
side 2000, Lanczos)"``).
"""
from __future__ import annotations

import contextlib
import io
import os
import re
import secrets
import stat
import threading
import warnings
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO, Callable

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

# Smallest accepted side in pixels.
MIN_SIDE = 32
# Largest accepted image area in pixels (a 20000 x 20000 scan); ``read_photo(max_pixels=...)``.
MAX_PIXELS = 400_000_000
# Name ending of the temporary files the atomic writers create (they also start with a dot).
TEMP_SUFFIX = ".oldphoto-tmp"
# Files some systems drop into photo folders; compared case-insensitively.
SYSTEM_FILE_NAMES = frozenset({"thumbs.db", "desktop.ini"})
# Output formats by file extension: (Pillow format, save options). JPEG at quality 95 without
# chroma subsampling (4:4:4) keeps the restored colour detail; WebP is written lossless.
OUTPUT_FORMATS = {
    ".png": ("PNG", {}),
    ".jpg": ("JPEG", {"quality": 95, "subsampling": 0}),
    ".jpeg": ("JPEG", {"quality": 95, "subsampling": 0}),
    ".tif": ("TIFF", {}),
    ".tiff": ("TIFF", {}),
    ".bmp": ("BMP", {}),
    ".webp": ("WEBP", {"lossless": True}),
}

_PILLOW_LIMIT_LOCK = threading.Lock()
# Pillow raw modes that carry 16 bits per sample (e.g. "RGB;16B" of a 16-bit PNG); BMP's packed
# 5-6-5 "BGR;16" is not one of them.
_SIXTEEN_BIT_RAWMODE = re.compile(r"(?:RGB|RGBA|RGBX|LA|L|I|CMYK);16[BLN]?")
_INTEGER_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N"})
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
# How the colour model of each non-RGB mode is named in notes.
_COLOUR_MODEL_NAMES = {
    "1": "1-bit black and white", "L": "greyscale", "LA": "greyscale", "La": "greyscale",
    "I": "greyscale", "I;16": "greyscale", "I;16B": "greyscale", "I;16L": "greyscale",
    "I;16N": "greyscale", "F": "greyscale", "P": "palette", "PA": "palette", "CMYK": "CMYK",
    "YCbCr": "YCbCr", "LAB": "CIE L*a*b*", "HSV": "HSV",
}
_SIXTEEN_BIT_NOTE = "16-bit converted to 8-bit (high byte)"
_ALPHA_NOTE = "alpha dropped (not composited)"


class PhotoError(Exception):
    """A photo that cannot be restored; ``str(error)`` is ``"<file name>: <reason>"``."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path.name}: {reason}")


@dataclass
class Photo:
    """A decoded photo ready for restoration.

    ``rgb``: uint8 ``H x W x 3``, upright, possibly downscaled; ``original_size``: ``(W, H)``
    after EXIF orientation and before any downscaling; ``notes``: what reading changed.
    """

    path: Path
    rgb: np.ndarray
    original_size: tuple[int, int]
    notes: list[str] = field(default_factory=list)


# --- listing --------------------------------------------------------------------------------

def list_photos(folder: str | os.PathLike) -> tuple[list[Path], list[str]]:
    """Candidate photos of ``folder`` sorted by name, and one note per entry left out.

    Every entry is a candidate except hidden files, our temporary files, Windows system files and
    folders (see the module docstring); non-images, broken links and other odd entries stay
    candidates so that ``read_photo`` reports them. Notes read ``"<name>: skipped (<why>)"``.
    A missing or unreadable ``folder`` raises the ``OSError`` of ``os.scandir``.
    """
    candidates: list[Path] = []
    notes: list[str] = []
    with os.scandir(folder) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            why = _listing_skip_reason(entry)
            if why is None:
                candidates.append(Path(entry.path))
            else:
                notes.append(f"{entry.name}: skipped ({why})")
    return candidates, notes


def _listing_skip_reason(entry: os.DirEntry) -> str | None:
    """Why ``list_photos`` leaves this entry out, or None for a candidate."""
    if entry.name.startswith(".") and entry.name.endswith(TEMP_SUFFIX):
        return "temporary file of an interrupted write"
    if entry.name.startswith("."):
        return "hidden file"
    if entry.name.lower() in SYSTEM_FILE_NAMES:
        return "system file"
    try:
        if entry.is_dir():
            return "folder; sub-folders are not searched"
    except OSError:
        pass  # unreadable entry: read_photo names the problem
    return None


# --- reading --------------------------------------------------------------------------------

def read_photo(path: str | os.PathLike, *, max_side: int | None = None,
               min_side: int = MIN_SIDE, max_pixels: int | None = MAX_PIXELS) -> Photo:
    """Decode one photo to upright 8-bit RGB, or raise ``PhotoError`` naming the problem.

    ``max_side``: downscale so the longer side is at most this (None: full size).
    ``min_side``: refuse photos with a shorter side. ``max_pixels``: refuse larger headers
    before decoding (None: no limit). The file is opened read-only and never changed.
    """
    _check_limits(max_side, min_side, max_pixels)
    path = Path(path)
    check_readable_file(path)
    try:
        handle = open(path, "rb")
    except OSError as error:
        raise PhotoError(path, f"cannot read file ({os_reason(error)})") from error
    with handle, _open_image(path, handle) as image:
        return photo_from_image(image, path, max_side=max_side, min_side=min_side,
                                max_pixels=max_pixels)


def read_photo_bytes(data: bytes, name: str = "photo", *, max_side: int | None = None,
                     min_side: int = MIN_SIDE, max_pixels: int | None = MAX_PIXELS) -> Photo:
    """``read_photo`` of an image file's bytes (e.g. an upload); ``name`` names it in errors."""
    _check_limits(max_side, min_side, max_pixels)
    path = Path(name)
    if not data:
        raise PhotoError(path, "empty file")
    with io.BytesIO(data) as handle, _open_image(path, handle) as image:
        return photo_from_image(image, path, max_side=max_side, min_side=min_side,
                                max_pixels=max_pixels)


def photo_from_image(image: Image.Image, path: str | os.PathLike = "photo", *,
                     max_side: int | None = None, min_side: int = MIN_SIDE,
                     max_pixels: int | None = MAX_PIXELS) -> Photo:
    """What ``read_photo`` makes of an opened Pillow image (loaded or not): size limits, first
    frame, EXIF orientation, 8-bit RGB, downscaling, with the same notes and errors. ``path``
    only names the photo in errors and notes. The image is not changed."""
    path = Path(path)
    notes: list[str] = []
    check_dimensions(path, image.size, min_side=min_side, max_pixels=max_pixels)
    frames = _frame_count(image)
    if frames > 1 and image.format != "MPO":
        notes.append(f"first of {frames} frames used")
    from_sixteen_bits = _decodes_sixteen_bit_samples(image)
    _decode_pixels(path, image)
    upright = apply_exif_orientation(image, notes)
    original_size = upright.size
    try:
        rgb, conversion_notes = to_rgb_uint8(upright, from_sixteen_bits=from_sixteen_bits)
    except ValueError as error:
        raise PhotoError(path, f"unsupported colour mode {upright.mode}") from error
    notes.extend(conversion_notes)
    if max_side is not None:
        rgb = _downscale(path, rgb, max_side, min_side, notes)
    return Photo(path=path, rgb=rgb, original_size=original_size, notes=notes)


def photo_from_array(array: np.ndarray, name: str = "photo", *, max_side: int | None = None,
                     min_side: int = MIN_SIDE, max_pixels: int | None = MAX_PIXELS) -> Photo:
    """A numpy image as ``read_photo`` would read it: ``H x W`` grey, ``H x W x 1``, ``x 3``
    (RGB) or ``x 4`` (RGBA, alpha dropped); uint8, uint16 (high byte), other integers (clipped
    to 0..65535, high byte), bool, or float (range guessed as for 32-bit float files)."""
    path = Path(name)
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise PhotoError(path, f"not an image array (shape {array.shape}; expected H x W, "
                               "H x W x 3 or H x W x 4)")
    check_dimensions(path, (array.shape[1], array.shape[0]), min_side=min_side,
                     max_pixels=max_pixels)
    notes: list[str] = []
    if array.ndim == 3 and array.shape[2] == 4:
        array = array[:, :, :3]
        notes.append(_ALPHA_NOTE)
    if array.dtype == np.bool_:
        array = array.astype(np.uint8) * 255
    elif array.dtype == np.uint8:
        pass
    elif np.issubdtype(array.dtype, np.integer):
        array = _sixteen_bit_high_byte(array)
        notes.append(_SIXTEEN_BIT_NOTE)
    elif np.issubdtype(array.dtype, np.floating):
        array, value_range = _float_to_uint8(array)
        notes.append(f"float converted to 8-bit (values read as {value_range})")
    else:
        raise PhotoError(path, f"unsupported array type {array.dtype}")
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
        notes.append("greyscale converted to RGB")
    rgb = np.ascontiguousarray(array, dtype=np.uint8).copy()
    original_size = (rgb.shape[1], rgb.shape[0])
    if max_side is not None:
        rgb = _downscale(path, rgb, max_side, min_side, notes)
    return Photo(path=path, rgb=rgb, original_size=original_size, notes=notes)


def _check_limits(max_side: int | None, min_side: int, max_pixels: int | None) -> None:
    if min_side < 1:
        raise ValueError(f"min_side must be at least 1, got {min_side}")
    if max_side is not None and max_side < min_side:
        raise ValueError(f"max_side ({max_side}) must be at least min_side ({min_side})")
    if max_pixels is not None and max_pixels < 1:
        raise ValueError(f"max_pixels must be positive or None, got {max_pixels}")


def check_readable_file(path: Path) -> None:
    """Raise ``PhotoError`` unless ``path`` is an existing, non-empty regular file.

    Checked before opening so that a folder, a broken link or a FIFO (which would block a read)
    gets a precise reason.
    """
    try:
        status = os.stat(path)
    except FileNotFoundError as error:
        reason = "broken symbolic link (its target does not exist)" if os.path.islink(path) \
            else "file not found"
        raise PhotoError(path, reason) from error
    except OSError as error:
        raise PhotoError(path, f"cannot read file ({os_reason(error)})") from error
    if stat.S_ISDIR(status.st_mode):
        raise PhotoError(path, "is a folder, not an image file")
    if not stat.S_ISREG(status.st_mode):
        raise PhotoError(path, "not a regular file (device, pipe or socket)")
    if status.st_size == 0:
        raise PhotoError(path, "empty file")


def check_dimensions(path: Path, size: tuple[int, int], *, min_side: int = MIN_SIDE,
                     max_pixels: int | None = MAX_PIXELS) -> None:
    """Raise ``PhotoError`` if a ``(W, H)`` image is too small or too large to decode."""
    width, height = size
    if max_pixels is not None and width * height > max_pixels:
        raise PhotoError(path, f"too large to decode safely ({width}×{height} = "
                               f"{width * height:,} pixels; the limit is {max_pixels:,}, "
                               "see max_pixels)")
    if min(width, height) < min_side:
        raise PhotoError(path, f"too small ({width}×{height}; at least {min_side} px per side)")


@contextlib.contextmanager
def _open_image(path: Path, handle: BinaryIO):
    """Parse the image header with Pillow's own pixel limit lifted (``read_photo`` checks its
    own), mapping failures to ``PhotoError``; closes the image on exit."""
    with _PILLOW_LIMIT_LOCK:
        saved_limit = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            image = Image.open(handle)
        except UnidentifiedImageError as error:
            raise PhotoError(path, _unidentified_reason(handle)) from error
        except MemoryError as error:
            raise PhotoError(path, "not enough memory to read the image header") from error
        except Exception as error:  # Pillow's plugins raise many types on bad headers
            raise PhotoError(path, f"truncated or corrupt image data ({_detail(error)})") \
                from error
        finally:
            Image.MAX_IMAGE_PIXELS = saved_limit
    with image:
        yield image


def _unidentified_reason(handle: BinaryIO) -> str:
    """Why Pillow could not open a file: not an image at all, or an image format whose
    signature matches but whose header Pillow rejects (damaged or an unsupported variant)."""
    handle.seek(0)
    prefix = handle.read(16)
    Image.init()
    claimed = []
    for image_format, (_, accept) in Image.OPEN.items():
        try:
            if accept is not None and accept(prefix) is True:
                claimed.append(image_format)
        except Exception:  # some signature checks fail on very short prefixes
            continue
    if claimed:
        return (f"corrupt or unsupported {'/'.join(claimed)} image "
                "(the header cannot be read)")
    return "not an image file (cannot identify format)"


def _decode_pixels(path: Path, image: Image.Image) -> None:
    """Force Pillow's lazy decode so truncated or corrupt data fails here, as ``PhotoError``."""
    try:
        image.load()
    except MemoryError as error:
        raise PhotoError(path, f"not enough memory to decode {image.width}×{image.height} "
                               "pixels") from error
    except Exception as error:  # decoders raise OSError, SyntaxError, ValueError, EOFError...
        raise PhotoError(path, f"truncated or corrupt image data ({_detail(error)})") from error


def _frame_count(image: Image.Image) -> int:
    """Number of frames or pages (1 if unknown or unreadable); Pillow seeks back to frame 0."""
    try:
        return int(getattr(image, "n_frames", 1))
    except Exception:  # a damaged later frame must not stop the first from being used
        return 1


def _decodes_sixteen_bit_samples(image: Image.Image) -> bool:
    """Whether Pillow decodes 16-bit samples for this (not yet loaded) image.

    Seen in the decoder's raw mode, e.g. ``"RGB;16B"`` for a 16-bit PNG that Pillow presents as
    8-bit ``RGB`` (it keeps the high byte).
    """
    for tile in image.tile:
        args = tile.args
        rawmode = args if isinstance(args, str) else (
            args[0] if isinstance(args, tuple) and args and isinstance(args[0], str) else "")
        if _SIXTEEN_BIT_RAWMODE.fullmatch(rawmode):
            return True
    return False


def apply_exif_orientation(image: Image.Image, notes: list[str]) -> Image.Image:
    """The image turned upright by its EXIF orientation (a new image when it had one).

    Appends ``"EXIF orientation N applied"`` to ``notes``; unreadable EXIF data is noted and the
    image used as stored.
    """
    try:
        orientation = image.getexif().get(ExifTags.Base.Orientation)
        if orientation not in range(2, 9):
            return image
        upright = ImageOps.exif_transpose(image)
    except Exception:  # damaged EXIF blocks raise a variety of parser errors
        notes.append("EXIF data unreadable; orientation not applied")
        return image
    notes.append(f"EXIF orientation {orientation} applied")
    return upright


def to_rgb_uint8(image: Image.Image, *, from_sixteen_bits: bool = False
                 ) -> tuple[np.ndarray, list[str]]:
    """A decoded Pillow image as a writable uint8 ``H x W x 3`` array, and notes on the change.

    ``from_sixteen_bits``: the decoder already reduced 16-bit samples (noted). Raises
    ``ValueError`` for a mode Pillow cannot convert to RGB.
    """
    mode = image.mode
    notes = []
    if mode in _INTEGER_MODES:
        grey = _sixteen_bit_high_byte(np.asarray(image))
        if mode.startswith("I;16") or from_sixteen_bits:
            notes.append(_SIXTEEN_BIT_NOTE)
        else:
            notes.append("32-bit integer converted to 8-bit (clipped to 0..65535, high byte)")
        rgb = np.repeat(grey[:, :, None], 3, axis=2)
    elif mode == "F":
        grey, value_range = _float_to_uint8(np.asarray(image))
        notes.append(f"32-bit float converted to 8-bit (values read as {value_range})")
        rgb = np.repeat(grey[:, :, None], 3, axis=2)
    elif mode == "RGB":  # no convert(): saves a full-size copy of a large scan
        if from_sixteen_bits:
            notes.append(_SIXTEEN_BIT_NOTE)
        rgb = np.array(image, dtype=np.uint8)
    else:
        if from_sixteen_bits:
            notes.append(_SIXTEEN_BIT_NOTE)
        with warnings.catch_warnings():
            # Pillow suggests RGBA for palettes with byte transparency; we drop alpha on purpose.
            warnings.filterwarnings("ignore", message="Palette images with Transparency")
            rgb = np.array(image.convert("RGB"), dtype=np.uint8)
    if mode in _COLOUR_MODEL_NAMES:
        notes.append(f"{_COLOUR_MODEL_NAMES[mode]} ({mode}) converted to RGB")
    if mode in _ALPHA_MODES or "transparency" in image.info:
        notes.append(_ALPHA_NOTE)
    return np.ascontiguousarray(rgb), notes


def _sixteen_bit_high_byte(values: np.ndarray) -> np.ndarray:
    """Integer samples clipped to 0..65535, keeping the high byte (``v >> 8``)."""
    clipped = np.clip(values.astype(np.int64), 0, 65535)
    return (clipped >> 8).astype(np.uint8)


def _float_to_uint8(values: np.ndarray) -> tuple[np.ndarray, str]:
    """Float samples to uint8 with a range guessed from the largest finite value.

    Returns the array and the range used (``"0..1"``, ``"0..255"`` or ``"0..65535"``).
    """
    values = values.astype(np.float64)
    finite = values[np.isfinite(values)]
    top = float(finite.max()) if finite.size else 0.0
    if top <= 1.0:
        scale, value_range = 255.0, "0..1"
    elif top <= 255.0:
        scale, value_range = 1.0, "0..255"
    else:
        scale, value_range = 255.0 / 65535.0, "0..65535"
    scaled = np.nan_to_num(values * scale, nan=0.0, posinf=255.0, neginf=0.0)
    return np.rint(np.clip(scaled, 0.0, 255.0)).astype(np.uint8), value_range


def fit_within(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    """``(W, H)`` scaled so the longer side is ``max_side`` (unchanged if already within).

    The shorter side is ``round(side * max_side / longer)``, computed exactly with Python's
    half-to-even rounding, and at least 1.
    """
    width, height = size
    longer = max(width, height)
    if longer <= max_side:
        return width, height
    scale = Fraction(max_side, longer)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _downscale(path: Path, rgb: np.ndarray, max_side: int, min_side: int,
               notes: list[str]) -> np.ndarray:
    """Lanczos-downscale ``rgb`` to ``fit_within(max_side)``, noting it; refuse results with a
    side under ``min_side``."""
    height, width = rgb.shape[:2]
    new_width, new_height = fit_within((width, height), max_side)
    if (new_width, new_height) == (width, height):
        return rgb
    if min(new_width, new_height) < min_side:
        raise PhotoError(path, f"too elongated to downscale to max side {max_side} (would be "
                               f"{new_width}×{new_height}; at least {min_side} px per side)")
    resized = Image.fromarray(rgb).resize((new_width, new_height), Image.Resampling.LANCZOS)
    notes.append(f"downscaled from {width}×{height} to {new_width}×{new_height} "
                 f"(max side {max_side}, Lanczos)")
    return np.array(resized, dtype=np.uint8)


def _detail(error: BaseException) -> str:
    """A short, human description of an exception for an error line."""
    text = str(error).strip()
    return text if text else type(error).__name__


def os_reason(error: OSError) -> str:
    """``"permission denied"`` and the like from an ``OSError``."""
    return (error.strerror or type(error).__name__).lower()


# --- writing --------------------------------------------------------------------------------

def write_png_atomic(path: str | os.PathLike, rgb: np.ndarray) -> None:
    """Write uint8 ``H x W x 3`` RGB as a PNG file at ``path`` (whatever its extension),
    atomically: ``path`` is either untouched or the complete new file. Missing parent folders
    are created."""
    _write_atomic(Path(path), rgb, "PNG", {})


def write_image_atomic(path: str | os.PathLike, rgb: np.ndarray) -> None:
    """Like ``write_png_atomic`` with the format chosen by the extension (``OUTPUT_FORMATS``:
    .png, .jpg/.jpeg at quality 95 4:4:4, .tif/.tiff, .bmp, lossless .webp). No metadata is
    written (the pixels are upright, so no orientation tag is needed)."""
    path = Path(path)
    try:
        image_format, options = OUTPUT_FORMATS[path.suffix.lower()]
    except KeyError:
        raise ValueError(f"{path.name}: unsupported output extension {path.suffix!r} "
                         f"(supported: {', '.join(OUTPUT_FORMATS)})") from None
    _write_atomic(path, rgb, image_format, options)


def _write_atomic(path: Path, rgb: np.ndarray, image_format: str, options: dict) -> None:
    """Encode ``rgb`` into a temporary file next to ``path``, fsync it, then ``os.replace``.

    On any failure (including KeyboardInterrupt) the temporary file is removed and the error
    re-raised; an existing file at ``path`` is left as it was.
    """
    image = Image.fromarray(_checked_rgb(rgb))
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_file_atomic(path, lambda handle: image.save(handle, format=image_format, **options))


def _checked_rgb(rgb: np.ndarray) -> np.ndarray:
    """``rgb`` as a C-contiguous uint8 ``H x W x 3`` array, or a ``ValueError``."""
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 \
            or rgb.shape[2] != 3 or 0 in rgb.shape:
        shape = getattr(rgb, "shape", None)
        dtype = getattr(rgb, "dtype", type(rgb).__name__)
        raise ValueError(f"expected a uint8 H x W x 3 RGB array, got {dtype} with shape {shape}")
    return np.ascontiguousarray(rgb)


def _write_file_atomic(path: Path, encode: Callable[[BinaryIO], None]) -> None:
    """Run ``encode`` on a fresh temporary file in ``path``'s folder and move it onto ``path``."""
    temp_path, descriptor = _create_temp_file(path)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            encode(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_path, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp_path)
        raise
    _fsync_folder(path.parent)


def _create_temp_file(path: Path) -> tuple[Path, int]:
    """Create ``.<name>.<pid>-<random>.oldphoto-tmp`` next to ``path`` (exclusive, mode 0666
    minus the umask, like an ordinary new file); returns its path and an open descriptor.
    ``<name>`` is cut to ``_TEMP_NAME_BYTES`` so the whole name fits any file system's limit;
    the process id lets a later run tell a stale temporary file from one being written."""
    stem = cut_to_bytes(path.name, _TEMP_NAME_BYTES)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        temp_path = path.with_name(f".{stem}.{os.getpid()}-{secrets.token_hex(6)}{TEMP_SUFFIX}")
        try:
            return temp_path, os.open(temp_path, flags, 0o666)
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a temporary file next to {path}")


# Bytes of the target's name kept in a temporary file's name (the rest of it takes <= 40).
_TEMP_NAME_BYTES = 100
# The end of a temporary file name: the writer's process id and a random token.
_TEMP_OWNER = re.compile(r"\.(\d+)-[0-9a-f]{12}" + re.escape(TEMP_SUFFIX) + "$")


def cut_to_bytes(text: str, limit: int) -> str:
    """The longest prefix of ``text`` (whole characters) whose file-system encoding fits."""
    while len(os.fsencode(text)) > limit:
        text = text[:-1]
    return text


def remove_stale_temp_files(folder: str | os.PathLike) -> int:
    """Delete the temporary files of our atomic writes in ``folder`` whose writer is no longer
    running (or that predate process ids in their names); returns how many were deleted.
    Temporary files of a live process (another run writing into the same folder) are kept."""
    removed = 0
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return 0
    for entry in entries:
        if not (entry.name.startswith(".") and entry.name.endswith(TEMP_SUFFIX)):
            continue
        owner = _TEMP_OWNER.search(entry.name)
        if owner and _process_is_running(int(owner.group(1))):
            continue
        with contextlib.suppress(FileNotFoundError):
            os.unlink(entry.path)
            removed += 1
    return removed


def _process_is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # exists but belongs to someone else; or not checkable: keep its files
    return True


def check_writable_folder(folder: str | os.PathLike) -> None:
    """Raise the ``OSError`` of creating a (then deleted) temporary file in ``folder``."""
    temp_path, descriptor = _create_temp_file(Path(folder) / "write-check")
    os.close(descriptor)
    os.unlink(temp_path)


def _fsync_folder(folder: Path) -> None:
    """Make the rename durable where the platform allows syncing a folder (best effort)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
