"""Restore photos from Python: one model loaded once, in-memory images in, every stage out.

    from oldphoto_jax import Restorer

    restorer = Restorer()                                  # the bundled model (weights/default)
    result = restorer.restore("old.jpg", with_scratch=True)   # a path, PIL image, array or bytes
    result.final                                           # uint8 H x W x 3 (numpy)
    result.mask, result.restored, result.faces, result.enhanced_faces
    result.save("restored.png")

``Restorer(checkpoint_dir, **options)`` takes the options of ``infer.py`` (``with_scratch``,
``hr``, ``faces``, ``max_side``, ``attention_chunk``, ``batch_size``, ``precision``) as defaults;
``restore`` and ``restore_many`` take ``with_scratch``, ``hr``, ``faces``, ``max_side`` and
``attention_chunk`` per call. The networks of each mode are loaded and compiled once per photo
size and reused by later calls. ``restore_folder`` is what ``infer.py`` runs: the same stages,
written in the official folder layout, so a folder run and an API call give the same PNG bytes
(``Result.png()``, ``Result.save``).

A ``Restorer`` is not thread-safe: call it from one thread at a time (the web server of
``oldphoto_jax.serve`` queues its jobs onto one worker thread).
"""
from __future__ import annotations

import dataclasses
import io
import os
import pathlib
import threading
from typing import Any, Callable, Sequence

import numpy as np
from PIL import Image

from oldphoto_jax import cpu_tuning

cpu_tuning.apply()  # the fast CPU flags, before anything starts the JAX backend

from oldphoto_jax import (bundled, compile_cache, model_files, params_cache,  # noqa: E402
                          photo_files)
from oldphoto_jax.pipeline import stage_runner as pipeline

Options = pipeline.Options
PhotoError = photo_files.PhotoError
PipelineError = pipeline.PipelineError
CheckpointError = model_files.CheckpointError

# Options that may change from one call to the next (the others are set per Restorer).
CALL_OPTIONS = ("with_scratch", "hr", "faces", "max_side", "attention_chunk")
# The stages ``progress`` reports, in order (face stages only when faces are enhanced).
STAGES = ("reading", "scratch detection", "global restoration", "face detection",
          "face enhancement", "blending")


class RestorationError(Exception):
    """A photo that could not be restored; ``str(error)`` names it and the reason."""


@dataclasses.dataclass
class Result:
    """One restored photo and the result of each stage (uint8 numpy arrays, RGB).

    ``input``: the photo as read (upright 8-bit RGB, downscaled to ``max_side`` if given);
    ``origin``: what restoration started from (resized as the official code does);
    ``mask``: the detected scratch mask (white = scratch; scratch modes only, else None);
    ``restored``: the global restoration (stage 1); ``faces``: the aligned faces found
    (``oldphoto_jax.pipeline.faces.AlignedFace``: ``.image``, ``.transform``...);
    ``enhanced_faces``: each face restored; ``final``: the result (faces pasted back);
    ``notes``: what reading and restoring did (e.g. "EXIF orientation 6 applied").
    """

    name: str
    input: np.ndarray
    origin: np.ndarray
    mask: np.ndarray | None
    restored: np.ndarray
    faces: list
    enhanced_faces: list
    final: np.ndarray
    notes: list
    mode: str

    def png(self, image: str = "final") -> bytes:
        """A stage's image (``"final"``, ``"mask"``, ``"restored"``, ``"origin"``, ``"input"``)
        as PNG bytes, encoded as ``infer.py`` writes its files."""
        return encode_png(getattr(self, image))

    def save(self, path: str | os.PathLike) -> None:
        """Write the final image atomically; the format follows the extension (.png, .jpg,
        .tif, .bmp, .webp)."""
        photo_files.write_image_atomic(path, self.final)


def encode_png(rgb: np.ndarray) -> bytes:
    """PNG bytes of a uint8 ``H x W x 3`` array, byte for byte as ``infer.py``'s files."""
    buffer = io.BytesIO()
    Image.fromarray(photo_files._checked_rgb(rgb)).save(buffer, format="PNG")
    return buffer.getvalue()


