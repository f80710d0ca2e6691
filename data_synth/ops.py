"""The op registry: for each op name, how to draw its parameters from a config and how to run it.

An op is a pair of functions:

* ``sample(rng, cfg, shape) -> dict`` draws the scalar parameters from the op's config ranges
  (plain Python values, recorded in ``DegradedSample.applied``);
* ``apply(image, rng, params, cfg, min_change) -> OpOutput`` runs the op with the drawn
  ``params`` and the fixed settings of its config ``cfg``; random fields and random geometry are
  drawn from ``rng`` here.

Local ops return a damage mask (float32 (H, W) in [0, 1], 1 = damaged); global ops return None.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable, NamedTuple

import numpy as np

from data_synth import ageing, folds, holes, scratches, spots, tears, unstructured


class OpOutput(NamedTuple):
    image: np.ndarray
    mask: np.ndarray | None


@dataclasses.dataclass(frozen=True)
class Op:
    """One degradation: parameter sampler and application function."""

    name: str
    sample: Callable[[np.random.Generator, Any, tuple[int, ...]], dict]
    apply: Callable[[np.ndarray, np.random.Generator, dict, Any, float], OpOutput]
    local: bool = False


def _uniform(rng: np.random.Generator, bounds) -> float:
    return float(rng.uniform(bounds[0], bounds[1]))


def _integer(rng: np.random.Generator, bounds) -> int:
    return int(rng.integers(bounds[0], bounds[1] + 1))


def _choice(rng: np.random.Generator, options):
    return options[int(rng.integers(len(options)))]


def _global(function: Callable[..., np.ndarray], uses_rng: bool = False):
    """Wraps ``function(image, [rng,] **params)`` as an op application with no mask."""

    def apply(image, rng, params, cfg, min_change):
        out = function(image, rng, **params) if uses_rng else function(image, **params)
        return OpOutput(out, None)

    return apply


def _local(function: Callable[..., tuple[np.ndarray, np.ndarray]], settings: Callable[[Any], dict]):
    """Wraps ``function(image, rng, **params, **settings(cfg), min_change=...)``, which
    returns (image, boolean mask), as an op application."""

    def apply(image, rng, params, cfg, min_change):
        out, mask = function(image, rng, min_change=min_change, **params, **settings(cfg))
        return OpOutput(out, mask.astype(np.float32))

    return apply


# --- unstructured (official) ---------------------------------------------------------------


def _sample_blur(rng, cfg, shape):
    return {"kernel_size": int(_choice(rng, cfg.kernel_sizes)), "sigma": _uniform(rng, cfg.sigma)}


def _sample_noise(rng, cfg, shape):
    kind = _choice(rng, cfg.kinds)
    if kind == "salt_pepper":
        return {
            "kind": kind,
            "amount": _uniform(rng, cfg.salt_pepper_amount),
            "salt_fraction": _uniform(rng, cfg.salt_fraction),
        }
    return {"kind": kind, "sigma": _uniform(rng, cfg.sigma)}


def _apply_noise(image, rng, params, cfg, min_change):
    params = dict(params)
    kind = params.pop("kind")
    function = {
        "gaussian": unstructured.gaussian_noise,
        "speckle": unstructured.speckle_noise,
        "salt_pepper": unstructured.salt_and_pepper,
    }[kind]
    return OpOutput(function(image, rng, **params), None)


def _sample_low_resolution(rng, cfg, shape):
    height, width = shape[:2]
    return {
        "new_width": _integer(rng, (int(width * cfg.min_scale), width)),
        "new_height": _integer(rng, (int(height * cfg.min_scale), height)),
        "upsample": _choice(rng, cfg.upsample),
    }


def _sample_jpeg(rng, cfg, shape):
    return {"quality": _integer(rng, cfg.quality)}


# --- holes ---------------------------------------------------------------------------------


def _sample_holes(rng, cfg, shape):
    if cfg.mask_dir:
        return {"mask_file": _choice(rng, holes.list_mask_files(cfg.mask_dir))}
    return {"mask_file": None}


def _apply_holes(image, rng, params, cfg, min_change):
    height, width = image.shape[:2]
    if params["mask_file"] is not None:
        mask = holes.load_mask(params["mask_file"], height, width)
    else:
        mask = holes.irregular_mask(rng, height, width, tuple(cfg.strokes), tuple(cfg.thickness))
    return OpOutput(holes.paint_holes(image, mask), mask.astype(np.float32) / np.float32(255.0))


# --- ageing --------------------------------------------------------------------------------


def _sample_contrast_loss(rng, cfg, shape):
    return {"black": _uniform(rng, cfg.black), "white": _uniform(rng, cfg.white)}


def _sample_fade(rng, cfg, shape):
    base = _uniform(rng, cfg.paper)
    paper = (base, base - _uniform(rng, (2.0, 10.0)), base - _uniform(rng, (8.0, 30.0)))
    return {
        "amount": _uniform(rng, cfg.amount),
        "desaturation": _uniform(rng, cfg.desaturation),
        "paper": paper,
    }


def _sample_sepia(rng, cfg, shape):
    tint = (1.0, _uniform(rng, cfg.green_tint), _uniform(rng, cfg.blue_tint))
    return {"strength": _uniform(rng, cfg.strength), "tint": tint}


def _sample_paper_texture(rng, cfg, shape):
    return {"strength": _uniform(rng, cfg.strength), "cell": _uniform(rng, cfg.cell)}


def _sample_film_grain(rng, cfg, shape):
    return {"amount": _uniform(rng, cfg.amount), "size": _uniform(rng, cfg.size)}


def _sample_halftone(rng, cfg, shape):
    return {
        "period": _uniform(rng, cfg.period),
        "angle": _uniform(rng, (0.0, 90.0)),
        "strength": _uniform(rng, cfg.strength),
    }


def _sample_vignette(rng, cfg, shape):
    jitter = cfg.centre_jitter
    centre = (0.5 + _uniform(rng, (-jitter, jitter)), 0.5 + _uniform(rng, (-jitter, jitter)))
    return {
        "strength": _uniform(rng, cfg.strength),
        "power": _uniform(rng, cfg.power),
        "centre": centre,
    }


# --- local damage: drawn counts are recorded, the config's fixed settings are passed along ---


def _sample_count(rng, cfg, shape):
    return {"count": _integer(rng, cfg.count)}


def _scratch_settings(cfg):
    return {
        "dark_fraction": float(cfg.dark_fraction),
        "length_range": tuple(cfg.length),
        "opacity_range": tuple(cfg.opacity),
        "max_blur_sigma": float(cfg.max_blur_sigma),
    }


def _crack_settings(cfg):
    return {"length_range": tuple(cfg.length), "branch_probability": float(cfg.branch_probability)}


def _sample_dust(rng, cfg, shape):
    stains = _integer(rng, cfg.stains) if rng.random() < cfg.stain_probability else 0
    return {
        "specks": _integer(rng, cfg.specks),
        "blobs": _integer(rng, cfg.blobs),
        "hairs": _integer(rng, cfg.hairs),
        "stains": stains,
    }


def _dust_settings(cfg):
    return {"dark_fraction": float(cfg.dark_fraction)}


def _fold_settings(cfg):
    return {
        "width_range": tuple(cfg.width),
        "shading_range": tuple(cfg.shading),
        "core_probability": float(cfg.core_probability),
    }


def _tear_settings(cfg):
    return {
        "size_range": tuple(cfg.size),
        "corner_probability": float(cfg.corner_probability),
        "dark_background_probability": float(cfg.dark_background_probability),
    }


def _no_params(rng, cfg, shape):
    return {}


REGISTRY: dict[str, Op] = {
    op.name: op
    for op in (
        Op("gaussian_blur", _sample_blur, _global(unstructured.gaussian_blur)),
        Op("noise", _sample_noise, _apply_noise),
        Op("low_resolution", _sample_low_resolution, _global(unstructured.low_resolution)),
        Op("jpeg", _sample_jpeg, _global(unstructured.jpeg_compress)),
        Op("grayscale", _no_params, _global(unstructured.to_grayscale)),
        Op("holes", _sample_holes, _apply_holes, True),
        Op("contrast_loss", _sample_contrast_loss, _global(ageing.contrast_loss)),
        Op("fade", _sample_fade, _global(ageing.fade)),
        Op("sepia", _sample_sepia, _global(ageing.sepia)),
        Op("paper_texture", _sample_paper_texture, _global(ageing.paper_texture, uses_rng=True)),
        Op("film_grain", _sample_film_grain, _global(ageing.film_grain, uses_rng=True)),
        Op("halftone", _sample_halftone, _global(ageing.halftone)),
        Op("vignette", _sample_vignette, _global(ageing.vignette)),
        Op("scratches", _sample_count, _local(scratches.add_scratches, _scratch_settings), True),
        Op("cracks", _sample_count, _local(scratches.add_cracks, _crack_settings), True),
        Op("dust", _sample_dust, _local(spots.add_dust, _dust_settings), True),
        Op("folds", _sample_count, _local(folds.add_folds, _fold_settings), True),
        Op("tears", _sample_count, _local(tears.add_tears, _tear_settings), True),
    )
}


def get_op(name: str) -> Op:
    """The registered op called ``name``."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown degradation op {name!r}; known: {sorted(REGISTRY)}") from None


def describe(name: str, params: dict) -> str:
    """Short human-readable form of an applied op, e.g. ``jpeg(quality=63)``."""
    parts = []
    for key, value in params.items():
        if key == "mask_file":
            value = "generated" if value is None else os.path.basename(value)
        parts.append(f"{key}={_short(value)}")
    return f"{name}({', '.join(parts)})"


def _short(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, tuple):
        return "(" + ",".join(_short(v) for v in value) + ")"
    return str(value)
