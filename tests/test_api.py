"""The Python API (``oldphoto_jax.Restorer``) against ``infer.py``'s folder run, with a tiny
random-weight model on the sample photos (downscaled: outputs are meaningless, what is checked
is that both doors give the same bytes)."""
import io
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from oldphoto_jax import api
from oldphoto_jax.api import RestorationError, encode_png
from oldphoto_jax import photo_files
from oldphoto_jax.pipeline import stage_runner
from oldphoto_jax.pipeline.command import restore_folder

REPO = pathlib.Path(__file__).resolve().parents[1]
SAMPLES = REPO / "samples"


def _infer(restorer, folder, out, options, monkeypatch):
    """``infer.py``'s code path (``pipeline.command.restore_folder``), reusing the test
    restorer's compiled networks (a fresh one would compile every shape again)."""
    class Shared:
        def __init__(self, model, options, log):
            assert model.directory == restorer.model.directory
            self.options = {name: getattr(options, name) for name in api.CALL_OPTIONS}

        def restore_folder(self, input_folder, output_folder):
            return restorer.restore_folder(input_folder, output_folder, **self.options)

    monkeypatch.setattr(api, "Restorer", Shared)
    stdout, stderr = io.StringIO(), io.StringIO()
    status = restore_folder(str(folder), str(out), str(restorer.model.directory), options,
                            out=stdout, err=stderr)
    assert status == 0, stderr.getvalue()
    assert "3 restored" in stdout.getvalue() or "2 restored" in stdout.getvalue()
    return out


@pytest.mark.parametrize("with_scratch", [True, False], ids=["scratch", "quality"])
def test_api_equals_folder_run_byte_for_byte(tiny_restorer, tmp_path, monkeypatch,
                                             with_scratch):
    folder = SAMPLES / ("old_w_scratch" if with_scratch else "old")
    options = stage_runner.Options(with_scratch=with_scratch, faces=False,
                                   max_side=tiny_restorer.options.max_side)
    out = _infer(tiny_restorer, folder, tmp_path / "out", options, monkeypatch)
    paths = sorted(folder.glob("*.png"))
    results = tiny_restorer.restore_many(paths, with_scratch=with_scratch)
    stage1 = out / stage_runner.STAGE1
    for path, result in zip(paths, results):
        assert result.png() == (out / stage_runner.FINAL / path.name).read_bytes()
        assert result.png("restored") == (stage1 / "restored_image" / path.name).read_bytes()
        assert result.png("origin") == (stage1 / "origin" / path.name).read_bytes()
        if with_scratch:
            assert result.png("mask") == (stage1 / "masks" / "mask" / path.name).read_bytes()
        else:
            assert result.mask is None
        assert max(result.input.shape[:2]) == options.max_side
        assert result.mode == ("scratch" if with_scratch else "quality")
    # In-memory forms of the same photo give the same bytes as its file.
    path, expected = paths[0], results[0].png()
    with Image.open(path) as image:
        assert tiny_restorer.restore(image, with_scratch=with_scratch).png() == expected
    assert tiny_restorer.restore(path.read_bytes(), with_scratch=with_scratch).png() == expected
    rgba = np.asarray(Image.open(path))
    assert tiny_restorer.restore(rgba, with_scratch=with_scratch).png() == expected


def test_progress_errors_and_saving(tiny_restorer, tmp_path):
    stages = []
    photo = np.asarray(Image.open(SAMPLES / "old_w_scratch" / "b.png").convert("RGB"))
    result = tiny_restorer.restore(photo, progress=stages.append, name="b.png")
    assert stages == ["reading", "scratch detection", "global restoration", "blending"]
    assert result.name == "b.png" and result.final.dtype == np.uint8
    result.save(tmp_path / "b.jpg")
    assert Image.open(tmp_path / "b.jpg").size == result.final.shape[1::-1]
    # A 16-bit greyscale array is read as a 16-bit file would be (high byte).
    grey16 = (photo[:, :, 0].astype(np.uint16) << 8) | 0x7F
    grey = tiny_restorer.restore(grey16)
    assert any("16-bit" in note for note in grey.notes)
    np.testing.assert_array_equal(grey.input[:, :, 0], grey.input[:, :, 2])
    with pytest.raises(RestorationError, match="broken.jpg: not an image file"):
        tiny_restorer.restore(b"this is not an image", name="broken.jpg")
    with pytest.raises(RestorationError, match="too small"):
        tiny_restorer.restore(np.zeros((10, 40, 3), np.uint8))
    with pytest.raises(TypeError):
        tiny_restorer.restore(photo, overwrite=True)
    mixed = tiny_restorer.restore_many([b"", photo], names=["empty.png", "ok.png"],
                                       errors="return")
    assert isinstance(mixed[0], RestorationError) and "empty" in str(mixed[0])
    assert mixed[1].png() == result.png()


def test_networks_are_shared_between_options(tiny_restorer):
    assert tiny_restorer.modes() == {"quality": True, "scratch": True, "scratch_hr": False,
                                     "faces": False, "faces_hr": False}
    assert tiny_restorer.pipeline(tiny_restorer.options).networks["restore"] is \
        tiny_restorer.pipeline(stage_runner.Options(with_scratch=True, max_side=32,
                                                    faces=False)).networks["restore"]


def test_import_is_lazy_and_reexports():
    code = "import sys, oldphoto_jax; assert 'jax' not in sys.modules, 'jax imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
    import oldphoto_jax

    assert oldphoto_jax.Restorer is api.Restorer and oldphoto_jax.restore is api.restore


def test_encode_png_matches_the_folder_writer(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    photo_files.write_png_atomic(tmp_path / "x.png", rgb)
    assert encode_png(rgb) == (tmp_path / "x.png").read_bytes()


@pytest.mark.slow
def test_faces_are_returned_and_match_the_folder_run(tmp_path, monkeypatch):
    """Faces found and enhanced (dlib on a real portrait, a tiny random face network): the
    API's stage results equal the folder run's files."""
    skimage_data = pytest.importorskip("skimage.data")
    pytest.importorskip("dlib")
    from oldphoto_jax.testing.random_model import write_random_model

    after_restoration = stage_runner.StageRunner._after_restoration

    def keep_the_photo(self, job, out, output):
        after_restoration(self, job, out, output)
        job.restored = job.origin  # random weights leave no face for dlib to find

    monkeypatch.setattr(stage_runner.StageRunner, "_after_restoration", keep_the_photo)

    write_random_model(tmp_path / "model", roles=["vae_a", "mapping_quality", "vae_b_quality",
                                                  "face_256"])
    restorer = api.Restorer(tmp_path / "model")
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(skimage_data.astronaut()[:256, 64:320]).save(folder / "astronaut.png")
    summary = restorer.restore_folder(folder, tmp_path / "out")
    assert summary.restored == ["astronaut.png"]
    result = restorer.restore(folder / "astronaut.png")
    faces = len(result.faces)
    assert faces >= 1 and len(result.enhanced_faces) == faces == summary.faces
    out = tmp_path / "out"
    assert result.png() == (out / stage_runner.FINAL / "astronaut.png").read_bytes()
    for k in range(faces):
        assert encode_png(result.faces[k].image) == (
            out / stage_runner.STAGE2 / f"astronaut_{k + 1}.png").read_bytes()
        assert encode_png(result.enhanced_faces[k]) == (
            out / stage_runner.STAGE3 / f"astronaut_{k + 1}.png").read_bytes()