class Restorer:
    """A model loaded once, restoring photos in memory or folders with ``infer.py``'s options.

    ``model``: a model directory (default: the bundled model) or a loaded
    ``model_files.Model``. ``options``: an ``Options`` and/or keyword overrides of its fields.
    Without ``options`` or ``with_scratch``, a model that has no quality mapping (a scratch-only
    model such as bundled models 1-3) restores in scratch mode by default. ``log``: where progress lines go (default:
    nowhere). Raises ``CheckpointError`` for a damaged model and
    ``PipelineError`` when the model lacks a network the default mode needs.
    """

    def __init__(self, model: str | os.PathLike | model_files.Model | None = None,
                 options: Options | None = None, *, mesh=None,
                 log: Callable[[str], None] | None = None, **overrides: Any):
        compile_cache.enable()
        params_cache.enable()
        if model is None:
            model = bundled.DEFAULT_DIR
        self.model = model if isinstance(model, model_files.Model) \
            else model_files.load_model(model)
        if options is None and "with_scratch" not in overrides and \
                "quality" not in pipeline.runnable_modes(self.model):
            overrides["with_scratch"] = True  # a model with scratch networks only
        self.options = dataclasses.replace(options or Options(), **overrides)
        self.mesh = mesh
        self.log = log or (lambda line: None)
        self._compiled: dict = {}
        self._pipelines: dict[Options, pipeline.StageRunner] = {}
        self._lock = threading.Lock()
        self.pipeline(self.options)  # load (and check) the default mode's networks now

    # -- what the model can do ------------------------------------------------------------------
    def modes(self) -> dict[str, bool]:
        """Which restorations this model runs: ``{"quality", "scratch", "scratch_hr",
        "faces", "faces_hr"}`` -> bool."""
        runnable = pipeline.runnable_modes(self.model)
        return {**{mode: mode in runnable for mode in pipeline.MODE_ROLES},
                "faces": self.model.has("face_256"), "faces_hr": self.model.has("face_512")}

    def pipeline(self, options: Options) -> pipeline.StageRunner:
        """The pipeline of ``options`` (built once; networks shared between pipelines)."""
        key = dataclasses.replace(options, overwrite=False)
        if key not in self._pipelines:
            self._pipelines[key] = pipeline.StageRunner(self.model, key, mesh=self.mesh,
                                                     log=self._log, compiled=self._compiled)
            if self.mesh is None:
                self.mesh = self._pipelines[key].mesh
        return self._pipelines[key]

    def _log(self, line: str) -> None:
        self.log(line)

    def _options(self, overrides: dict) -> Options:
        unknown = set(overrides) - set(CALL_OPTIONS)
        if unknown:
            raise TypeError(f"unknown option(s) {', '.join(sorted(unknown))}; per call: "
                            f"{', '.join(CALL_OPTIONS)}")
        return dataclasses.replace(self.options,
                                   **{k: v for k, v in overrides.items() if v is not None})

    # -- in memory ------------------------------------------------------------------------------
    def restore(self, image, *, name: str | None = None,
                progress: Callable[[str], None] | None = None, **options: Any) -> Result:
        """Restore one photo: a file path, a PIL image, a numpy array (``H x W``,
        ``H x W x 3/4``; uint8, uint16 or float) or an image file's bytes. Raises
        ``RestorationError`` naming the photo and the reason (unreadable, too small, a stage
        that failed). ``progress(stage)`` is called as each stage starts (``STAGES``)."""
        return self.restore_many([image], names=None if name is None else [name],
                                 progress=progress, **options)[0]

    def restore_many(self, images: Sequence, *, names: Sequence[str] | None = None,
                     progress: Callable[[str], None] | None = None,
                     errors: str = "raise", **options: Any) -> list:
        """Restore several photos together (equal sizes run as one batch). ``errors="raise"``
        raises ``RestorationError`` for the first photo that failed; ``"return"`` puts the
        ``RestorationError`` in that photo's place in the returned list."""
        opts = self._options(options)
        with self._lock:
            restorer = self.pipeline(opts)
            jobs = []
            for index, image in enumerate(images):
                name = names[index] if names is not None else _default_name(image, index)
                job = pipeline.Job(pathlib.Path(name), pathlib.Path(name).stem)
                try:
                    photo = read_image(image, name, max_side=opts.max_side)
                    job.rgb, job.notes = photo.rgb, list(photo.notes)
                except PhotoError as error:
                    job.error = str(error)
                jobs.append(job)
            restorer.process(jobs, output=None, progress=progress)
        results = []
        for job in jobs:
            if job.error:
                error = RestorationError(job.error if job.error.startswith(f"{job.path.name}:")
                                         else f"{job.path.name}: {job.error}")
                if errors == "raise":
                    raise error
                results.append(error)
                continue
            results.append(Result(
                name=job.path.name, input=job.rgb, origin=job.origin, mask=job.mask,
                restored=job.restored, faces=list(job.faces),
                enhanced_faces=list(job.enhanced) if job.faces else [], final=job.final,
                notes=list(job.notes), mode=opts.mode))
        return results

    # -- folders (infer.py) ---------------------------------------------------------------------
    def restore_folder(self, input_folder: str | os.PathLike, output_folder: str | os.PathLike,
                       *, overwrite: bool | None = None, **options: Any) -> pipeline.Summary:
        """Restore every photo of ``input_folder`` into ``output_folder`` in the official layout
        (what ``infer.py`` does; see ``oldphoto_jax.pipeline.stage_runner``). Returns the summary."""
        opts = self._options(options)
        if overwrite is not None:
            opts = dataclasses.replace(opts, overwrite=overwrite)
        with self._lock:
            restorer = self.pipeline(opts)
            restorer.options = opts  # the cached pipeline differs at most in ``overwrite``
            try:
                return restorer.run(input_folder, output_folder)
            finally:
                restorer.options = dataclasses.replace(opts, overwrite=False)

    def timings(self) -> dict[str, tuple[float, float, int]]:
        """Per network: (compile seconds, run seconds, compiled shapes) so far."""
        return {net.name: (net.compile_seconds, net.run_seconds, net.compiled_shapes)
                for net in self._compiled.values()}


