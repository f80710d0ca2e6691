"""The bundled model (weights/default): what it holds, its size, and that it restores.

It is trained by our own train.py (weights/README.md); these tests pin what a fresh checkout's
``make restore`` relies on. They are skipped in a checkout without ``weights/default``.
"""
import pathlib
import subprocess
import sys

import pytest

from oldphoto_jax import bundled, model_files, photo_files
from oldphoto_jax.pipeline.stage_runner import FINAL, runnable_modes
from oldphoto_jax.roles import MODES

REPO = pathlib.Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(not (bundled.DEFAULT_DIR / "manifest.json").exists(),
                                reason="no bundled model in this checkout (weights/README.md)")


def _size_mb(folder: pathlib.Path) -> float:
    """Size of what git ships from ``folder`` (tracked or not ignored; every file outside git)."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard",
                             "-z", str(folder)], cwd=REPO, capture_output=True)
    if listed.returncode == 0:
        files = [REPO / name for name in listed.stdout.decode().split("\0") if name]
    else:
        files = [p for p in folder.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files if p.is_file()) / 2 ** 20


def _infer(input_folder: pathlib.Path, output_folder: pathlib.Path, *flags: str):
    """``infer.py`` from the repository root as a user runs it; fails the test if it fails."""
    completed = subprocess.run(
        [sys.executable, "infer.py", f"--input_folder={input_folder}",
         f"--output_folder={output_folder}", *flags],
        cwd=REPO, capture_output=True, text=True, timeout=900)
    assert completed.returncode == 0, completed.stderr[-2000:]
    return completed


def test_bundled_model_runs_every_mode_and_says_how_it_was_made():
    """Quality (the official default command), scratch and HR mode (issue 14; bundled model 7
    has an HR mapping). It keeps colours: colour-carrying VAE_Bs whose output is re-standardised
    to the carried statistics and written clamped, not min-max stretched."""
    model = model_files.load_model(bundled.DEFAULT_DIR)
    assert set(runnable_modes(model)) == set(MODES)
    assert "train.py" in model.source and "weights/README.md" in model.source
    for role in ("vae_b_quality", "vae_b_scratch"):
        config = model_files.read_network_config(bundled.DEFAULT_DIR / role)
        assert config["model"] == "vae_colour" and config["args"]["restandardise"] is True
    assert model.restored_range == "clamp"


def test_bundled_model_files_match_their_recorded_checksums():
    """Every file of the bundled model is verified when its network loads (git must not change
    its bytes: .gitattributes marks weights/ as binary)."""
    model = model_files.load_model(bundled.DEFAULT_DIR)
    assert model.notes == []
    recorded = set(model.checksums)
    assert recorded == {p.relative_to(bundled.DEFAULT_DIR).as_posix()
                        for p in bundled.DEFAULT_DIR.rglob("*")
                        if p.is_file() and p.name != "manifest.json"}
    for role in model.roles:
        model.network(role)


def test_bundled_files_fit_in_git():
    # Mappings of the small widths: quality 5 MB, scratch 6 MB, HR 14 MB in float32.
    assert _size_mb(bundled.DEFAULT_DIR) < 32
    assert _size_mb(REPO / "weights") < 50


def test_make_restore_command_restores_the_samples(tmp_path):
    """What ``make restore`` runs, on the scratched sample photos."""
    samples = REPO / "samples" / "old_w_scratch"
    completed = _infer(samples, tmp_path, "--with_scratch")
    assert str(bundled.DEFAULT_DIR) in completed.stdout
    for photo in sorted(samples.glob("*.png")):
        out = photo_files.read_photo(tmp_path / FINAL / photo.name).rgb
        source = photo_files.read_photo(photo).rgb
        assert out.shape[2] == 3 and abs(out.shape[0] - source.shape[0]) < 16
        mask = photo_files.read_photo(
            tmp_path / "stage_1_restore_output" / "masks" / "mask" / photo.name).rgb
        assert mask.any(), f"no scratch found on {photo.name}"


def test_hr_command_restores_a_scratched_sample(tmp_path):
    """``infer.py --with_scratch --HR``: the patch-attention mapping on the dilated, painted
    mask of one scratched sample."""
    photo = REPO / "samples" / "old_w_scratch" / "b.png"
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / photo.name).write_bytes(photo.read_bytes())
    _infer(tmp_path / "in", tmp_path / "out", "--with_scratch", "--HR")
    out = photo_files.read_photo(tmp_path / "out" / FINAL / photo.name).rgb
    source = photo_files.read_photo(photo).rgb
    assert out.shape[2] == 3 and abs(out.shape[0] - source.shape[0]) < 32 and out.std() > 5


def test_official_default_command_restores_the_unscratched_samples(tmp_path):
    """``infer.py --input_folder in --output_folder out``: quality mode, what ``make restore``
    runs on ``samples/old``."""
    samples = REPO / "samples" / "old"
    _infer(samples, tmp_path)
    for photo in sorted(samples.glob("*.png")):
        out = photo_files.read_photo(tmp_path / FINAL / photo.name).rgb
        assert out.shape[2] == 3 and out.std() > 5  # a picture, not a flat image
    assert not (tmp_path / "stage_1_restore_output" / "masks").exists()
