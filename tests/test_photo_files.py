"""Tests of oldphoto_jax.photo_files: every kind of input ends as RGB or a named error."""
from __future__ import annotations

import hashlib
import os
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from oldphoto_jax import photo_files
from oldphoto_jax.photo_files import PhotoError


def random_rgb(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def save(image: Image.Image, path: Path, **options) -> Path:
    image.save(path, **options)
    return path


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def write_png16(path: Path, samples: np.ndarray) -> Path:
    """A 16-bit PNG written by hand (Pillow cannot write 16-bit colour PNGs).

    ``samples``: uint16 ``H x W`` (grey), ``H x W x 2`` (grey + alpha) or ``H x W x 3`` (RGB).
    """
    grey = samples.ndim == 2
    channels = 1 if grey else samples.shape[2]
    colour_type = {1: 0, 2: 4, 3: 2}[channels]
    height, width = samples.shape[:2]
    rows = samples.astype(">u2").reshape(height, width * channels)
    raw = b"".join(b"\x00" + row.tobytes() for row in rows)
    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header)
                     + png_chunk(b"IDAT", zlib.compress(raw)) + png_chunk(b"IEND", b""))
    return path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def pillow_rgb(path: Path) -> np.ndarray:
    """What the official code reads: ``Image.open(path).convert("RGB")``."""
    with Image.open(path) as image, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Palette images with Transparency")
        return np.asarray(image.convert("RGB"))


def expect_error(path: Path, reason_start: str, **options) -> PhotoError:
    with pytest.raises(PhotoError) as caught:
        photo_files.read_photo(path, **options)
    assert str(caught.value).startswith(f"{path.name}: {reason_start}"), str(caught.value)
    assert caught.value.path == path
    return caught.value


# --- bad inputs -----------------------------------------------------------------------------

def test_error_text_is_file_name_and_reason():
    error = PhotoError(Path("/photos/old/grandma.jpg"), "empty file")
    assert str(error) == "grandma.jpg: empty file"
    assert error.reason == "empty file"


def test_empty_file(tmp_path):
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    expect_error(path, "empty file")


