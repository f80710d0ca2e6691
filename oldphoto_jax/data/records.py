"""One training record of a kind (``config.records``) as a pure function of (config, photos, global record index).

``TrainingRecords(config, photos)(index)`` returns a dict of numpy arrays: images uint8
``H x W x C``, masks uint8 {0, 1} ``H x W x 1``, flags float32 scalars (0 or 1); the pipeline
turns batches of them into model inputs with ``transforms.model_inputs``. Every random
choice of record ``index`` comes from generators seeded with
``(config.seed, records code, index, stream)``:

* stream 0 (layout): photo choice, real-or-synthetic, crop offset, flip, grayscale, empty mask;
* stream 1: the ``data_synth.degrade`` seed, so a degradation can be replayed on its own;
* stream 2 with the epoch instead of the index: the photo order of that epoch;
* stream 3: the downscale factor when ``config.scale_range`` is set (its own stream, so the
  other draws are those of a run without it);
* stream 4: the zoom of a ``detection`` record when ``config.detection_zoom_range`` is set.

So the record does not depend on which process makes it, on worker count or on what was made
before; grain only decides which indices are asked for.

Photo choice: ``domain_a`` and ``domain_b`` draw photos uniformly with replacement (the official
loaders ignore the index; ``domain_a`` picks one of the old-photo sets uniformly, then a photo of
that set). The other kinds make passes over the photos in a shuffled order that changes each
epoch: record ``index`` is photo ``order(epoch)[position]`` with
``epoch, position = divmod(index, number of photos)``.

Records per kind (reference sections 10.2-10.4, 11.2):

* ``domain_a``: ``image``, ``real_old`` (1 real old photo, 0 degraded clean photo), ``grayscale``;
* ``domain_b``: ``image``, ``grayscale``;
* ``mapping``: ``degraded``, ``clean``, ``grayscale``;
* ``mapping_mask``: ``degraded``, ``clean``, ``mask``, ``grayscale``;
* ``detection``: ``image`` (1 luma channel or RGB), ``mask``, ``grayscale``;
* ``faces``: ``degraded``, ``clean``, ``grayscale``.
"""
from __future__ import annotations

import dataclasses
import functools

import numpy as np

import data_synth
from oldphoto_jax.data import config as config_lib
from oldphoto_jax.data import transforms
from oldphoto_jax.data.photos import PhotoSource

LAYOUT_STREAM = 0
DEGRADE_STREAM = 1
ORDER_STREAM = 2
SCALE_STREAM = 3
ZOOM_STREAM = 4


@dataclasses.dataclass(frozen=True)
class TrainingPhotos:
    """The photo collections a training task reads.

    ``clean``: clean photos (every kind of records but ``faces``); ``old``: sets of real old photos
    (``domain_a``; the official run uses two, grey and colour, each drawn with equal
    probability); ``faces``: aligned clean faces (``faces``; see ``face_bank``).
    """

    clean: PhotoSource | None = None
    old: tuple[PhotoSource, ...] = ()
    faces: PhotoSource | None = None

    def indexed(self, records: str) -> PhotoSource:
        """The collection the shuffled passes of indexed records run over."""
        return self.faces if records == "faces" else self.clean


def record_seed(config: config_lib.InputConfig, index: int, stream: int) -> tuple[int, ...]:
    """The seed of one random stream of record ``index``."""
    return (config.seed, config.records_code, int(index), stream)


@functools.lru_cache(maxsize=8)
def epoch_order(seed: int, records_code: int, epoch: int, count: int) -> np.ndarray:
    """The shuffled photo order of one epoch (cached: consecutive records share it)."""
    order = np.random.default_rng((seed, records_code, epoch, ORDER_STREAM)).permutation(count)
    order.setflags(write=False)
    return order


def indexed_photo(config: config_lib.InputConfig, index: int, count: int) -> int:
    """The photo of record ``index`` in the shuffled passes over ``count`` photos."""
    epoch, position = divmod(int(index), count)
    return int(epoch_order(config.seed, config.records_code, epoch, count)[position])


