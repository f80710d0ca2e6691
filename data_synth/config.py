"""Degradation presets as ``ml_collections.ConfigDict``.

A config has:

* ``step_order``: names of the steps, run in this order;
* ``steps.<step>``: ``shuffle`` (visit the ops in a random permutation, as the official
  recipe does) and ``ops`` (op names, visited in the listed order unless shuffled);
* ``ops.<op>``: ``p`` (the probability that the op runs when visited; one uniform draw per
  visit, the op runs when it is < p) and the op's parameter ranges. A pair ``(lo, hi)`` is a
  uniform range, inclusive for integers;
* ``min_change``: local damage that would change a pixel by fewer grey levels than this is not
  drawn, so the mask marks exactly the pixels that local damage changed, and only visibly.

``official_preset`` is the released recipe (reference sections 11.1-11.3); ``extended_preset``
adds ageing and local damage in the physical order: the print is (optionally) black and white,
ages, gets damaged, and is then scanned (the official unstructured set models the scan).
"""
from __future__ import annotations

import ml_collections

from data_synth import pixels

OFFICIAL_UNSTRUCTURED = ("gaussian_blur", "noise", "low_resolution", "jpeg")
AGEING_OPS = (
    "contrast_loss", "fade", "sepia", "paper_texture", "film_grain", "halftone", "vignette"
)
LOCAL_OPS = ("folds", "scratches", "cracks", "dust", "holes", "tears")


def _unstructured_ops(p: float) -> dict:
    """The four ops of the official online degradation with their released ranges."""
    return {
        "gaussian_blur": {"p": p, "kernel_sizes": (3, 5, 7), "sigma": (1.0, 5.0)},
        "noise": {
            "p": p,
            "kinds": ("gaussian", "speckle", "salt_pepper"),
            "sigma": (5.0 / 255.0, 50.0 / 255.0),
            "salt_pepper_amount": (0.0, 0.01),
            "salt_fraction": (0.3, 0.8),
        },
        # new size: uniform integer in [floor(size * min_scale), size] per axis
        "low_resolution": {"p": p, "min_scale": 0.5, "upsample": ("nearest", "bilinear")},
        "jpeg": {"p": p, "quality": (40, 100)},
    }


def official_preset() -> ml_collections.ConfigDict:
    """The released recipe: the unstructured set (each op p = 0.7, random order), grayscale with
    p = 0.1, then white holes from an irregular mask with p = 0.5 (else an empty mask).

    ``ops.holes.mask_dir`` may name a folder of mask images (the official setting: a user-supplied
    irregular-mask set, resized with nearest neighbour); left ``None``, masks are generated.
    """
    ops = _unstructured_ops(0.7)
    ops["grayscale"] = {"p": 0.1}
    ops["holes"] = {"p": 0.5, "mask_dir": None, "strokes": (1, 5), "thickness": (2, 9)}
    return ml_collections.ConfigDict(
        {
            "preset": "official",
            "min_change": pixels.DEFAULT_MIN_CHANGE,
            "step_order": ("unstructured", "grayscale", "holes"),
            "steps": {
                "unstructured": {"shuffle": True, "ops": OFFICIAL_UNSTRUCTURED},
                "grayscale": {"shuffle": False, "ops": ("grayscale",)},
                "holes": {"shuffle": False, "ops": ("holes",)},
            },
            "ops": ops,
        }
    )


def extended_preset() -> ml_collections.ConfigDict:
    """Everything: grayscale print, ageing, local damage (with mask), then the official
    unstructured set as the scan. Probabilities are per op."""
    ops = _unstructured_ops(0.7)
    ops.update(
        {
            "grayscale": {"p": 0.2},
            # ageing (global, no mask)
            "contrast_loss": {"p": 0.4, "black": (0.0, 0.2), "white": (0.75, 1.0)},
            "fade": {
                "p": 0.4,
                "amount": (0.05, 0.35),
                "desaturation": (0.0, 0.7),
                "paper": (215.0, 250.0),  # red level of the paper tone; green, blue a bit lower
            },
            "sepia": {
                "p": 0.35,
                "strength": (0.3, 1.0),
                "green_tint": (0.92, 1.0),  # yellowing: green and blue gains after toning
                "blue_tint": (0.72, 0.95),
            },
            "paper_texture": {"p": 0.4, "strength": (0.02, 0.05), "cell": (16.0, 64.0)},
            "film_grain": {"p": 0.4, "amount": (0.01, 0.05), "size": (0.4, 1.2)},
            "halftone": {"p": 0.05, "period": (2.5, 5.0), "strength": (0.3, 0.7)},
            "vignette": {
                "p": 0.3, "strength": (0.15, 0.5), "power": (1.5, 3.5), "centre_jitter": 0.1
            },
            # local damage (each writes its mask)
            "folds": {
                "p": 0.2,
                "count": (1, 2),
                "width": (1.0, 3.5),
                "shading": (0.15, 0.45),
                "core_probability": 0.7,
            },
            "scratches": {
                "p": 0.5,
                "count": (1, 8),
                "dark_fraction": 0.2,
                "length": (0.15, 1.2),
                "opacity": (0.4, 1.0),
                "max_blur_sigma": 1.0,
            },
            "cracks": {"p": 0.15, "count": (1, 4), "length": (0.2, 0.8), "branch_probability": 0.5},
            "dust": {
                "p": 0.5,
                "specks": (0, 40),
                "blobs": (0, 4),
                "hairs": (0, 3),
                "stain_probability": 0.2,
                "stains": (1, 3),
                "dark_fraction": 0.4,
            },
            "holes": {"p": 0.1, "mask_dir": None, "strokes": (1, 3), "thickness": (2, 6)},
            "tears": {
                "p": 0.1,
                "count": (1, 2),
                "size": (0.1, 0.35),
                "corner_probability": 0.6,
                "dark_background_probability": 0.3,
            },
        }
    )
    return ml_collections.ConfigDict(
        {
            "preset": "extended",
            "min_change": pixels.DEFAULT_MIN_CHANGE,
            "step_order": ("grayscale", "ageing", "local", "unstructured"),
            "steps": {
                "grayscale": {"shuffle": False, "ops": ("grayscale",)},
                "ageing": {"shuffle": False, "ops": AGEING_OPS},
                "local": {"shuffle": False, "ops": LOCAL_OPS},
                "unstructured": {"shuffle": True, "ops": OFFICIAL_UNSTRUCTURED},
            },
            "ops": ops,
        }
    )


PRESETS = {"official": official_preset, "extended": extended_preset}


def get_preset(name: str) -> ml_collections.ConfigDict:
    """The preset called ``name`` ("official" or "extended")."""
    try:
        return PRESETS[name]()
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose from {sorted(PRESETS)}") from None


def only_steps(config: ml_collections.ConfigDict, *steps: str) -> ml_collections.ConfigDict:
    """A copy of ``config`` that runs only the named steps (in the config's order)."""
    unknown = set(steps) - set(config.step_order)
    if unknown:
        raise ValueError(f"unknown steps {sorted(unknown)}; have {list(config.step_order)}")
    trimmed = ml_collections.ConfigDict(config.to_dict())
    trimmed.step_order = tuple(s for s in config.step_order if s in steps)
    return trimmed