def test_text_file_renamed_jpg(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("not a photo at all\n")
    expect_error(path, "not an image file (cannot identify format)")


def test_truncated_jpeg_that_opens_lazily(tmp_path):
    full = save(Image.fromarray(random_rgb(96, 128)), tmp_path / "full.jpg", quality=90)
    path = tmp_path / "cut.jpg"
    path.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with Image.open(path) as lazily:  # the header parses: only decoding fails
        assert lazily.size == (128, 96)
    expect_error(path, "truncated or corrupt image data (")


def test_truncated_png(tmp_path):
    full = save(Image.fromarray(random_rgb(64, 64)), tmp_path / "full.png")
    path = tmp_path / "cut.png"
    path.write_bytes(full.read_bytes()[:200])
    expect_error(path, "truncated or corrupt image data (")


def test_corrupt_png_header(tmp_path):
    data = bytearray(save(Image.fromarray(random_rgb(40, 40)), tmp_path / "a.png").read_bytes())
    data[16:24] = b"\xff" * 8  # width and height in IHDR, now with a wrong CRC
    path = tmp_path / "bad_header.png"
    path.write_bytes(bytes(data))
    expect_error(path, "corrupt or unsupported PNG image (the header cannot be read)")


def test_folder_missing_file_and_broken_link(tmp_path):
    folder = tmp_path / "album.jpg"
    folder.mkdir()
    expect_error(folder, "is a folder, not an image file")
    expect_error(tmp_path / "gone.jpg", "file not found")
    link = tmp_path / "link.jpg"
    link.symlink_to(tmp_path / "missing-target.jpg")
    expect_error(link, "broken symbolic link")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    expect_error(fifo, "not a regular file")


def test_too_small(tmp_path):
    path = save(Image.fromarray(random_rgb(40, 20)), tmp_path / "tiny.png")
    error = expect_error(path, "too small")
    assert error.reason == "too small (20×40; at least 32 px per side)"
    assert photo_files.read_photo(path, min_side=20).rgb.shape == (40, 20, 3)


def test_symlink_to_photo_is_followed(tmp_path):
    rgb = random_rgb(40, 50)
    target = save(Image.fromarray(rgb), tmp_path / "real.png")
    link = tmp_path / "alias.png"
    link.symlink_to(target)
    np.testing.assert_array_equal(photo_files.read_photo(link).rgb, rgb)


# --- pixel formats --------------------------------------------------------------------------

def ramp16(height: int = 40, width: int = 48) -> np.ndarray:
    """uint16 values covering 0..65535, including the extremes."""
    values = np.linspace(0, 65535, height * width).round().astype(np.uint16)
    return values.reshape(height, width)


@pytest.mark.parametrize("name", ["grey16.png", "grey16.tif", "grey16be.tif"])
def test_sixteen_bit_grey_keeps_high_byte(tmp_path, name):
    samples = ramp16()
    array = samples.astype(">u2") if "be" in name else samples
    image = Image.fromarray(array)
    assert image.mode == ("I;16B" if "be" in name else "I;16")
    path = save(image, tmp_path / name)
    photo = photo_files.read_photo(path)
    expected = (samples >> 8).astype(np.uint8)
    assert photo.rgb.dtype == np.uint8 and photo.rgb.shape == (40, 48, 3)
    for channel in range(3):
        np.testing.assert_array_equal(photo.rgb[:, :, channel], expected)
    assert "16-bit converted to 8-bit (high byte)" in photo.notes
    # convert("RGB") would clip: everything above 255 becomes white.
    assert (pillow_rgb(path)[-1] == 255).all() and photo.rgb[-1].min() < 255


def test_sixteen_bit_rgb_png_is_noted_and_matches_grey_rule(tmp_path):
    samples = np.stack([ramp16(), ramp16()[::-1], np.full((40, 48), 0x80FF, np.uint16)], -1)
    path = write_png16(tmp_path / "rgb16.png", samples)
    photo = photo_files.read_photo(path)
    np.testing.assert_array_equal(photo.rgb, (samples >> 8).astype(np.uint8))
    assert "16-bit converted to 8-bit (high byte)" in photo.notes


def test_sixteen_bit_grey_with_alpha_png(tmp_path):
    samples = np.stack([ramp16(), np.zeros((40, 48), np.uint16)], -1)  # fully transparent
    photo = photo_files.read_photo(write_png16(tmp_path / "la16.png", samples))
    expected = (ramp16() >> 8).astype(np.uint8)
    np.testing.assert_array_equal(photo.rgb, np.repeat(expected[:, :, None], 3, axis=2))
    assert "16-bit converted to 8-bit (high byte)" in photo.notes
    assert "alpha dropped (not composited)" in photo.notes


def test_32_bit_integer_is_clipped_to_16_bits(tmp_path):
    values = np.linspace(-1000, 70000, 40 * 40).astype(np.int32).reshape(40, 40)
    path = save(Image.fromarray(values), tmp_path / "int32.tif")
    photo = photo_files.read_photo(path)
    expected = (np.clip(values, 0, 65535) >> 8).astype(np.uint8)
    np.testing.assert_array_equal(photo.rgb[:, :, 1], expected)
    assert photo.rgb[0, 0, 0] == 0 and photo.rgb[-1, -1, 0] == 255


@pytest.mark.parametrize("top, scale", [(1.0, 255.0), (200.0, 1.0), (60000.0, 255 / 65535)])
def test_float_range_is_guessed_from_maximum(tmp_path, top, scale):
    values = np.linspace(0.0, top, 40 * 40, dtype=np.float32).reshape(40, 40)
    values[0, 0] = np.nan
    path = save(Image.fromarray(values), tmp_path / "float.tif")
    photo = photo_files.read_photo(path)
    expected = np.rint(np.nan_to_num(values.astype(np.float64) * scale)).astype(np.uint8)
    np.testing.assert_array_equal(photo.rgb[:, :, 2], expected)
    assert photo.rgb[0, 0, 0] == 0
    assert any(note.startswith("32-bit float converted to 8-bit") for note in photo.notes)


@pytest.mark.parametrize("mode", ["L", "1", "P"])
def test_grey_bilevel_and_palette_match_pillow_convert(tmp_path, mode):
    source = Image.fromarray(random_rgb(36, 44)).convert(mode)
    path = save(source, tmp_path / f"{mode}.png")
    photo = photo_files.read_photo(path)
    np.testing.assert_array_equal(photo.rgb, pillow_rgb(path))
    assert any(f"({mode}) converted to RGB" in note for note in photo.notes)
    assert "alpha dropped (not composited)" not in photo.notes


@pytest.mark.filterwarnings("error")  # Pillow's "convert to RGBA" advice is not passed on
def test_palette_with_transparency_drops_it_like_convert(tmp_path):
    source = Image.fromarray(random_rgb(36, 44)).convert("P")
    source.info["transparency"] = bytes(range(0, 256, 16)) * 16  # per-entry alpha (tRNS)
    path = save(source, tmp_path / "palette_alpha.png")
    with Image.open(path) as reread:
        assert reread.mode == "P" and "transparency" in reread.info
    photo = photo_files.read_photo(path)
    np.testing.assert_array_equal(photo.rgb, pillow_rgb(path))
    assert "alpha dropped (not composited)" in photo.notes


def test_rgba_alpha_dropped_exactly_as_convert(tmp_path):
    rgba = np.concatenate([random_rgb(40, 40), np.zeros((40, 40, 1), np.uint8)], axis=2)
    rgba[:20, :, 3] = 255
    path = save(Image.fromarray(rgba), tmp_path / "rgba.png")
    photo = photo_files.read_photo(path)
    np.testing.assert_array_equal(photo.rgb, pillow_rgb(path))
    np.testing.assert_array_equal(photo.rgb, rgba[:, :, :3])  # transparent colours kept as is
    assert photo.notes == ["alpha dropped (not composited)"]


def test_grey_with_alpha_dropped_exactly_as_convert(tmp_path):
    la = Image.merge("LA", [Image.fromarray(random_rgb(40, 40)[:, :, 0]),
                            Image.new("L", (40, 40), 7)])
    path = save(la, tmp_path / "la.png")
    photo = photo_files.read_photo(path)
    np.testing.assert_array_equal(photo.rgb, pillow_rgb(path))
    assert "alpha dropped (not composited)" in photo.notes


@pytest.mark.parametrize("mode", ["PA", "YCbCr", "LAB", "HSV", "CMYK"])
def test_other_modes_convert_like_pillow(mode):
    image = Image.fromarray(random_rgb(34, 34)).convert("RGBA" if mode == "PA" else "RGB")
    if mode == "PA":
        image = image.convert("P").convert("PA")
    elif mode in ("LAB", "HSV"):
        image = Image.frombytes(mode, image.size, image.tobytes())  # any triples are valid
    else:
        image = image.convert(mode)
    rgb, notes = photo_files.to_rgb_uint8(image)
    np.testing.assert_array_equal(rgb, np.asarray(image.convert("RGB")))
    assert rgb.flags.writeable and rgb.flags.c_contiguous
    assert any(f"({mode}) converted to RGB" in note for note in notes)


def test_cmyk_jpeg(tmp_path):
    # Flat patches survive JPEG almost exactly: white, cyan, magenta, yellow, black.
    inks = [(0, 0, 0, 0), (255, 0, 0, 0), (0, 255, 0, 0), (0, 0, 255, 0), (0, 0, 0, 255)]
    cmyk = np.concatenate([np.tile(np.array(ink, np.uint8), (32, 32, 1)) for ink in inks], axis=1)
    path = save(Image.fromarray(cmyk, "CMYK"), tmp_path / "print.jpg", quality=95)
    with Image.open(path) as reread:
        assert reread.mode == "CMYK"
    photo = photo_files.read_photo(path)
    expected = [(255, 255, 255), (0, 255, 255), (255, 0, 255), (255, 255, 0), (0, 0, 0)]
    centres = [photo.rgb[16, 32 * k + 16].astype(int) for k in range(len(inks))]
    for centre, colour in zip(centres, expected):
        assert np.abs(centre - colour).max() <= 3, (centre, colour)
    assert "CMYK (CMYK) converted to RGB" in photo.notes


# --- orientation ----------------------------------------------------------------------------

def exif_with_orientation(value: int) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = value
    return exif


def test_exif_rotated_jpeg_is_upright(tmp_path):
    stored = np.zeros((48, 80, 3), np.uint8)
    stored[:16, :16] = 255  # a white corner, top left as stored
    path = save(Image.fromarray(stored), tmp_path / "phone.jpg",
                exif=exif_with_orientation(6), quality=95)
    photo = photo_files.read_photo(path)
    as_stored = pillow_rgb(path)  # what the official code sees (orientation ignored)
    np.testing.assert_array_equal(photo.rgb, np.rot90(as_stored, k=-1))
    assert photo.original_size == (48, 80)
    assert photo.rgb[5, -5].min() > 200  # the corner is now top right
    assert photo.notes == ["EXIF orientation 6 applied"]


UPRIGHT_FROM_STORED = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.transpose(1, 0, 2),
    6: lambda a: np.rot90(a, k=-1),
    7: lambda a: a.transpose(1, 0, 2)[::-1, ::-1],
    8: lambda a: np.rot90(a, k=1),
}