def _check_photos(config: config_lib.InputConfig, photos: TrainingPhotos) -> None:
    if config.records == "faces":
        if photos.faces is None or len(photos.faces) == 0:
            raise ValueError("the faces records need aligned faces (TrainingPhotos.faces)")
        return
    if photos.clean is None or len(photos.clean) == 0:
        raise ValueError(f"the {config.records} records need clean photos (TrainingPhotos.clean)")
    if config.records == "domain_a" and config.real_old_p > 0:
        if not photos.old or any(len(source) == 0 for source in photos.old):
            raise ValueError("domain_a with real_old_p > 0 needs old photos (TrainingPhotos.old)")


class TrainingRecords:
    """Callable making record ``index`` of ``config.records`` from ``photos`` (picklable, so grain
    workers can run it)."""

    def __init__(self, config: config_lib.InputConfig, photos: TrainingPhotos):
        _check_photos(config, photos)
        self.config = config
        self.photos = photos
        damaged = config.degradation_config()
        undamaged = config_lib.without_local_damage(damaged)
        self.damaged_recipe = damaged
        self.undamaged_recipe = undamaged
        self.domain_a_recipe = damaged if config.domain_a_local_damage else undamaged
        self.empty_mask_p = config.resolved_empty_mask_p()

    def __call__(self, index: int) -> dict[str, np.ndarray]:
        return getattr(self, f"_{self.config.records}")(int(index))

    def __repr__(self) -> str:
        return f"TrainingRecords({self.config.records}, seed={self.config.seed})"

    # --- shared steps --------------------------------------------------------------------------

    def _layout_rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng(record_seed(self.config, index, LAYOUT_STREAM))

    def _window(self, image: np.ndarray, rng: np.random.Generator,
                size: int | None = None) -> tuple[int, int, bool]:
        """(top, left, flip) of the record's crop (``size`` px, default the crop size)."""
        size = self.config.crop_size if size is None else size
        top, left = transforms.crop_offset(*image.shape[:2], size, rng)
        return top, left, bool(rng.random() < self.config.flip_p)

    def _cut(self, image: np.ndarray, window: tuple[int, int, bool]) -> np.ndarray:
        top, left, flip = window
        out = transforms.crop(image, top, left, self.config.crop_size)
        return transforms.hflip(out) if flip else out

    def _at_scale(self, photo: np.ndarray, index: int) -> np.ndarray:
        """The photo downscaled by record ``index``'s factor (``config.scale_range``), then
        upscaled to the crop size where its short side is smaller."""
        if self.config.scale_range is not None:
            rng = np.random.default_rng(record_seed(self.config, index, SCALE_STREAM))
            factor = rng.uniform(*self.config.scale_range)
            photo = transforms.downscale(photo, factor, self.config.crop_size)
        return transforms.upscale_short_side(photo, self.config.crop_size)

    def _uniform_photo(self, source: PhotoSource, rng: np.random.Generator,
                       index: int) -> np.ndarray:
        return self._at_scale(source[int(rng.integers(len(source)))], index)

    def _indexed_photo(self, index: int) -> np.ndarray:
        source = self.photos.indexed(self.config.records)
        return source[indexed_photo(self.config, index, len(source))]

    def _degraded_pair(self, photo: np.ndarray, index: int, rng: np.random.Generator, recipe,
                       full_image: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
        """(degraded crop, clean target crop, mask crop, grayscale) with one shared crop and flip.

        ``full_image``: degrade the photo, then crop (VAE_A, quality mapping); else crop, then
        degrade the crop (scratch mapping). The flip comes after the degradation in both.
        """
        seed = record_seed(self.config, index, DEGRADE_STREAM)
        window = self._window(photo, rng)
        if full_image:
            sample = data_synth.degrade(photo, seed, recipe)
            clean = sample.target(self._cut(photo, window))
            return (self._cut(sample.degraded, window), clean, self._cut(sample.mask, window),
                    sample.grayscale)
        top, left, flip = window
        clean = transforms.crop(photo, top, left, self.config.crop_size)
        sample = data_synth.degrade(clean, seed, recipe)
        pair = (sample.degraded, sample.target(clean), sample.mask)
        if flip:
            pair = tuple(transforms.hflip(a) for a in pair)
        return (*pair, sample.grayscale)

    def _masked_recipe(self, rng: np.random.Generator):
        """The recipe of a ``mapping_mask``/``detection`` record: no local damage with
        probability ``empty_mask_p``."""
        empty = rng.random() < self.empty_mask_p
        return self.undamaged_recipe if empty else self.damaged_recipe

    # --- records -------------------------------------------------------------------------------

    def _domain_a(self, index: int) -> dict[str, np.ndarray]:
        rng = self._layout_rng(index)
        real = bool(rng.random() < self.config.real_old_p)
        if real:
            old = self.photos.old[int(rng.integers(len(self.photos.old)))]
            photo = self._uniform_photo(old, rng, index)
            image = self._cut(photo, self._window(photo, rng))
            gray = bool(rng.random() < self.config.grayscale_p)
            if gray:
                image = transforms.grayscale(image)
        else:
            photo = self._uniform_photo(self.photos.clean, rng, index)
            image, _, _, gray = self._degraded_pair(
                photo, index, rng, self.domain_a_recipe, self.config.degrade_full_image)
        return {"image": image, "real_old": np.float32(real), "grayscale": np.float32(gray)}

    def _domain_b(self, index: int) -> dict[str, np.ndarray]:
        rng = self._layout_rng(index)
        photo = self._uniform_photo(self.photos.clean, rng, index)
        image = self._cut(photo, self._window(photo, rng))
        gray = bool(rng.random() < self.config.grayscale_p)
        if gray:
            image = transforms.grayscale(image)
        return {"image": image, "grayscale": np.float32(gray)}

    def _mapping(self, index: int) -> dict[str, np.ndarray]:
        rng = self._layout_rng(index)
        photo = self._at_scale(self._indexed_photo(index), index)
        degraded, clean, _, gray = self._degraded_pair(
            photo, index, rng, self.undamaged_recipe, self.config.degrade_full_image)
        return {"degraded": degraded, "clean": clean, "grayscale": np.float32(gray)}

    def _mapping_mask(self, index: int) -> dict[str, np.ndarray]:
        rng = self._layout_rng(index)
        photo = self._at_scale(self._indexed_photo(index), index)
        recipe = self._masked_recipe(rng)
        degraded, clean, mask, gray = self._degraded_pair(photo, index, rng, recipe, False)
        mask = transforms.binary_mask(mask)
        if self.config.paint_holes:
            degraded, mask = transforms.paint_mask_holes(degraded, mask, self.config.hole_dilation)
        return {"degraded": degraded, "clean": clean, "mask": mask,
                "grayscale": np.float32(gray)}

    def _detection(self, index: int) -> dict[str, np.ndarray]:
        rng = self._layout_rng(index)
        photo = self._at_scale(self._indexed_photo(index), index)
        recipe = self._masked_recipe(rng)
        if self.config.detection_zoom_range is not None:
            return self._zoomed_detection(photo, index, rng, recipe)
        degraded, _, mask, gray = self._degraded_pair(photo, index, rng, recipe, False)
        if self.config.detection_channels == 1:
            degraded = transforms.luma(degraded)
        return {"image": degraded, "mask": transforms.binary_mask(mask),
                "grayscale": np.float32(gray)}

    def _zoomed_detection(self, photo: np.ndarray, index: int, rng: np.random.Generator,
                          recipe) -> dict[str, np.ndarray]:
        """A ``detection`` record as inference's detection sees damage (``InputConfig``'s
        ``detection_zoom_range``): drawn on a larger window at the photo's scale, shrunk."""
        size = self.config.crop_size
        zoom = np.random.default_rng(record_seed(self.config, index, ZOOM_STREAM)).uniform(
            *self.config.detection_zoom_range)
        side = min(max(size, round(size / zoom)), *photo.shape[:2])
        top, left, flip = self._window(photo, rng, side)
        window = transforms.crop(photo, top, left, side)
        sample = data_synth.degrade(window, record_seed(self.config, index, DEGRADE_STREAM),
                                    recipe)
        degraded = sample.degraded
        if self.config.detection_channels == 1:
            degraded = transforms.luma(degraded)
        image, mask = transforms.shrink_for_detection(
            degraded, sample.mask, size, self.config.detection_zoom_coverage)
        if flip:
            image, mask = transforms.hflip(image), transforms.hflip(mask)
        return {"image": image, "mask": mask, "grayscale": np.float32(sample.grayscale)}

    def _faces(self, index: int) -> dict[str, np.ndarray]:
        rng = self._layout_rng(index)
        face = transforms.resize_square(self._indexed_photo(index), self.config.crop_size)
        degraded, clean, _, gray = self._degraded_pair(
            face, index, rng, self.undamaged_recipe, True)
        return {"degraded": degraded, "clean": clean, "grayscale": np.float32(gray)}
