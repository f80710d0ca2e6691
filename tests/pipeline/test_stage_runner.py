"""The whole pipeline end to end with tiny random-weight models (outputs are meaningless; what is
checked is that every photo ends as a file or a named error, the layout, batching and sharding)."""
import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest
from PIL import Image

from oldphoto_jax import model_files
from oldphoto_jax.pipeline import postprocess, preprocess, stage1, stage_runner
from oldphoto_jax.pipeline.engine import CompiledNetwork
from oldphoto_jax.testing.random_model import write_random_model

REPO = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    directory = tmp_path_factory.mktemp("model") / "tiny"
    write_random_model(directory)
    return model_files.load_model(directory)


def _photo(seed, size=(72, 56), mode="RGB"):
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    image = Image.fromarray(rgb)
    return image.convert(mode) if mode != "RGB" else image


@pytest.fixture()
def photos(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    _photo(0).save(folder / "plain.png")
    _photo(1, mode="RGBA").save(folder / "alpha.png")
    _photo(2).save(folder / "same.jpg", quality=90)
    _photo(3).save(folder / "same.png")                  # same stem as same.jpg
    (folder / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    (folder / "empty.png").write_bytes(b"")
    _photo(4, size=(20, 40)).save(folder / "tiny.png")
    rotated = _photo(5, size=(64, 40))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    rotated.save(folder / "rotated.jpg", exif=exif)
    return folder


def _hashes(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}


def test_every_photo_is_restored_or_named_as_failed(model, photos, tmp_path):
    before = _hashes(photos)
    lines = []
    restorer = stage_runner.StageRunner(model, stage_runner.Options(), log=lines.append)
    summary = restorer.run(photos, tmp_path / "out")
    failed = dict(summary.failed)
    assert sorted(failed) == ["corrupt.jpg", "empty.png", "tiny.png"]
    assert "too small" in failed["tiny.png"] and "empty" in failed["empty.png"]
    assert sorted(summary.restored) == ["alpha.png", "plain.png", "rotated.jpg", "same.jpg",
                                        "same.png"]
    final = tmp_path / "out" / stage_runner.FINAL
    assert sorted(p.name for p in final.iterdir()) == ["alpha.png", "plain.png", "rotated.png",
                                                       "same_jpg.png", "same_png.png"]
    # EXIF orientation applied: 64x40 stored, 40x64 upright (quality mode rounds to x4).
    assert Image.open(final / "rotated.png").size == (40, 64)
    for sub in ("origin", "input_image", "restored_image"):
        assert (tmp_path / "out" / stage_runner.STAGE1 / sub / "plain.png").exists()
    assert _hashes(photos) == before                      # inputs never modified
    assert not any(p.name.startswith(".") for p in final.iterdir())  # no temporary files left
    assert any("corrupt.jpg" in line and "FAILED" in line for line in lines)

    # A second run skips what is done and retries only the failures.
    summary = stage_runner.StageRunner(model, stage_runner.Options(), log=lines.append).run(
        photos, tmp_path / "out")
    assert sorted(summary.skipped) == ["alpha.png", "plain.png", "rotated.jpg", "same.jpg",
                                       "same.png"]
    assert summary.restored == [] and len(summary.failed) == 3


@pytest.mark.parametrize("hr", [False, True])
def test_scratch_modes_write_masks(model, tmp_path, hr):
    folder = tmp_path / "in"
    folder.mkdir()
    _photo(7, size=(70, 50)).save(folder / "p.png")
    options = stage_runner.Options(with_scratch=True, hr=hr, faces=False)
    summary = stage_runner.StageRunner(model, options, log=lambda s: None).run(folder,
                                                                            tmp_path / "out")
    assert summary.ok and summary.restored == ["p.png"]
    stage = tmp_path / "out" / stage_runner.STAGE1
    # full_size detection resizes to multiples of 16 (64x48), and restoration keeps that size.
    assert Image.open(stage / "masks" / "input" / "p.png").size == (64, 48)
    assert Image.open(stage / "masks" / "mask" / "p.png").size == (64, 48)
    assert Image.open(tmp_path / "out" / stage_runner.FINAL / "p.png").size == (64, 48)


def test_a_given_mask_replaces_the_detected_one(model, tmp_path):
    """--mask_folder: a photo with a mask (any size with its aspect ratio) is restored with it,
    a photo without one is detected, a mask of another shape fails its photo by name; the masks
    are not modified."""
    folder, masks = tmp_path / "in", tmp_path / "masks"
    folder.mkdir()
    masks.mkdir()
    for seed, stem in enumerate(("drawn", "detected", "misshapen")):
        _photo(seed, size=(70, 50)).save(folder / f"{stem}.png")
    drawn = np.zeros((25, 35), np.uint8)         # half size; a white band and one dot
    drawn[10:14, :] = 255
    drawn[3, 30] = 255
    Image.fromarray(drawn).save(masks / "drawn.png")
    Image.fromarray(np.full((40, 40), 255, np.uint8)).save(masks / "misshapen.jpg")
    before = _hashes(masks)
    lines = []
    options = stage_runner.Options(with_scratch=True, faces=False, mask_folder=str(masks))
    summary = stage_runner.StageRunner(model, options, log=lines.append).run(folder,
                                                                          tmp_path / "out")
    assert sorted(summary.restored) == ["detected.png", "drawn.png"], summary.failed
    (name, reason), = summary.failed
    assert name == "misshapen.png" and "misshapen.jpg" in reason and "aspect ratio" in reason
    written = np.asarray(Image.open(tmp_path / "out" / stage_runner.STAGE1 / "masks" / "mask" /
                                    "drawn.png").convert("L"))
    rows = np.floor(np.arange(48) * np.float32(25 / 48)).astype(int)
    cols = np.floor(np.arange(64) * np.float32(35 / 64)).astype(int)
    np.testing.assert_array_equal(written, drawn[rows][:, cols])   # at the 64x48 restored size
    assert any("drawn.png: done" in line and "mask drawn.png:" in line and "% damaged" in line
               for line in lines)
    assert any("detected.png: done" in line and "% scratched" in line for line in lines)
    assert _hashes(masks) == before

    with pytest.raises(stage_runner.PipelineError, match="needs --with_scratch"):
        stage_runner.StageRunner(model, stage_runner.Options(mask_folder=str(masks)))
    with pytest.raises(stage_runner.PipelineError, match="is not a folder"):
        stage_runner.StageRunner(model, stage_runner.Options(
            with_scratch=True, mask_folder=str(tmp_path / "nowhere")))


def test_hr_mode_reports_scales_without_key_patches(model):
    restorer = stage_runner.StageRunner(model, stage_runner.Options(with_scratch=True, hr=True,
                                                                 faces=False))
    everything = np.ones((1, 64, 64, 1), np.float32)
    assert len(restorer._unpatchable_scales(everything)) == 3
    half = np.zeros((1, 64, 64, 1), np.float32)
    half[:, :32] = 1
    assert restorer._unpatchable_scales(half) == []


@pytest.mark.parametrize("role", ["mapping_scratch", "mapping_hr"])
def test_attention_chunk_reaches_both_scratch_mappings(model, role):
    restorer = stage_runner.StageRunner(model, stage_runner.Options(
        with_scratch=True, hr=role == "mapping_hr", faces=False, attention_chunk=7))
    assert restorer._network(role)[0].query_chunk == 7


def test_missing_network_is_a_clear_error(tmp_path):
    directory = tmp_path / "partial"
    write_random_model(directory, roles=["vae_a", "mapping_quality", "vae_b_quality"])
    partial = model_files.load_model(directory)
    with pytest.raises(stage_runner.PipelineError, match="scratch_detector.*runs with: no scratch"):
        stage_runner.StageRunner(partial, stage_runner.Options(with_scratch=True))
    lines = []
    stage_runner.StageRunner(partial, stage_runner.Options(), log=lines.append)
    assert any("no face_256" in line for line in lines)

    # A scratch-only model (as the bundled one) names the flag that runs it.
    scratch_only = tmp_path / "scratch_only"
    write_random_model(scratch_only, roles=["vae_a", "mapping_scratch", "vae_b_scratch",
                                            "scratch_detector"])
    with pytest.raises(stage_runner.PipelineError,
                       match=r"lacks mapping_quality, vae_b_quality .*runs with: --with_scratch$"):
        stage_runner.StageRunner(model_files.load_model(scratch_only), stage_runner.Options())


def test_batched_equals_batch_of_one(model, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(3):
        _photo(10 + i, size=(64, 48)).save(folder / f"p{i}.png")
    outputs = {}
    for batch in (1, 3):
        options = stage_runner.Options(with_scratch=True, hr=True, faces=False, batch_size=batch)
        out = tmp_path / f"out{batch}"
        stage_runner.StageRunner(model, options, log=lambda s: None).run(folder, out)
        outputs[batch] = [np.asarray(Image.open(out / stage_runner.FINAL / f"p{i}.png"))
                          for i in range(3)]
    for one, batched in zip(outputs[1], outputs[3]):
        assert np.max(np.abs(one.astype(int) - batched.astype(int))) <= 1


def test_restored_image_follows_the_models_restored_range(model, tmp_path):
    """The restored image is test.py's min-max stretch of the network output, or that output
    clamped when the model's manifest says ``"restored_range": "clamp"`` (colour VAEs)."""
    clamp = tmp_path / "clamp"
    shutil.copytree(model.directory, clamp)
    manifest = json.loads((clamp / "manifest.json").read_text())
    (clamp / "manifest.json").write_text(json.dumps(dict(manifest, restored_range="clamp")))
    folder = tmp_path / "in"
    folder.mkdir()
    photo = _photo(30, size=(64, 48))
    photo.save(folder / "p.png")
    _, network_input = preprocess.quality_input(photo)
    out = stage1.restore(model.network("vae_a"), model.network("mapping_quality"),
                         model.network("vae_b_quality"), network_input)
    options = stage_runner.Options(faces=False)
    for directory, expected in ((model.directory, postprocess.minmax_png(out)),
                                (clamp, postprocess.clamped_png(out)[0])):
        written = tmp_path / f"out_{directory.name}"
        stage_runner.StageRunner(model_files.load_model(directory), options,
                                 log=lambda s: None).run(folder, written)
        restored = np.asarray(Image.open(written / stage_runner.STAGE1 / "restored_image"
                                         / "p.png"))
        assert np.max(np.abs(restored.astype(int) - expected.astype(int))) <= 1
    assert not np.array_equal(postprocess.minmax_png(out), postprocess.clamped_png(out)[0])


def test_face_stage_enhances_and_pastes_detected_faces(model, tmp_path):
    skimage_data = pytest.importorskip("skimage.data")
    pytest.importorskip("dlib")
    portrait = skimage_data.astronaut()[:256, 64:320]
    restorer = stage_runner.StageRunner(model, stage_runner.Options(), log=lambda s: None)
    job = stage_runner.Job(tmp_path / "astronaut.png", "astronaut", restored=portrait)
    restorer._detect_faces(job, tmp_path)
    assert len(job.faces) == 1
    restorer._enhance_faces([job], tmp_path)
    restorer._write_final(job, tmp_path)
    final = np.asarray(Image.open(tmp_path / stage_runner.FINAL / "astronaut.png"))
    assert (tmp_path / stage_runner.STAGE2 / "astronaut_1.png").exists()
    assert (tmp_path / stage_runner.STAGE3 / "astronaut_1.png").exists()
    changed = np.any(final != portrait, axis=-1)
    assert changed.mean() > 0.05            # the face region was replaced
    assert not changed[:, :20].any()        # far from the face nothing changed


SHARDED_SCRIPT = """
import sys, numpy as np, jax
if sys.argv[4] == "float64":
    jax.config.update("jax_enable_x64", True)
from oldphoto_jax import model_files, sharding
from oldphoto_jax.pipeline import stage1
from oldphoto_jax.pipeline.engine import CompiledNetwork
model = model_files.load_model(sys.argv[1])
(a, av), (m, mv), (b, bv) = (model.network(r) for r in ("vae_a", "mapping_scratch", "vae_b_scratch"))
params, data = (av, mv, bv), dict(np.load(sys.argv[2]))
if sys.argv[4] == "float64":
    params = jax.tree.map(lambda v: np.asarray(v, np.float64), params)
    data = {k: v.astype(np.float64) for k, v in data.items()}
net = CompiledNetwork("r", stage1.restoration_function(a, m, b), params, sharding.local_mesh())
np.save(sys.argv[3], net(data["x"], data["mask"]))
print(len(jax.devices()))
"""


def _run_restoration_script(model, inputs, output, mode, devices):
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
    result = subprocess.run([sys.executable, "-c", SHARDED_SCRIPT, str(model.directory),
                             str(inputs), str(output), mode],
                            env=env, capture_output=True, text=True, check=True)
    assert result.stdout.split()[-1] == str(devices)
    return np.load(output)


def test_sharded_over_four_devices_equals_single_device(model, tmp_path):
    """Sharded and single-device float32 results differ only by summation order, so the
    tolerance is derived from the computation's own float32 rounding error (as the parity
    README does): ``err`` = max |single-device float32 - float64 reference|. Both float32
    results lie within about ``err`` of the reference, so they differ by at most ~2 ``err``;
    5x that leaves room for other CPUs' summation orders (``err`` is ~3.5e-5 here, outputs are
    in [-1, 1]; a sharding mistake such as a wrong photo or mask moves values by ~0.1 or more)."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (3, 32, 48, 3)).astype(np.float32)  # 3 photos: padded to 4
    mask = (rng.uniform(size=(3, 32, 48, 1)) > 0.8).astype(np.float32)
    np.savez(tmp_path / "in.npz", x=x, mask=mask)
    sharded = _run_restoration_script(model, tmp_path / "in.npz", tmp_path / "out.npy",
                                      "float32", devices=4)
    reference = _run_restoration_script(model, tmp_path / "in.npz", tmp_path / "ref.npy",
                                        "float64", devices=1)
    from oldphoto_jax import sharding
    from oldphoto_jax.pipeline import stage1
    (a, av), (m, mv), (b, bv) = (model.network(r)
                                 for r in ("vae_a", "mapping_scratch", "vae_b_scratch"))
    net = CompiledNetwork("r", stage1.restoration_function(a, m, b), (av, mv, bv),
                          sharding.make_mesh(devices=jax.devices()[:1]))
    # Each of the 4 devices runs a batch of one; so does the single device here, photo by photo.
    single = np.concatenate([net(x[i:i + 1], mask[i:i + 1]) for i in range(len(x))])
    float32_error = float(np.max(np.abs(single - reference)))
    assert 0 < float32_error < 1e-3  # float32 rounding, not a different function
    tolerance = 10 * float32_error
    np.testing.assert_allclose(sharded, single, rtol=0, atol=tolerance)
    # A batch of 3 on one device equals it up to float32 summation order too.
    np.testing.assert_allclose(net(x, mask), single, rtol=0, atol=tolerance)


def test_infer_command_line(model, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    _photo(0).save(folder / "ok.png")
    (folder / "bad.png").write_bytes(b"garbage")
    result = subprocess.run([sys.executable, str(REPO / "infer.py"), "--input_folder", folder,
                             "--output_folder", tmp_path / "out", "--checkpoint_dir",
                             model.directory, "--no_faces"], capture_output=True, text=True)
    assert result.returncode == 1, result.stderr
    assert "1 restored" in result.stdout and "1 failed" in result.stdout
    assert "bad.png" in result.stderr
    assert (tmp_path / "out" / stage_runner.FINAL / "ok.png").exists()
    missing = subprocess.run([sys.executable, str(REPO / "infer.py"), "--input_folder", folder,
                              "--output_folder", tmp_path / "o2", "--checkpoint_dir",
                              tmp_path / "nowhere"], capture_output=True, text=True)
    assert missing.returncode == 2 and "no model" in missing.stderr
    help_text = subprocess.run([sys.executable, str(REPO / "infer.py"), "--helpfull"],
                               capture_output=True, text=True).stdout
    for flag in ("input_folder", "output_folder", "with_scratch", "HR", "checkpoint_dir",
                 "no_faces", "max_side", "overwrite", "batch_size", "attention_chunk"):
        assert f"--{flag}" in help_text