@pytest.mark.parametrize("orientation", sorted(UPRIGHT_FROM_STORED))
def test_every_exif_orientation(tmp_path, orientation):
    stored = random_rgb(36, 50, seed=orientation)
    path = save(Image.fromarray(stored), tmp_path / "oriented.png",
                exif=exif_with_orientation(orientation))
    photo = photo_files.read_photo(path)
    np.testing.assert_array_equal(photo.rgb, UPRIGHT_FROM_STORED[orientation](stored))
    applied = [f"EXIF orientation {orientation} applied"] if orientation > 1 else []
    assert photo.notes == applied


# --- size -----------------------------------------------------------------------------------

@pytest.mark.parametrize("size, max_side, expected", [
    ((100, 60), 50, (50, 30)),
    ((60, 100), 50, (30, 50)),
    ((101, 33), 50, (50, 16)),    # 16.34 -> 16
    ((100, 25), 50, (50, 12)),    # 12.5 -> 12 (half to even)
    ((100, 35), 50, (50, 18)),    # 17.5 -> 18 (half to even)
    ((40, 30), 50, (40, 30)),     # already within
    ((1000, 1), 10, (10, 1)),     # never below 1
])
def test_fit_within(size, max_side, expected):
    assert photo_files.fit_within(size, max_side) == expected


