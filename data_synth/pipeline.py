"""``degrade``: one synthetic old photo as a pure function of (image, seed, config).

All randomness comes from one ``numpy.random.Generator`` built from the seed, so the same
(image, seed, config) always gives the same bytes. For each step of ``config.step_order`` the
step's ops are visited (in a random permutation when the step shuffles); each visit draws one
uniform number and runs the op when it is below the op's ``p``. Local ops add to the damage mask.
"""
from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple, Sequence

import ml_collections
import numpy as np

from data_synth import config as config_lib
from data_synth import ops, pixels, unstructured

Seed = int | Sequence[int] | np.random.SeedSequence


class AppliedOp(NamedTuple):
    """An op that ran, with the parameters drawn for it."""

    name: str
    params: dict[str, Any]

    def __str__(self) -> str:
        return ops.describe(self.name, self.params)


@dataclasses.dataclass(frozen=True)
class DegradedSample:
    """A degraded image, its damage mask and the ops that produced it.

    ``degraded``: uint8 (H, W, 3). ``mask``: float32 (H, W) in [0, 1], 1 = locally damaged
    (binary for drawn damage; mask files with grey levels give fractions). ``applied``: the ops
    in the order they ran.
    """

    degraded: np.ndarray
    mask: np.ndarray
    applied: tuple[AppliedOp, ...]

    @property
    def op_names(self) -> tuple[str, ...]:
        return tuple(op.name for op in self.applied)

    @property
    def grayscale(self) -> bool:
        """Whether the grayscale op ran (the clean target must then be grayscale too)."""
        return "grayscale" in self.op_names

    def target(self, clean: np.ndarray) -> np.ndarray:
        """The clean image the restoration should produce: grayscale when the input was made
        grayscale (the official pairs convert input and target together), else ``clean``."""
        return unstructured.to_grayscale(clean) if self.grayscale else clean

    def describe(self) -> str:
        """One line listing the applied ops and their parameters."""
        return " ".join(str(op) for op in self.applied) or "(none)"


def degrade(
    image: np.ndarray, seed: Seed, config: ml_collections.ConfigDict | None = None
) -> DegradedSample:
    """Degrades a uint8 RGB image with the ops of ``config`` (default: the extended preset).

    ``seed`` is anything ``numpy.random.default_rng`` accepts that is reproducible: an int, a
    sequence of ints (e.g. ``(epoch, index)``) or a ``SeedSequence``. The input is not modified.
    """
    image = pixels.check_rgb_uint8(image)
    if seed is None or isinstance(seed, (np.random.Generator, np.random.BitGenerator)):
        raise TypeError("degrade needs a reproducible seed (int, ints or SeedSequence); "
                        "use degrade_with_rng to pass a Generator")
    if config is None:
        config = config_lib.extended_preset()
    rng = np.random.default_rng(seed)
    return degrade_with_rng(image, rng, config)


def degrade_with_rng(
    image: np.ndarray, rng: np.random.Generator, config: ml_collections.ConfigDict
) -> DegradedSample:
    """``degrade`` with an explicit generator (advanced: the caller owns the stream)."""
    original = image = pixels.check_rgb_uint8(image)
    mask = np.zeros(image.shape[:2], dtype=np.float32)
    applied: list[AppliedOp] = []
    for step_name in config.step_order:
        step = config.steps[step_name]
        names = list(step.ops)
        if step.shuffle:
            names = [names[i] for i in rng.permutation(len(names))]
        for name in names:
            op_config = config.ops[name]
            if rng.random() >= op_config.p:
                continue
            op = ops.get_op(name)
            params = op.sample(rng, op_config, image.shape)
            image, op_mask = op.apply(image, rng, params, op_config, config.min_change)
            if op_mask is not None:
                np.maximum(mask, op_mask, out=mask)
            applied.append(AppliedOp(name, params))
    if image is original or not image.flags.writeable or not image.flags.c_contiguous:
        image = np.array(image, order="C")  # never alias the caller's array or Pillow's buffer
    return DegradedSample(image, mask, tuple(applied))
