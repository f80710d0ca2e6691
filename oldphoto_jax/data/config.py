"""Settings of the training input pipeline and the degradation recipe each kind of records uses.

One ``InputConfig`` describes the batches of one training task; ``records`` names what they hold:

* ``domain_a``: VAE_A images; ``real_old_p`` of them real old photos (flag 1), the rest clean photos
  degraded at full size before the crop (flag 0). Reference section 10.2.
* ``domain_b``: VAE_B images, clean photos only (section 10.3).
* ``mapping``: quality-mapping pairs (degraded, clean); degradation of the full image, then one
  shared crop and flip; no local damage (section 10.4, ``PairOldPhotos``).
* ``mapping_mask``: scratch/HR-mapping pairs with a damage mask; the 256 crop is degraded, local
  damage included (section 10.4, ``PairOldPhotos_with_hole``).
* ``detection``: scratch-detection pairs (degraded crop, its local-damage mask); grey by default,
  as the detector reads luma (section 2.1).
* ``faces``: (degraded, clean) aligned faces for the face enhancer (section 10.6).

Grayscale: a degraded image is made grey only by the degradation recipe itself (the official preset
converts with p = 0.1 after the unstructured ops, exactly the official 10%; the extended preset
starts from a black-and-white print with its own p), and its clean target follows it. Images that
are not degraded (real old photos in ``domain_a``, clean photos in ``domain_b``) are made grey with
``grayscale_p``.

Local damage (ops that write a mask: holes, scratches, dust, ...) runs in ``mapping_mask`` and
``detection`` only, as in the release; ``domain_a_local_damage`` adds it to the synthetic half of
``domain_a`` (the paper's VAE_A sees structured damage; the release's does not).
"""
from __future__ import annotations

import dataclasses

import ml_collections

from data_synth import config as synth_config
from data_synth import ops as synth_ops

RECORDS = ("domain_a", "domain_b", "mapping", "mapping_mask", "detection", "faces")
# Stable small integers that separate the random streams of the kinds of records (never
# Python's hash()).
RECORD_CODES = {name: code for code, name in enumerate(RECORDS, start=1)}