def test_max_side_downscales_with_lanczos_and_says_so(tmp_path):
    rgb = random_rgb(80, 120)
    path = save(Image.fromarray(rgb), tmp_path / "wide.png")
    photo = photo_files.read_photo(path, max_side=60)
    expected = Image.fromarray(rgb).resize((60, 40), Image.Resampling.LANCZOS)
    np.testing.assert_array_equal(photo.rgb, np.asarray(expected))
    assert photo.original_size == (120, 80)
    assert photo.notes == ["downscaled from 120×80 to 60×40 (max side 60, Lanczos)"]
    full = photo_files.read_photo(path)
    np.testing.assert_array_equal(full.rgb, rgb)
    assert full.notes == []


def test_max_side_that_would_make_a_side_too_small(tmp_path):
    path = save(Image.fromarray(random_rgb(40, 400)), tmp_path / "strip.png")
    expect_error(path, "too elongated to downscale to max side 100 (would be 100×10;",
                 max_side=100)


def test_invalid_size_options(tmp_path):
    path = save(Image.fromarray(random_rgb(40, 40)), tmp_path / "a.png")
    with pytest.raises(ValueError):
        photo_files.read_photo(path, max_side=10)
    with pytest.raises(ValueError):
        photo_files.read_photo(path, min_side=0)


def test_pixel_limit_replaces_pillows_own(tmp_path, monkeypatch):
    assert photo_files.MAX_PIXELS >= 20000 * 15000  # a large legitimate scan loads by default
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow would refuse 64 x 64
    rgb = random_rgb(64, 64)
    path = save(Image.fromarray(rgb), tmp_path / "scan.png")
    with pytest.raises(Image.DecompressionBombError):
        Image.open(path)
    np.testing.assert_array_equal(photo_files.read_photo(path).rgb, rgb)
    expect_error(path, "too large to decode safely (64×64 = 4,096 pixels; the limit is 4,000",
                 max_pixels=4000)
    np.testing.assert_array_equal(photo_files.read_photo(path, max_pixels=None).rgb, rgb)
    assert Image.MAX_IMAGE_PIXELS == 1000  # restored after success and failure alike


def test_animated_gif_uses_first_frame(tmp_path):
    frames = [Image.fromarray(random_rgb(40, 40, seed=k)).convert("P") for k in range(3)]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    photo = photo_files.read_photo(path)
    np.testing.assert_array_equal(photo.rgb, np.asarray(frames[0].convert("RGB")))
    assert "first of 3 frames used" in photo.notes


# --- inputs are never changed ---------------------------------------------------------------

def test_reading_never_changes_input_files(tmp_path):
    inputs = [
        save(Image.fromarray(random_rgb(48, 80)), tmp_path / "rot.jpg",
             exif=exif_with_orientation(8)),
        save(Image.fromarray(ramp16()), tmp_path / "grey16.png"),
        save(Image.fromarray(random_rgb(40, 40)).convert("CMYK"), tmp_path / "cmyk.jpg"),
        save(Image.fromarray(random_rgb(40, 20)), tmp_path / "tiny.png"),
    ]
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(inputs[0].read_bytes()[:300])
    inputs.append(cut)
    before = {path: (digest(path), path.stat().st_mtime_ns) for path in inputs}
    for path in inputs:
        try:
            photo_files.read_photo(path, max_side=40)
        except PhotoError:
            pass
    assert {path: (digest(path), path.stat().st_mtime_ns) for path in inputs} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in inputs)


# --- listing --------------------------------------------------------------------------------

