"""Stage-1 pre-processing of the official code: what happens to a photo before a network sees it.

Reproduces, without PyTorch (reference sections 2.1, 3.3, 11.2, 11.3):

* ``Global/detection.py --input_size full_size``: resize to a multiple of 16 (PIL bicubic), PIL
  ``L`` grayscale, ``ToTensor`` + ``Normalize(0.5, 0.5)``, bilinear rescale so the short side is
  about 256 (``scale_tensor``);
* ``Global/test.py``: quality mode resizes to a multiple of 4 (PIL bilinear); scratch mode
  optionally dilates the mask (``--HR``), paints the holes white (``irregular_hole_synthesize``)
  and feeds the holed image plus the first channel of the mask.

Boundary conventions: photos are either ``PIL.Image.Image`` (where the official code resizes with
PIL) or uint8 ``H x W x 3`` RGB numpy arrays; masks as written to disk are uint8 ``H x W x 3`` with
values 0/255 (grey levels allowed where stated). Network tensors are float32 NHWC with batch 1:
images ``1 x H x W x C`` in [-1, 1], masks ``1 x H x W x 1`` in [0, 1] (1 = scratch).
"""
from __future__ import annotations

import numpy as np
from PIL import Image

from oldphoto_jax.layers import linear_source_taps

# Short side at which the official scratch-detection UNet runs
# (``scale_tensor(default_scale=256)``).
DETECTION_SHORT_SIDE = 256
# ``full_size`` detection input and the UNet need sides that are multiples of 16.
DETECTION_MULTIPLE = 16
# test.py quality mode (``data_transforms(img, scale=False)``) rounds sides to multiples of 4.
QUALITY_MULTIPLE = 4
# ``--HR`` sets ``mask_dilation = 3`` (three 3x3 dilations, i.e. one 7x7 square).
HR_MASK_DILATION = 3


def round_to_multiple(value: float, multiple: int) -> int:
    """``int(round(value / multiple) * multiple)`` with Python's half-to-even ``round``.

    This is the size rule of every official resize (e.g. 194 / 4 = 48.5 rounds to 48 -> 192).
    """
    return int(round(value / multiple) * multiple)


def resize_to_multiple(image: Image.Image, multiple: int,
                       resample: Image.Resampling) -> Image.Image:
    """Resize a PIL image so both sides are the nearest multiples of ``multiple``.

    Official: ``h = int(round(H / m) * m)``, ``w = int(round(W / m) * m)``; the image is returned
    unchanged when both already match, else ``img.resize((w, h), resample)`` (PIL, antialiased).
    Used with ``(4, BILINEAR)`` by test.py's quality mode and ``(16, BICUBIC)`` by detection's
    ``full_size``.
    """
    width, height = image.size
    new_height = round_to_multiple(height, multiple)
    new_width = round_to_multiple(width, multiple)
    if (new_height, new_width) == (height, width):
        return image
    return image.resize((new_width, new_height), resample)


def to_unit_float(image_uint8: np.ndarray) -> np.ndarray:
    """``transforms.ToTensor`` values: ``float32(u8) / 255`` (a true float32 division)."""
    return np.asarray(image_uint8).astype(np.float32) / np.float32(255.0)


def to_network_input(image_uint8: np.ndarray) -> np.ndarray:
    """``ToTensor`` + ``Normalize(0.5, 0.5)`` of an ``H x W x C`` (or ``H x W``) uint8 image.

    Computed in float32 in torch's order, ``(u8 / 255 - 0.5) / 0.5``. Returns float32
    ``1 x H x W x C`` in [-1, 1] (``C = 1`` for a 2-D input).
    """
    image_uint8 = np.asarray(image_uint8)
    if image_uint8.ndim == 2:
        image_uint8 = image_uint8[:, :, None]
    half = np.float32(0.5)
    return ((to_unit_float(image_uint8) - half) / half)[None]


def grayscale(rgb_uint8: np.ndarray) -> np.ndarray:
    """PIL's ``convert("L")`` of an ``H x W x 3`` uint8 RGB image -> uint8 ``H x W``.

    ITU-R 601-2 luma in PIL's fixed-point form: ``(19595 R + 38470 G + 7471 B + 2**15) >> 16``.
    """
    rgb = np.asarray(rgb_uint8).astype(np.uint32)
    luma = (19595 * rgb[..., 0] + 38470 * rgb[..., 1] + 7471 * rgb[..., 2] + (1 << 15)) >> 16
    return luma.astype(np.uint8)


def detection_network_size(height: int, width: int) -> tuple[int, int]:
    """Spatial size ``(h', w')`` at which the scratch UNet runs for an ``height x width`` image.

    Official ``scale_tensor`` (its variable names ``w, h`` actually hold rows, cols): if the image
    has fewer rows than columns, rows -> 256 and columns -> ``W / H * 256``; otherwise columns ->
    256 and rows -> ``H / W * 256``; each then rounded to a multiple of 16 (half-to-even).
    """
    if height < width:
        rows, cols = DETECTION_SHORT_SIDE, width / height * DETECTION_SHORT_SIDE
    else:
        rows, cols = height / width * DETECTION_SHORT_SIDE, DETECTION_SHORT_SIDE
    return (round_to_multiple(rows, DETECTION_MULTIPLE),
            round_to_multiple(cols, DETECTION_MULTIPLE))