@dataclasses.dataclass(frozen=True)
class InputConfig:
    """Input settings of one training task (see the module docstring for the kinds of ``records``).

    ``batch_size`` is the global batch; each of the ``process_count`` hosts builds
    ``batch_size / process_count`` records per step. ``preset`` names a ``data_synth`` preset
    ("official" or "extended"); ``degradation`` replaces it with a full ``data_synth`` config
    (for instance the official preset with ``ops.holes.mask_dir`` set to an irregular-mask set).
    ``empty_mask_p``: in ``mapping_mask`` and ``detection``, the probability that a sample gets no
    local damage and an all-zero mask; ``None`` lets the recipe decide (the official preset's holes
    op already runs with p = 0.5, the official half of empty masks, so 0; otherwise 0.5).
    ``degrade_full_image``: degrade the whole photo before cropping (official for ``domain_a`` and
    ``mapping``; about 10x the work of degrading the crop for 1024 px photos); False degrades the
    crop. ``output_dtype``: "float32" (images in [-1, 1], masks {0, 1}) or "uint8" (raw values,
    a quarter of the bytes to move to the accelerator; convert there with ``u8 / 127.5 - 1``).
    ``scale_range``: ``(low, high)`` in (0, 1]: each photo is first downscaled by a factor
    drawn uniformly from it (Lanczos; never below the crop size on its short side), so crops
    show content at several scales; ``None`` (default, the release) crops at the photo's own
    scale. Every kind of records but ``faces``.
    ``paint_holes``: in ``mapping_mask``, paint the damage mask white over the degraded crop,
    as inference does before the scratch and HR mappings (``irregular_hole_synthesize`` on the
    detected mask), after dilating it ``hole_dilation`` times with a 3x3 square (``--HR``
    inference dilates 3 times); the network is given the dilated mask. Off (the release: only
    its irregular holes are white), the mapping sees the damage itself, never the white bands
    inference gives it.
    ``detection_zoom_range``: ``(low, high)`` in (0, 1]: ``detection`` records are drawn as
    inference's detection sees a photo, shrunk to 256 px on its short side: a window of
    ``crop_size / zoom`` px (zoom uniform in the range; at most the photo's short side) is
    degraded at the photo's scale, then resized to the crop with the detection input's bilinear
    resize (no antialiasing), and a crop pixel is labelled damaged where at least
    ``detection_zoom_coverage`` of the window pixels it covers are (area average). ``None``
    (default): damage drawn on the crop at the scale the network sees (thicker than inference
    shows the same damage on photos above 256 px).
    ``num_workers``: grain worker processes (0 = in the training process);
    ``read_threads`` and ``prefetch_batches`` are per process. ``cache_mb``: decoded photos kept
    in memory by each process.
    """

    records: str
    batch_size: int = 8
    crop_size: int = 256
    seed: int = 0
    preset: str = "official"
    degradation: ml_collections.ConfigDict | None = None
    real_old_p: float = 0.5
    grayscale_p: float = 0.1
    flip_p: float = 0.5
    empty_mask_p: float | None = None
    degrade_full_image: bool = True
    scale_range: tuple[float, float] | None = None
    domain_a_local_damage: bool = False
    paint_holes: bool = False
    hole_dilation: int = 0
    detection_channels: int = 1
    detection_zoom_range: tuple[float, float] | None = None
    detection_zoom_coverage: float = 0.25
    output_dtype: str = "float32"
    num_workers: int = 0
    read_threads: int = 1
    prefetch_batches: int = 2
    cache_mb: int = 512

    def __post_init__(self):
        if self.records not in RECORDS:
            raise ValueError(f"unknown records {self.records!r}; choose from {RECORDS}")
        if self.batch_size < 1 or self.crop_size < 1:
            raise ValueError("batch_size and crop_size must be positive")
        if not 0 <= self.seed < 2**63:
            raise ValueError("seed must be a non-negative 63-bit integer")
        for name in ("real_old_p", "grayscale_p", "flip_p"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be a probability")
        if self.scale_range is not None:
            low, high = self.scale_range
            if not 0.0 < low <= high <= 1.0:
                raise ValueError(f"scale_range must be (low, high) with 0 < low <= high <= 1, "
                                 f"got {self.scale_range}")
        if self.detection_zoom_range is not None:
            low, high = self.detection_zoom_range
            if not 0.0 < low <= high <= 1.0:
                raise ValueError(f"detection_zoom_range must be (low, high) with "
                                 f"0 < low <= high <= 1, got {self.detection_zoom_range}")
        if not 0.0 < self.detection_zoom_coverage <= 1.0:
            raise ValueError("detection_zoom_coverage must be in (0, 1]")
        if self.hole_dilation < 0:
            raise ValueError("hole_dilation must be >= 0")
        if self.hole_dilation and not self.paint_holes:
            raise ValueError("hole_dilation dilates the painted holes: set paint_holes too")
        if self.empty_mask_p is not None and not 0.0 <= self.empty_mask_p <= 1.0:
            raise ValueError("empty_mask_p must be a probability or None")
        if self.output_dtype not in ("float32", "uint8"):
            raise ValueError("output_dtype must be 'float32' or 'uint8'")
        if self.detection_channels not in (1, 3):
            raise ValueError("detection_channels must be 1 (luma) or 3 (RGB)")
        if self.num_workers < 0 or self.read_threads < 0 or self.prefetch_batches < 1:
            raise ValueError("num_workers, read_threads >= 0 and prefetch_batches >= 1")

    @property
    def records_code(self) -> int:
        return RECORD_CODES[self.records]

    def degradation_config(self) -> ml_collections.ConfigDict:
        """The full ``data_synth`` recipe of these records (before local damage is removed)."""
        if self.degradation is not None:
            return ml_collections.ConfigDict(self.degradation.to_dict())
        return synth_config.get_preset(self.preset)

    def resolved_empty_mask_p(self) -> float:
        """``empty_mask_p``, or the recipe's default when it is ``None``."""
        if self.empty_mask_p is not None:
            return self.empty_mask_p
        return 0.0 if self.degradation_config().get("preset") == "official" else 0.5


def local_damage_steps(degradation: ml_collections.ConfigDict) -> tuple[str, ...]:
    """The steps of a ``data_synth`` recipe that contain an op writing a damage mask."""
    return tuple(
        step for step in degradation.step_order
        if any(synth_ops.get_op(op).local for op in degradation.steps[step].ops)
    )


def without_local_damage(degradation: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """The recipe with its local-damage steps removed (its masks are then always empty)."""
    dropped = set(local_damage_steps(degradation))
    return synth_config.only_steps(
        degradation, *(step for step in degradation.step_order if step not in dropped))


def host_batch_size(config: InputConfig, process_count: int) -> int:
    """Records per step on each host: the global batch split evenly over the hosts."""
    if process_count < 1 or config.batch_size % process_count:
        raise ValueError(
            f"global batch {config.batch_size} does not split over {process_count} processes")
    return config.batch_size // process_count


def steps_per_epoch(num_photos: int, global_batch: int) -> int:
    """The official epoch length, floor(N / B) steps (at least 1), for learning-rate schedules."""
    return max(1, num_photos // global_batch)
