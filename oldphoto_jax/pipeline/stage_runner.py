"""The whole restoration pipeline over a folder of photos (the official ``run.py``).

Stages, with the official output layout so each can be inspected:

    <out>/stage_1_restore_output/masks/{input,mask}/<stem>.png   scratch detection (--with_scratch)
    <out>/stage_1_restore_output/{origin,input_image,restored_image}/<stem>.png
    <out>/stage_2_detection_output/<stem>_<k>.png                 aligned faces
    <out>/stage_3_face_output/each_img/<stem>_<k>.png             restored faces
    <out>/final_output/<stem>.png                                 the result

Photos are processed a chunk at a time (bounded memory). Within a chunk, photos (and faces) of
equal size run as one batch, sharded over the devices of a mesh; no padding to size buckets is
done (instance norm, reflection padding, attention and the min-max PNG would change the result).
Every photo ends as a file in ``final_output`` or as an error naming it; the final file is written
last and atomically, so its presence means the photo is done and a re-run skips it.
"""
from __future__ import annotations

import collections
import dataclasses
import hashlib
import os
import pathlib
import time
import traceback
from typing import Callable, Iterable

import numpy as np
from PIL import Image

from oldphoto_jax import distributed, model_files, photo_files, sharding
from oldphoto_jax.models import mapping as mapping_models
from oldphoto_jax.pipeline import faces, given_masks, postprocess, preprocess, stage1
from oldphoto_jax.pipeline.engine import CompiledNetwork
from oldphoto_jax.inference_defaults import ATTENTION_CHUNK
from oldphoto_jax.roles import MODE_ROLES  # the networks of each restoration mode

STAGE1 = "stage_1_restore_output"
STAGE2 = "stage_2_detection_output"
STAGE3 = "stage_3_face_output/each_img"
FINAL = "final_output"


@dataclasses.dataclass(frozen=True)
class Options:
    with_scratch: bool = False
    hr: bool = False
    faces: bool = True
    max_side: int | None = None
    overwrite: bool = False
    batch_size: int = 4
    # Query rows per block of the partial non-local attention and of the HR patch attention
    # (0 = dense as the official code).
    attention_chunk: int = ATTENTION_CHUNK
    precision: str = "highest"
    chunk_photos: int = 16
    # Scratch modes: a folder of damage masks named like the photos, used instead of the
    # detector's for the photos that have one (``oldphoto_jax.pipeline.given_masks``).
    mask_folder: str | None = None

    @property
    def mode(self) -> str:
        if not self.with_scratch:
            return "quality"
        return "scratch_hr" if self.hr else "scratch"

    @property
    def face_size(self) -> int:
        return faces.HR_FACE_SIZE if self.hr else faces.FACE_SIZE


def mode_options(mode: str) -> dict[str, bool]:
    """The :class:`Options` fields of a restoration ``mode`` (the inverse of ``Options.mode``)."""
    if mode not in MODE_ROLES:
        raise ValueError(f"unknown mode {mode!r}; choose from {', '.join(MODE_ROLES)}")
    return {"with_scratch": mode != "quality", "hr": mode == "scratch_hr"}


def needed_roles(mode: str) -> tuple[str, ...]:
    """Every network a restoration ``mode`` runs, faces aside: its global restoration
    (:data:`MODE_ROLES`) and, in the scratch modes, the scratch detector."""
    return MODE_ROLES[mode] + (() if mode == "quality" else ("scratch_detector",))


def runnable_modes(model: model_files.Model) -> list[str]:
    """The restoration modes whose networks ``model`` holds (faces aside), in MODE_ROLES order."""
    return [mode for mode in MODE_ROLES if all(map(model.has, needed_roles(mode)))]


# The infer.py flags of each mode (for error hints).
_MODE_FLAGS = {"quality": "no scratch flags", "scratch": "--with_scratch",
               "scratch_hr": "--with_scratch --HR"}


def inference_network(model, role: str, *, precision: str, attention_chunk: int):
    """``model``'s ``role`` network as the pipeline runs it: ``(module, variables)`` with the
    matmul ``precision`` where the module has one, and the scratch mappings' attention computed
    in blocks of ``attention_chunk`` query rows (0 = dense)."""
    module, variables = model.network(role)
    overrides = {}
    if "precision" in module.__dataclass_fields__:
        overrides["precision"] = precision
    if "query_chunk" in module.__dataclass_fields__:
        overrides["query_chunk"] = attention_chunk
    return module.clone(**overrides), variables