def test_list_photos(tmp_path):
    for name in ["b.jpg", "a.png", "notes.txt", "Z.TIF", ".hidden.jpg", "Thumbs.db",
                 f".c.png.1a2b3c{photo_files.TEMP_SUFFIX}"]:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "restored").mkdir()
    (tmp_path / "dangling.jpg").symlink_to(tmp_path / "nowhere.jpg")
    photos, notes = photo_files.list_photos(tmp_path)
    assert [p.name for p in photos] == ["Z.TIF", "a.png", "b.jpg", "dangling.jpg", "notes.txt"]
    assert all(p.parent == tmp_path for p in photos)
    assert notes == [
        ".c.png.1a2b3c.oldphoto-tmp: skipped (temporary file of an interrupted write)",
        ".hidden.jpg: skipped (hidden file)",
        "Thumbs.db: skipped (system file)",
        "restored: skipped (folder; sub-folders are not searched)",
    ]


def test_list_photos_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError):
        photo_files.list_photos(tmp_path / "absent")


# --- writing --------------------------------------------------------------------------------

def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(photo_files.TEMP_SUFFIX))


def test_write_png_atomic_round_trip_creates_folders_and_overwrites(tmp_path):
    path = tmp_path / "stage_1" / "restored_image" / "photo.png"
    first, second = random_rgb(30, 40, seed=1), random_rgb(20, 10, seed=2)
    photo_files.write_png_atomic(path, first)
    np.testing.assert_array_equal(pillow_rgb(path), first)
    photo_files.write_png_atomic(path, second)
    with Image.open(path) as written:
        assert written.format == "PNG"
        np.testing.assert_array_equal(np.asarray(written), second)
    assert leftovers(path.parent) == []


def test_write_png_atomic_writes_png_whatever_the_extension(tmp_path):
    path = tmp_path / "photo.jpg"
    photo_files.write_png_atomic(path, random_rgb(8, 8))
    with Image.open(path) as written:
        assert written.format == "PNG"


def test_new_file_permissions_follow_umask(tmp_path):
    old = os.umask(0o022)
    try:
        photo_files.write_png_atomic(tmp_path / "out.png", random_rgb(8, 8))
    finally:
        os.umask(old)
    assert (tmp_path / "out.png").stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize("failure", [OSError("No space left on device"), KeyboardInterrupt()])
def test_failed_write_leaves_no_partial_file(tmp_path, monkeypatch, failure):
    fresh, existing = tmp_path / "fresh.png", tmp_path / "existing.png"
    photo_files.write_png_atomic(existing, random_rgb(16, 16))
    existing_bytes = existing.read_bytes()

    def failing_save(self, fp, *args, **kwargs):
        fp.write(b"\x89PNG\r\n\x1a\n" + b"\x00" * 100)  # half-written, then the encoder dies
        raise failure

    monkeypatch.setattr(Image.Image, "save", failing_save)
    for path in (fresh, existing):
        with pytest.raises(type(failure)):
            photo_files.write_png_atomic(path, random_rgb(16, 16, seed=3))
    assert not fresh.exists()
    assert existing.read_bytes() == existing_bytes
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("bad", [
    np.zeros((8, 8), np.uint8), np.zeros((8, 8, 4), np.uint8), np.zeros((8, 8, 3), np.float32),
    np.zeros((0, 8, 3), np.uint8), [[[0, 0, 0]]],
])
def test_write_rejects_non_rgb_uint8(tmp_path, bad):
    with pytest.raises(ValueError):
        photo_files.write_png_atomic(tmp_path / "out.png", bad)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name, image_format, exact", [
    ("out.png", "PNG", True), ("OUT.PNG", "PNG", True), ("out.jpg", "JPEG", False),
    ("out.jpeg", "JPEG", False), ("out.tif", "TIFF", True), ("out.bmp", "BMP", True),
    ("out.webp", "WEBP", True),
])
def test_write_image_atomic_by_extension(tmp_path, name, image_format, exact):
    rgb = np.repeat(np.repeat(random_rgb(8, 8), 4, axis=0), 4, axis=1)  # blocky: JPEG-friendly
    path = tmp_path / name
    photo_files.write_image_atomic(path, rgb)
    with Image.open(path) as written:
        assert written.format == image_format
        decoded = np.asarray(written.convert("RGB")).astype(int)
    if exact:
        np.testing.assert_array_equal(decoded, rgb)
    else:
        assert np.abs(decoded - rgb).mean() < 3
    assert leftovers(tmp_path) == []


def test_write_image_atomic_unknown_extension(tmp_path):
    with pytest.raises(ValueError, match="unsupported output extension"):
        photo_files.write_image_atomic(tmp_path / "out.xyz", random_rgb(8, 8))
    assert list(tmp_path.iterdir()) == []