def read_image(image, name: str = "photo", *, max_side: int | None = None
               ) -> photo_files.Photo:
    """Any supported image (path, PIL image, numpy array, bytes) as ``read_photo`` reads files."""
    if isinstance(image, (str, os.PathLike)):
        return photo_files.read_photo(image, max_side=max_side)
    if isinstance(image, Image.Image):
        return photo_files.photo_from_image(image, name, max_side=max_side)
    if isinstance(image, (bytes, bytearray, memoryview)):
        return photo_files.read_photo_bytes(bytes(image), name, max_side=max_side)
    if isinstance(image, np.ndarray) or hasattr(image, "__array__"):
        return photo_files.photo_from_array(np.asarray(image), name, max_side=max_side)
    raise TypeError(f"cannot restore a {type(image).__name__}: pass a path, a PIL image, a "
                    "numpy array or an image file's bytes")


def _default_name(image, index: int) -> str:
    if isinstance(image, (str, os.PathLike)):
        return pathlib.Path(image).name
    filename = getattr(image, "filename", "")
    if isinstance(image, Image.Image) and filename:
        return pathlib.Path(filename).name
    return f"photo_{index + 1}.png"


def restore(image, checkpoint_dir: str | os.PathLike | None = None, **options: Any) -> Result:
    """Restore one photo with a model loaded for this call (``Restorer(checkpoint_dir,
    **options).restore(image)``); keep a ``Restorer`` to restore several."""
    return Restorer(checkpoint_dir, **options).restore(image)