@dataclasses.dataclass
class Job:
    """One photo on its way through the stages."""

    path: pathlib.Path
    stem: str
    rgb: np.ndarray | None = None
    notes: list = dataclasses.field(default_factory=list)
    origin: np.ndarray | None = None       # the image restoration starts from (uint8)
    net_input: np.ndarray | None = None    # 1 x H x W x 3 in [-1, 1]
    mask_input: np.ndarray | None = None   # 1 x H x W x 1 or None
    restored: np.ndarray | None = None     # stage-1 PNG (uint8)
    faces: list = dataclasses.field(default_factory=list)
    enhanced: list = dataclasses.field(default_factory=list)
    mask: np.ndarray | None = None         # the detected scratch mask PNG (uint8), scratch modes
    final: np.ndarray | None = None        # the result (uint8)
    error: str | None = None
    renamed_because: str | None = None     # why the output stem is not the input's stem


@dataclasses.dataclass
class Summary:
    restored: list = dataclasses.field(default_factory=list)
    skipped: list = dataclasses.field(default_factory=list)
    failed: list = dataclasses.field(default_factory=list)  # (name, reason)
    # (input name, output stem, why) of photos written under another name than their stem
    renamed: list = dataclasses.field(default_factory=list)
    timings: dict = dataclasses.field(default_factory=dict)  # network -> (compile s, run s, shapes)
    faces: int = 0

    @property
    def ok(self) -> bool:
        return not self.failed


class PipelineError(Exception):
    """The pipeline cannot run at all (e.g. the model lacks a network the mode needs)."""


# Output folders the pipeline writes into (relative to the output folder).
OUTPUT_SUBFOLDERS = (f"{STAGE1}/masks/input", f"{STAGE1}/masks/mask", f"{STAGE1}/origin",
                     f"{STAGE1}/input_image", f"{STAGE1}/restored_image", STAGE2, STAGE3, FINAL)


def check_output_folder(output: pathlib.Path) -> None:
    """Create ``output`` if needed and check that a file can be created in it, or raise
    ``PipelineError`` (one line) before any photo is processed."""
    try:
        output.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise PipelineError(f"output folder {output} is a file, not a folder") from None
    except OSError as e:
        raise PipelineError(f"output folder {output} cannot be created: "
                            f"{photo_files.os_reason(e)}") from None
    try:
        photo_files.check_writable_folder(output)
    except OSError as e:
        raise PipelineError(f"output folder {output} is not writable: "
                            f"{photo_files.os_reason(e)}") from None


def remove_stale_temporaries(output: pathlib.Path) -> int:
    """Remove the temporary files that killed runs left in the pipeline's output folders;
    returns how many were removed."""
    return sum(photo_files.remove_stale_temp_files(output / sub) for sub in OUTPUT_SUBFOLDERS)


