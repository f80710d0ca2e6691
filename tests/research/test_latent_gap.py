"""The latent-gap tool end to end on a tiny random model and small synthetic photos (seconds)."""
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from oldphoto_jax.evaluation import degraded_set
from oldphoto_jax.research import samples
from oldphoto_jax.research.latent_gap import latent_gap
from oldphoto_jax.testing.random_model import write_random_model
from oldphoto_jax.testing.synthetic_photos import smooth_photo

SPACES = ("pixels", "image_stats", "vae_a", "vae_b")
PAIRS = ("R-X", "X-Y", "R-Y")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("latent_gap")
    write_random_model(root / "model", roles=("vae_a", "vae_b_scratch"))
    for folder, count, phase in (("old", 3, 1.0), ("old2", 1, 2.0), ("clean", 4, 0.0)):
        (root / folder).mkdir()
        for i in range(count):
            rgb = smooth_photo(64 + 8 * i, 72, seed=i, phase=phase + i)
            Image.fromarray(rgb).save(root / folder / f"p{i}.png")
    (root / "clean" / "README.md").write_text("not a photo\n")
    return root


@pytest.fixture(scope="module")
def result(inputs):
    logs = []
    out = latent_gap(inputs / "model", [str(inputs / "old"), str(inputs / "old2" / "p0.png")],
                     [str(inputs / "clean")], inputs / "out", crop_size=32, crops_per_photo=3,
                     n_bootstrap=10, n_permutations=20, log=logs.append)
    return out, logs


def test_outputs_exist_and_are_well_formed(inputs, result):
    out, logs = result
    folder = inputs / "out"
    on_disk = json.loads((folder / "results.json").read_text())
    assert on_disk["sets"] == json.loads(json.dumps(out["sets"]))
    assert on_disk["sets"]["R"]["photos"] == 4 and on_disk["sets"]["R"]["crops"] == 12
    assert on_disk["sets"]["X"]["crops"] == on_disk["sets"]["Y"]["crops"] == 12
    assert on_disk["settings"]["vae_b_role"] == "vae_b_scratch"
    assert set(on_disk["spaces"]) == set(SPACES)
    for space in SPACES:
        assert set(on_disk["spaces"][space]["pairs"]) == set(PAIRS)
        for pair in on_disk["spaces"][space]["pairs"].values():
            for metric in ("frechet", "mmd2", "accuracy"):
                assert np.isfinite(pair[metric]["value"])
                low, high = pair[metric]["interval"]
                assert low <= high
            assert 0 < pair["mmd2"]["p_value"] <= 1
            assert 0 <= pair["accuracy"]["value"] <= 1
            assert pair["frechet"]["value"] >= -1e-9
    text = (folder / "results.md").read_text()
    assert text.count("| latent: VAE_A encoder | R–X |") == 1
    assert "Fréchet R–X / X–Y" in text
    with Image.open(folder / "embedding.png") as picture:
        assert picture.format == "PNG" and picture.width == 600 and picture.height > 4 * 300
    arrays = np.load(folder / "features.npz")
    assert arrays["vae_a/R"].shape == (12, 16)  # mean and deviation of 8 latent channels
    assert arrays["groups/X"].tolist() == arrays["groups/Y"].tolist()
    assert any("encoding R" in line for line in logs)  # progress while encoding
    assert any("README.md: skipped" in line for line in logs)