def resize_bilinear_numpy(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``F.interpolate(x, size, mode="bilinear", align_corners=False)`` (no antialias) on NHWC.

    float32 numpy version of ``oldphoto_jax.layers.resize_bilinear``: the same source taps, with
    the width interpolated first and the height second as PyTorch's CPU kernel does.
    """
    x = np.asarray(x, dtype=np.float32)
    out_h, out_w = size
    c0, c1, cw0, cw1 = linear_source_taps(x.shape[2], out_w)
    r0, r1, rw0, rw1 = linear_source_taps(x.shape[1], out_h)
    cw0, cw1 = cw0[None, None, :, None], cw1[None, None, :, None]
    rows = x[:, r0], x[:, r1]
    top = rows[0][:, :, c0] * cw0 + rows[0][:, :, c1] * cw1
    bottom = rows[1][:, :, c0] * cw0 + rows[1][:, :, c1] * cw1
    return rw0[None, :, None, None] * top + rw1[None, :, None, None] * bottom


def restoration_origin(image: Image.Image) -> np.ndarray:
    """The photo the scratch modes restore: RGB resized to multiples of 16 with PIL bicubic
    (uint8 ``H x W x 3``; what :func:`detection_input` returns first)."""
    resized = resize_to_multiple(image.convert("RGB"), DETECTION_MULTIPLE, Image.BICUBIC)
    return np.asarray(resized, dtype=np.uint8)


def detection_input(image: Image.Image) -> tuple[np.ndarray, np.ndarray]:
    """Official detection pre-processing with ``--input_size full_size`` (run.py's setting).

    Returns ``(rgb_x16, unet_input)``: the RGB photo resized to multiples of 16 with PIL bicubic
    (uint8 ``H x W x 3``; this is the image detection.py saves to ``masks/input`` and test.py
    later restores) and the UNet input, float32 ``1 x h' x w' x 1`` in [-1, 1]: grayscale,
    normalised, then bilinearly rescaled to :func:`detection_network_size`.
    """
    rgb_x16 = restoration_origin(image)
    gray = to_network_input(grayscale(rgb_x16))
    size = detection_network_size(*rgb_x16.shape[:2])
    return rgb_x16, resize_bilinear_numpy(gray, size)


def dilate_mask(mask_uint8: np.ndarray, iterations: int = HR_MASK_DILATION) -> np.ndarray:
    """``cv2.dilate(mask, np.ones((3, 3), np.uint8), iterations=iterations)`` (test.py ``--HR``).

    Three iterations of the 3x3 square equal one 7x7 square dilation. Pixels outside the image do
    not contribute (OpenCV's default border for dilation).
    """
    kernel = np.ones((3, 3), np.uint8)
    import cv2  # here, not at import: only --HR needs it (~16 MiB resident)

    return cv2.dilate(np.ascontiguousarray(mask_uint8, dtype=np.uint8), kernel,
                      iterations=iterations)


def paint_holes(rgb_uint8: np.ndarray, mask_uint8: np.ndarray) -> np.ndarray:
    """Official ``irregular_hole_synthesize``: ``img * (1 - m / 255) + (m / 255) * 255`` -> uint8.

    Computed per channel in float64 in the official order, then truncated to uint8 (numpy
    ``astype``), so grey-level masks blend towards white and binary masks (0/255) set the
    holes to exactly 255. ``mask_uint8`` has the image's shape (RGB mask as read from disk).
    """
    image = np.asarray(rgb_uint8, dtype=np.uint8)
    alpha = np.asarray(mask_uint8, dtype=np.uint8) / 255
    painted = image * (1 - alpha) + alpha * 255
    return painted.astype(np.uint8)


def mask_network_input(mask_uint8: np.ndarray) -> np.ndarray:
    """``ToTensor(mask)[:1]``: first channel of the RGB mask / 255, float32 ``1 x H x W x 1``."""
    mask_uint8 = np.asarray(mask_uint8)
    first = mask_uint8[..., :1] if mask_uint8.ndim == 3 else mask_uint8[..., None]
    return to_unit_float(first)[None]


def quality_input(image: Image.Image) -> tuple[Image.Image, np.ndarray]:
    """test.py ``--test_mode Full`` (quality mode) pre-processing.

    Returns ``(origin, network_input)``: the RGB photo resized to multiples of 4 with PIL
    bilinear (unchanged when already a multiple), and its ``1 x H x W x 3`` network input.
    """
    origin = resize_to_multiple(image.convert("RGB"), QUALITY_MULTIPLE, Image.BILINEAR)
    return origin, to_network_input(np.asarray(origin, dtype=np.uint8))


def scratch_inputs(rgb_x16: np.ndarray, mask_png: np.ndarray,
                   dilation_iterations: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """test.py scratch-mode pre-processing (``--Scratch_and_Quality_restore`` [``--HR``]).

    No resizing. When ``dilation_iterations`` is not 0 (``--HR``: 3) the RGB mask is dilated
    first. Returns ``(image_input, mask_input, mask_used)``: the network input of the photo with
    holes painted white (``1 x H x W x 3``), the mask input (``1 x H x W x 1``, 1 = scratch) and
    the (possibly dilated) uint8 RGB mask that both were made from.
    """
    mask_used = np.asarray(mask_png, dtype=np.uint8)
    if dilation_iterations != 0:
        mask_used = dilate_mask(mask_used, dilation_iterations)
    holed = paint_holes(rgb_x16, mask_used)
    return to_network_input(holed), mask_network_input(mask_used), mask_used