def _is_file(path: pathlib.Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # e.g. a name the file system cannot hold: not there
        return False


# Longest output stem in bytes: the longest name written from a stem is "<stem>_<k>.png" (faces)
# and file systems take 255 bytes a name; the margin leaves room for 4-digit face numbers.
MAX_STEM_BYTES = 240
# A shortened stem ends with "~" and the first hex digits of the SHA-256 of the input's name.
_SHORTENED_HASH_DIGITS = 12


def output_stems(paths: Iterable[pathlib.Path]
                 ) -> tuple[dict[pathlib.Path, str], dict[pathlib.Path, str]]:
    """A distinct output file stem per input, and why an input's stem is not its own.

    Stems are distinct ignoring case (as on case-insensitive file systems) for every set of
    names: an input's own stem where no other input shares it; else ``<stem>_<ext>``; else that
    with ``_2``, ``_3``...; each one at most ``MAX_STEM_BYTES`` long (longer names are cut and
    end with ``~<hash of the full name>``). An input whose own stem is free keeps it: a derived
    name (``dup_jpg`` of ``dup.jpg``) gives way to an input named ``dup_jpg.png``.
    Returns ``({path: stem}, {path: why renamed})``; inputs written under their own stem are not
    in the second.
    """
    paths = sorted(paths, key=lambda p: p.name)
    counts = collections.Counter(p.stem.casefold() for p in paths)
    stems: dict[pathlib.Path, str] = {}
    renamed: dict[pathlib.Path, str] = {}
    taken: set[str] = set()

    def assign(path: pathlib.Path, stem: str, why: str | None) -> None:
        stems[path] = stem
        taken.add(stem.casefold())
        if why:
            renamed[path] = why

    shared = []
    for path in paths:  # own stems first, so that no derived name can take one
        if counts[path.stem.casefold()] == 1 and _fits(path.stem):
            assign(path, path.stem, None)
        else:
            shared.append(path)
    for path in shared:
        if not _fits(path.stem):
            stem, why = _shortened(path), "name too long for the file system"
        else:
            stem, why = f"{path.stem}_{path.suffix.lstrip('.')}", "another input has its stem"
            if not _fits(stem):
                stem = _shortened(path)
        if stem.casefold() in taken:
            stem = _numbered(stem, taken)
            why = why if why != "another input has its stem" else "another input has its name"
        assign(path, stem, why)
    return stems, renamed


def _fits(stem: str) -> bool:
    return len(os.fsencode(stem)) <= MAX_STEM_BYTES


def _shortened(path: pathlib.Path) -> str:
    """``path``'s stem cut to fit, plus ``~`` and a hash of its full name (distinct per name)."""
    digest = hashlib.sha256(os.fsencode(path.name)).hexdigest()[:_SHORTENED_HASH_DIGITS]
    return f"{photo_files.cut_to_bytes(path.stem, MAX_STEM_BYTES - 8 - len(digest))}~{digest}"


def _numbered(stem: str, taken: set[str]) -> str:
    """``<stem>_<n>`` for the smallest n >= 2 not in ``taken`` (compared ignoring case)."""
    base = photo_files.cut_to_bytes(stem, MAX_STEM_BYTES - 8)
    number = 2
    while f"{base}_{number}".casefold() in taken:
        number += 1
    return f"{base}_{number}"


class StageRunner:
    """Runs the pipeline's stages over photos with one model and one set of options (the engine
    under ``oldphoto_jax.api.Restorer``, the public door); compiled networks are reused across
    photos and folders."""

    def __init__(self, model: model_files.Model, options: Options = Options(), mesh=None,
                 log: Callable[[str], None] = print, compiled: dict | None = None):
        """``compiled``: a dict shared by several runners of one model (other options), so
        that each network is placed and compiled once (``oldphoto_jax.api.Restorer``)."""
        self.model = model
        self.options = options
        self.mesh = sharding.local_mesh() if mesh is None else mesh
        self.log = log
        missing = [r for r in needed_roles(options.mode) if not model.has(r)]
        if missing:
            runnable = [_MODE_FLAGS[mode] for mode in runnable_modes(model)]
            hint = f"; this model runs with: {' or '.join(runnable)}" if runnable else ""
            raise PipelineError(
                f"model {model.directory} lacks {', '.join(missing)} needed for "
                f"{options.mode} restoration (it has: {', '.join(model.roles)}){hint}")
        if options.mask_folder is not None:
            if not options.with_scratch:
                raise PipelineError("a mask folder is used in the scratch modes only "
                                    "(--mask_folder needs --with_scratch)")
            if not pathlib.Path(options.mask_folder).is_dir():
                raise PipelineError(f"mask folder {options.mask_folder} is not a folder")
            try:  # listed once: every chunk of photos looks its masks up here
                self.mask_paths, notes = given_masks.mask_paths(options.mask_folder)
            except OSError as error:
                raise PipelineError(f"mask folder {options.mask_folder} cannot be read: "
                                    f"{error.strerror or error}") from None
            for note in notes:
                self.log(f"note: mask folder: {note}")
        else:
            self.mask_paths = {}
        face_role = f"face_{options.face_size}"
        self.face_enabled = options.faces and model.has(face_role)
        if options.faces and not self.face_enabled:
            self.log(f"note: model has no {face_role} network: faces are not enhanced")
        self.networks: dict[str, CompiledNetwork] = {}
        compiled = {} if compiled is None else compiled
        settings = (options.precision, options.attention_chunk, id(self.mesh))

        def shared(key, make):
            if key + settings not in compiled:
                compiled[key + settings] = make()
            return compiled[key + settings]

        def restoration():
            vae_a, mapping, vae_b = (self._network(r) for r in MODE_ROLES[options.mode])
            return CompiledNetwork(
                "global restoration", stage1.restoration_function(vae_a[0], mapping[0], vae_b[0]),
                (vae_a[1], mapping[1], vae_b[1]), self.mesh)

        def detection():
            unet = self._network("scratch_detector")
            return CompiledNetwork("scratch detection", stage1.detection_function(unet[0]),
                                   unet[1], self.mesh)

        def face_enhancement():
            face = self._network(face_role)
            return CompiledNetwork("face enhancement", lambda p, x: face[0].apply(p, x),
                                   face[1], self.mesh)

        self.networks["restore"] = shared(("restore", options.mode), restoration)
        if options.with_scratch:
            self.networks["detect"] = shared(("detect",), detection)
        if self.face_enabled:
            self.networks["face"] = shared(("face", face_role), face_enhancement)

    def _network(self, role: str):
        return inference_network(self.model, role, precision=self.options.precision,
                                 attention_chunk=self.options.attention_chunk)

    # ------------------------------------------------------------------------------------------
    def run(self, input_folder, output_folder) -> Summary:
        input_folder = pathlib.Path(input_folder)
        output = pathlib.Path(output_folder)
        summary = Summary()
        check_output_folder(output)
        removed = distributed.first_process_then_others(
            lambda: remove_stale_temporaries(output), "stale temporaries removed", default=0)
        if removed:
            self.log(f"note: removed {removed} stale temporary file(s) of an interrupted run "
                     f"from {output}")
        paths, listing_notes = photo_files.list_photos(input_folder)
        for note in listing_notes:
            self.log(f"note: {note}")
        stems, renamed = output_stems(paths)
        paths = distributed.process_share(paths)  # several processes: each restores its share
        todo = []
        for path in paths:
            if _is_file(output / FINAL / f"{stems[path]}.png") and not self.options.overwrite:
                summary.skipped.append(path.name)
                continue
            job = Job(path, stems[path])
            if path in renamed:
                job.notes.append(f"written as {stems[path]}.png: {renamed[path]}")
                job.renamed_because = renamed[path]
            todo.append(job)
        if summary.skipped:
            self.log(f"{len(summary.skipped)} photo(s) already restored in {output / FINAL}: "
                     "skipped (use --overwrite to redo)")
        self.log(f"restoring {len(todo)} photo(s) from {input_folder} ({self.options.mode} mode, "
                 f"faces {'on' if self.face_enabled else 'off'}, "
                 f"{self.mesh.devices.size} device(s))")
        done = 0
        for start in range(0, len(todo), self.options.chunk_photos):
            chunk = todo[start:start + self.options.chunk_photos]
            chunk_start = time.perf_counter()
            self.process(chunk, output)
            self.log(f"  {len(chunk)} photo(s) in {time.perf_counter() - chunk_start:.1f} s")
            for job in chunk:
                done += 1
                prefix = f"[{done}/{len(todo)}] {job.path.name}"
                if job.error:
                    summary.failed.append((job.path.name, job.error))
                    self.log(f"{prefix}: FAILED: {job.error}")
                else:
                    summary.restored.append(job.path.name)
                    if job.renamed_because:
                        summary.renamed.append((job.path.name, job.stem, job.renamed_because))
                    summary.faces += len(job.faces)
                    notes = f" ({'; '.join(job.notes)})" if job.notes else ""
                    self.log(f"{prefix}: done, {len(job.faces)} face(s){notes}")
        for name, net in self.networks.items():
            summary.timings[net.name] = (net.compile_seconds, net.run_seconds, net.compiled_shapes)
        return summary

    def process(self, jobs: list[Job], output: pathlib.Path | None = None,
                progress: Callable[[str], None] | None = None) -> None:
        """Run every stage over ``jobs`` (photos whose ``rgb`` is set are not read from their
        path); each job ends with ``final`` set or ``error``. ``output``: the folder of the
        official layout to write each stage's PNGs into (None: nothing is written).
        ``progress`` is called with each stage's name as it starts."""
        progress = progress or (lambda stage: None)
        progress("reading")
        for job in jobs:
            if job.rgb is None and not job.error:
                self._guard(job, "reading", self._read, job)
        if self.options.with_scratch:
            self._use_given_masks(jobs, output)
            progress("scratch detection")
            self._batched("detect", [j for j in jobs if not j.error and j.mask is None],
                          self._detection_input,
                          lambda job, prob: self._after_detection(job, prob, output))
        for job in jobs:
            if not job.error and not self.options.with_scratch:
                self._guard(job, "preparing", self._quality_input, job)
        progress("global restoration")
        self._batched("restore", [j for j in jobs if not j.error],
                      lambda job: (job.net_input[0], None if job.mask_input is None
                                   else job.mask_input[0]),
                      lambda job, out: self._after_restoration(job, out, output))
        if self.face_enabled:
            progress("face detection")
            for job in jobs:
                if not job.error:
                    self._guard(job, "face detection", self._detect_faces, job, output)
            if any(job.faces for job in jobs if not job.error):
                progress("face enhancement")
            self._enhance_faces([j for j in jobs if not j.error and j.faces], output)
        progress("writing the result" if output is not None else "blending")
        for job in jobs:
            if not job.error:
                self._guard(job, "writing the result", self._write_final, job, output)

    # -- small steps ----------------------------------------------------------------------------
    def _guard(self, job: Job, what: str, fn, *args) -> None:
        try:
            fn(*args)
        except photo_files.PhotoError as e:
            job.error = str(e)
        except Exception as e:  # a bad photo must not stop the batch
            job.error = f"{what} failed: {type(e).__name__}: {e}"
            self.log(traceback.format_exc(limit=3))

    def _read(self, job: Job) -> None:
        photo = photo_files.read_photo(job.path, max_side=self.options.max_side)
        job.rgb, job.notes = photo.rgb, list(photo.notes)

    def _quality_input(self, job: Job) -> None:
        origin, job.net_input = preprocess.quality_input(Image.fromarray(job.rgb))
        job.origin = np.asarray(origin)

    def _detection_input(self, job: Job):
        job.origin, unet_input = preprocess.detection_input(Image.fromarray(job.rgb))
        return (unet_input[0],)

    def _use_given_masks(self, jobs: list[Job], output: pathlib.Path | None) -> None:
        """Jobs whose photo has a mask in ``options.mask_folder`` take it (and skip detection)."""
        for job in jobs:
            if not job.error and job.path.stem in self.mask_paths:
                self._guard(job, "reading its mask", self._given_mask, job,
                            self.mask_paths[job.path.stem], output)

    def _given_mask(self, job: Job, path: pathlib.Path, output: pathlib.Path | None) -> None:
        job.origin = preprocess.restoration_origin(Image.fromarray(job.rgb))
        mask = given_masks.read_mask(path, job.rgb.shape[:2], job.origin.shape[:2])
        self._use_mask(job, mask, output, f"mask {path.name}: {100 * float(mask.mean()):.1f}% "
                                          "damaged")

    def _after_detection(self, job: Job, probability: np.ndarray, output: pathlib.Path) -> None:
        mask = postprocess.scratch_mask_from_probability(probability[None], job.origin.shape[:2])
        self._use_mask(job, mask, output, f"{100 * float(mask.mean()):.1f}% scratched")

    def _use_mask(self, job: Job, mask: np.ndarray, output: pathlib.Path | None,
                  note: str) -> None:
        """The scratch modes' inputs from a {0, 1} mask at the size of ``job.origin``."""
        mask_png = job.mask = postprocess.mask_png(mask)
        _save(output, f"{STAGE1}/masks/input/{job.stem}.png", job.origin)
        _save(output, f"{STAGE1}/masks/mask/{job.stem}.png", mask_png)
        dilation = preprocess.HR_MASK_DILATION if self.options.hr else 0
        job.net_input, job.mask_input, _ = preprocess.scratch_inputs(job.origin, mask_png,
                                                                     dilation)
        job.notes.append(note)
        if self.options.hr:
            job.notes += self._unpatchable_scales(job.mask_input)

    def _unpatchable_scales(self, mask_input: np.ndarray) -> list[str]:
        """Patch sizes at which every latent patch is mostly scratched, so no key patch exists.

        The official HR code crashes there; the patch attention then leaves the features as they
        are (no patch copy), which the log says.
        """
        mapping = self.model.network("mapping_hr")[0]
        height, width = mask_input.shape[1] // 4, mask_input.shape[2] // 4
        latent = mapping_models.binarized_bilinear_mask(mask_input, (height, width))
        notes = []
        for patch in mapping.patch_sizes:
            if height >= patch and width >= patch and bool(
                    np.all(mapping_models.patch_query_flags(latent, patch))):
                notes.append(f"every {patch}x{patch} latent patch is scratched: patch copy "
                             "skipped at that scale (the official code crashes here)")
        return notes

    def _after_restoration(self, job: Job, out: np.ndarray, output: pathlib.Path) -> None:
        job.restored = postprocess.restored_png(out[None], self.model.restored_range)
        if output is not None:
            _save(output, f"{STAGE1}/origin/{job.stem}.png", job.origin)
            _save(output, f"{STAGE1}/input_image/{job.stem}.png",
                  postprocess.minmax_png(job.net_input))
            _save(output, f"{STAGE1}/restored_image/{job.stem}.png", job.restored)
        job.net_input = job.mask_input = None  # free memory early

    def _detect_faces(self, job: Job, output: pathlib.Path) -> None:
        job.faces = faces.extract_faces(job.restored, self.options.face_size)
        for k, face in enumerate(job.faces, start=1):
            _save(output, f"{STAGE2}/{job.stem}_{k}.png", face.image)

    def _enhance_faces(self, jobs: list[Job], output: pathlib.Path) -> None:
        items = [(job, k) for job in jobs for k in range(len(job.faces))]
        for job in jobs:
            job.enhanced = [None] * len(job.faces)

        def inputs(item):
            job, k = item
            return (preprocess.to_network_input(job.faces[k].image)[0],)

        def consume(item, out):
            job, k = item
            face = postprocess.clamped_png(out)
            job.enhanced[k] = face
            _save(output, f"{STAGE3}/{job.stem}_{k + 1}.png", face)

        self._batched("face", items, inputs, consume, job_of=lambda item: item[0])

    def _write_final(self, job: Job, output: pathlib.Path) -> None:
        final = job.restored
        if job.faces:
            from oldphoto_jax.pipeline import blend  # OpenCV and scikit-image: faces only

            final = blend.paste_faces(job.restored, job.enhanced,
                                      [f.transform for f in job.faces])
        job.final = final
        _save(output, f"{FINAL}/{job.stem}.png", final)

    # -- batching -------------------------------------------------------------------------------
    def _batched(self, network: str, items: list, make_inputs, consume,
                 job_of=lambda item: item) -> None:
        """Run ``network`` over items grouped by input shape, ``batch_size`` at a time.

        If a batch fails (for example out of memory), its items are retried one by one, so one
        bad photo fails alone.
        """
        net = self.networks[network]
        groups: dict[tuple, list] = collections.defaultdict(list)
        prepared = {}
        for index, item in enumerate(items):
            job = job_of(item)
            if job.error:
                continue
            try:
                arrays = make_inputs(item)
            except Exception as e:
                self._guard(job, f"preparing {net.name}", _raise, e)
                continue
            prepared[index] = arrays
            groups[CompiledNetwork._signature(arrays)].append(index)
        for signature, indices in groups.items():
            for start in range(0, len(indices), self.options.batch_size):
                batch = indices[start:start + self.options.batch_size]
                self._run_batch(net, [items[i] for i in batch], [prepared[i] for i in batch],
                                consume, job_of)

    def _run_batch(self, net, items, arrays, consume, job_of) -> None:
        stacked = [None if arrays[0][i] is None else np.stack([a[i] for a in arrays])
                   for i in range(len(arrays[0]))]
        shape = "x".join(str(d) for d in stacked[0].shape[1:3])
        compile_before = net.compile_seconds
        start = time.perf_counter()
        try:
            outputs = net(*stacked)
        except Exception as e:
            if len(items) == 1:
                self._guard(job_of(items[0]), net.name, _raise, e)
                return
            self.log(f"{net.name}: batch of {len(items)} failed ({type(e).__name__}); "
                     "retrying one by one")
            for item, a in zip(items, arrays):
                self._run_batch(net, [item], [a], consume, job_of)
            return
        compiled = net.compile_seconds - compile_before
        elapsed = time.perf_counter() - start - compiled
        compile_note = f", compiled in {compiled:.1f} s" if compiled else ""
        self.log(f"  {net.name}: {len(items)} x {shape} in {elapsed:.2f} s{compile_note}")
        for item, out in zip(items, outputs):
            if not np.all(np.isfinite(out)):
                job_of(item).error = (f"{net.name} produced non-finite values (NaN or infinity); "
                                      "the model's weights may be damaged")
                continue
            self._guard(job_of(item), net.name, consume, item, out)


def _raise(e: Exception):
    raise e


def _save(output: pathlib.Path | None, relative: str, rgb: np.ndarray) -> None:
    """Write ``rgb`` as ``output/relative`` atomically; nothing when there is no output folder."""
    if output is not None:
        photo_files.write_png_atomic(output / relative, rgb)