def test_x_and_y_are_the_same_crops_before_and_after_degradation(inputs):
    sets = samples.build_sets([inputs / "old" / "p0.png", inputs / "old" / "p1.png"],
                              [inputs / "clean" / "p0.png"], seed=3, preset="extended",
                              max_side=None, crop_size=32, crops_per_photo=2, log=lambda _: None)
    assert sets["R"].groups.tolist() == [0, 0, 1, 1]
    assert sets["X"].groups.tolist() == sets["Y"].groups.tolist() == [2, 2]
    clean = degraded_set.fit_clean(np.asarray(Image.open(inputs / "clean" / "p0.png")), None)
    positions = samples.crop_positions(clean.shape[:2], 32, 2, 3, "clean/p0.png")
    np.testing.assert_array_equal(sets["Y"].crops, samples.cut(clean, positions, 32))
    assert not np.array_equal(sets["X"].crops, sets["Y"].crops)
    again = samples.build_sets([inputs / "old" / "p0.png", inputs / "old" / "p1.png"],
                               [inputs / "clean" / "p0.png"], seed=3, preset="extended",
                               max_side=None, crop_size=32, crops_per_photo=2,
                               log=lambda _: None)
    np.testing.assert_array_equal(again["X"].crops, sets["X"].crops)  # reproducible


def test_model_without_vae_b_skips_that_space(inputs, tmp_path):
    write_random_model(tmp_path / "model", roles=("vae_a",))
    out = latent_gap(tmp_path / "model", [str(inputs / "old")], [str(inputs / "clean")],
                     tmp_path / "out", crop_size=32, crops_per_photo=2, n_bootstrap=5,
                     n_permutations=5, draw_embedding=False, log=lambda _: None)
    assert set(out["spaces"]) == {"pixels", "image_stats", "vae_a"}
    assert not (tmp_path / "out" / "embedding.png").exists()


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "oldphoto_jax.research.latent_gap", *args],
                          capture_output=True, text=True, timeout=300)


def test_bad_paths_are_one_line_errors(inputs, tmp_path):
    missing = run_cli("--checkpoint_dir", str(inputs / "model"), "--real", str(tmp_path / "no"),
                      "--clean", str(inputs / "clean"), "--output_dir", str(tmp_path / "o"))
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines()[-1] == f"error: --real: {tmp_path / 'no'} does " \
                                                      "not exist"
    no_model = run_cli("--checkpoint_dir", str(tmp_path), "--real", str(inputs / "old"),
                       "--clean", str(inputs / "clean"))
    assert no_model.returncode == 2 and "manifest.json missing" in no_model.stderr


def test_photos_smaller_than_the_crops_are_named(inputs, tmp_path):
    with pytest.raises(samples.InputError, match="p0.png: 64x64 after fitting is smaller than "
                                                 "the 96 px crops"):
        latent_gap(inputs / "model", [str(inputs / "old")], [str(inputs / "clean")],
                   tmp_path / "o", crop_size=96, log=lambda _: None)
    assert not (tmp_path / "o").exists()


def test_seeds_summarise_the_runs_of_each_seed(inputs, tmp_path):
    from oldphoto_jax.research.latent_gap import latent_gap_seeds

    out = latent_gap_seeds(inputs / "model", [str(inputs / "old")], [str(inputs / "clean")],
                           tmp_path / "seeds", [0, 1], crop_size=32, crops_per_photo=2,
                           n_bootstrap=5, n_permutations=5, log=lambda _: None)
    runs = [json.loads((tmp_path / "seeds" / f"seed_{s}" / "results.json").read_text())
            for s in (0, 1)]
    assert (tmp_path / "seeds" / "seed_0" / "embedding.png").exists()
    assert not (tmp_path / "seeds" / "seed_1" / "embedding.png").exists()
    accuracies = out["summary"]["vae_a"]["R-X"]["accuracy"]
    assert accuracies == [r["spaces"]["vae_a"]["pairs"]["R-X"]["accuracy"]["value"] for r in runs]
    table = (tmp_path / "seeds" / "seeds.md").read_text()
    mean = np.mean(accuracies)
    sd = np.std(accuracies, ddof=1)
    assert "| latent: VAE_A encoder | R–X |" in table and f"{mean:.2f} ± {sd:.2f} |" in table
    with pytest.raises(samples.InputError, match="distinct seeds"):
        latent_gap_seeds(inputs / "model", [str(inputs / "old")], [str(inputs / "clean")],
                         tmp_path / "again", [1, 1], log=lambda _: None)
