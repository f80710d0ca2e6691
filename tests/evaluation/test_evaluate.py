"""The evaluation harness: test set, classical baseline, metrics, and the whole run with a tiny
random-weight model (its scores are meaningless; what is checked is the bookkeeping)."""
import json
import math
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from oldphoto_jax import bundled, roles
from oldphoto_jax.evaluation.evaluation_run import evaluate, evaluate_seeds
from oldphoto_jax.evaluation import classical, degraded_set, image_scores, report
from oldphoto_jax.testing.synthetic_photos import smooth_photo as make_smooth_photo

REPO = pathlib.Path(__file__).resolve().parents[2]
_smooth_photo = make_smooth_photo


def test_psnr_and_ssim_follow_their_definitions():
    clean = _smooth_photo()
    shifted = np.clip(clean.astype(int) + 1, 0, 255).astype(np.uint8)
    mse = np.mean((clean.astype(float) - shifted.astype(float)) ** 2)
    assert image_scores.psnr(clean, shifted) == pytest.approx(10 * math.log10(255 ** 2 / mse))
    assert image_scores.ssim(clean, clean) == pytest.approx(1.0)
    assert image_scores.ssim(clean, 255 - clean) < 0.5
    with pytest.raises(ValueError, match="shapes differ"):
        image_scores.psnr(clean, clean[:-1])


def test_offset_removal_undoes_a_global_colour_cast_only():
    rng = np.random.default_rng(1)
    clean = rng.integers(40, 200, (16, 20, 3)).astype(np.uint8)
    cast = (clean.astype(int) + np.array([30, -12, 5])).astype(np.uint8)
    np.testing.assert_allclose(image_scores.mean_colour_offset(clean, cast), [30, -12, 5])
    np.testing.assert_array_equal(image_scores.offset_removed(clean, cast), clean)
    noisy = np.clip(clean + rng.normal(0, 8, clean.shape), 0, 255).astype(np.uint8)
    # Zero-mean noise is not a cast: removing the (near-zero) offset leaves the PSNR about equal.
    assert image_scores.psnr(clean, image_scores.offset_removed(clean, noisy)) == pytest.approx(
        image_scores.psnr(clean, noisy), abs=0.1)
    # A cast on top of the noise costs PSNR that the diagnosis gives back.
    cast_noisy = np.clip(noisy.astype(int) + np.array([30, -12, 5]), 0, 255).astype(np.uint8)
    assert image_scores.psnr(clean, cast_noisy) < image_scores.psnr(clean, noisy) - 5
    assert image_scores.psnr_offset_removed(clean, cast_noisy) == pytest.approx(
        image_scores.psnr(clean, noisy), abs=0.2)


def test_classical_baseline_removes_noise_and_fills_the_mask():
    clean = _smooth_photo()
    rng = np.random.default_rng(1)
    noisy = np.clip(clean + rng.normal(0, 15, clean.shape), 0, 255).astype(np.uint8)
    mask = np.zeros(clean.shape[:2], bool)
    mask[40:43, 10:120] = True
    noisy[mask] = 255
    restored = classical.classical_restore(noisy, mask)
    assert restored.shape == clean.shape and restored.dtype == np.uint8
    assert image_scores.psnr(clean, restored) > image_scores.psnr(clean, noisy) + 5
    # the scratch is gone: inside the mask the result is close to the clean photo
    assert np.abs(restored[mask].astype(int) - clean[mask]).mean() < 20


def test_fit_clean_downscales_and_crops_to_multiples_of_16():
    photo = _smooth_photo(300, 1000)
    fitted = degraded_set.fit_clean(photo, max_side=512)
    assert fitted.shape[1] == 512 and fitted.shape[0] % 16 == 0 and fitted.shape[0] <= 154
    assert degraded_set.fit_clean(photo[:100, :130], None).shape == (96, 128, 3)
    with pytest.raises(ValueError, match="too small"):
        degraded_set.fit_clean(photo[:20, :40], None)


def test_cases_depend_on_seed_and_name_only():
    photo = _smooth_photo()
    a = degraded_set.make_case("a.png", photo, seed=3)
    again = degraded_set.make_case("a.png", photo.copy(), seed=3)
    other_name = degraded_set.make_case("b.png", photo, seed=3)
    other_seed = degraded_set.make_case("a.png", photo, seed=4)
    np.testing.assert_array_equal(a.degraded, again.degraded)
    np.testing.assert_array_equal(a.mask, again.mask)
    assert not np.array_equal(a.degraded, other_name.degraded)
    assert not np.array_equal(a.degraded, other_seed.degraded)
    assert a.mask.dtype == bool and a.mask.shape == photo.shape[:2]


def test_holdout_photos_exist_and_are_excluded_from_training():
    clean = REPO.parent / "shared" / "photos" / "clean"
    if not clean.is_dir():
        pytest.skip("../shared/photos is not available")
    from oldphoto_jax.data import FolderPhotos
    from oldphoto_jax.training import inputs

    assert all((clean / name).is_file() for name in bundled.HOLDOUT)
    spec = importlib_config("vae_b", "small")
    photos = inputs.training_photos(spec.data, "domain_b")
    names = {photos.clean.name(i) for i in range(len(photos.clean))}
    assert names.isdisjoint(bundled.HOLDOUT)
    more = clean.parent / "clean_more"  # the small recipe reads both folders (issue 14)
    assert len(names) == (len(FolderPhotos(str(clean))) - len(bundled.HOLDOUT)
                          + len(FolderPhotos(str(more))))
    with pytest.raises(ValueError, match="not found"):
        FolderPhotos(str(clean), exclude=("no_such_photo.jpg",))


def importlib_config(name, arg):
    from oldphoto_jax.testing.config_files import load_config

    return load_config(name, arg)


def test_markdown_table_has_a_row_per_photo_and_a_mean():
    scores = {"x.png": {m: {"psnr": 20.0 + i, "ssim": 0.5} for i, m in enumerate(report.METHODS)},
              "y.png": {m: {"psnr": 22.0 + i, "ssim": 0.7} for i, m in enumerate(report.METHODS)}}
    table = report.markdown_table(scores)
    lines = table.splitlines()
    assert len(lines) == 5 and lines[2].startswith("| x.png") and "**mean**" in lines[-1]
    assert "| 21.00 | 0.6000 | 22.00 | 0.6000 | 23.00 | 0.6000 |" in lines[-1]


def test_colour_diagnosis_stays_out_of_the_score_tables_and_has_its_own():
    scores = {"x.png": {m: {"psnr": 20.0 + i, "ssim": 0.5, "psnr_offset_removed": 21.0 + 2 * i}
                        for i, m in enumerate(report.METHODS)}}
    assert "offset" not in report.markdown_table(scores)
    assert "offset" not in report.seeds_table({0: report.mean_scores(scores)})
    lines = report.colour_table(report.mean_scores(scores)).splitlines()
    assert len(lines) == 5 and "oldphoto-jax" in lines[0]
    assert lines[2] == "| PSNR | 20.00 | 21.00 | 22.00 |"
    assert lines[3].endswith("| 21.00 | 23.00 | 25.00 |")
    assert lines[4] == "| cost of the colour offset (dB) | 1.00 | 2.00 | 3.00 |"
    assert report.colour_table({m: {"psnr": 1.0} for m in report.METHODS}) == ""


def test_evaluate_runs_end_to_end_and_writes_its_results(tmp_path, eval_inputs):
    model_dir, clean = eval_inputs({"one.png": _smooth_photo(70, 90, seed=1),
                                    "two.jpg": _smooth_photo(64, 64, seed=2)})
    output = tmp_path / "eval"
    result = evaluate(clean, None, model_dir, output, seed=0, log=lambda line: None)
    assert set(result["scores"]) == {"one.png", "two.jpg"}
    for name, stem in (("one.png", "one"), ("two.jpg", "two")):
        clean_img = np.asarray(Image.open(output / "clean" / f"{stem}.png"))
        degraded = np.asarray(Image.open(output / "degraded" / f"{stem}.png"))
        ours = np.asarray(Image.open(output / "ours" / "final_output" / f"{stem}.png"))
        assert clean_img.shape == ours.shape == degraded.shape
        assert clean_img.shape[0] % 16 == 0 and clean_img.shape[1] % 16 == 0
        scores = result["scores"][name]
        assert scores["input"]["psnr"] == pytest.approx(image_scores.psnr(clean_img, degraded))
        assert scores["ours"]["ssim"] == pytest.approx(image_scores.ssim(clean_img, ours))
        assert scores["ours"]["psnr_offset_removed"] == pytest.approx(
            image_scores.psnr_offset_removed(clean_img, ours))
    written = json.loads((output / "results.json").read_text())
    assert written["settings"]["preset"] == "extended"
    assert "**mean**" in (output / "results.md").read_text()
    assert "colour diagnosis" in (output / "results.md").read_text()
    assert (output / "sheet.png").is_file()


def test_quality_cases_have_no_local_damage_and_the_same_unstructured_draw():
    rgb = _smooth_photo(96, 128, seed=3)
    for seed in range(6):
        quality = degraded_set.make_case("q.png", rgb, seed, local_damage=False)
        assert not quality.mask.any()
        assert not np.array_equal(quality.degraded, quality.clean)
    damaged = [degraded_set.make_case("q.png", rgb, seed).mask.any() for seed in range(6)]
    assert any(damaged)  # the full recipe does draw local damage on this photo


def test_quality_mode_restores_with_the_quality_mapping(tmp_path, eval_inputs):
    model_dir, clean = eval_inputs({"one.png": _smooth_photo(64, 80, seed=4)},
                                   roles.MODE_ROLES["quality"])
    output = tmp_path / "eval"
    result = evaluate(clean, None, model_dir, output, seed=0, mode="quality",
                      log=lambda line: None)
    assert result["settings"]["mode"] == "quality"
    assert not np.asarray(Image.open(output / "mask" / "one.png")).any()
    ours = np.asarray(Image.open(output / "ours" / "final_output" / "one.png"))
    assert ours.shape == np.asarray(Image.open(output / "clean" / "one.png")).shape
    assert set(result["scores"]["one.png"]) == {"input", "classical", "ours"}
    with pytest.raises(ValueError, match="unknown mode"):
        evaluate(clean, None, model_dir, tmp_path / "bad", mode="hr", log=lambda line: None)


def test_seeds_table_reports_each_seed_and_the_mean_with_its_spread():
    per_seed = {0: {m: {"psnr": 16.0 + i, "ssim": 0.5} for i, m in enumerate(report.METHODS)},
                3: {m: {"psnr": 18.0 + i, "ssim": 0.7} for i, m in enumerate(report.METHODS)}}
    summary = report.summarise_seeds(per_seed)
    assert summary["mean"]["ours"]["psnr"] == pytest.approx(19.0)
    assert summary["std"]["ours"]["psnr"] == pytest.approx(1.0)
    lines = report.seeds_table(per_seed).splitlines()
    assert len(lines) == 5 and lines[2].startswith("| 0 |") and lines[3].startswith("| 3 |")
    assert lines[-1] == ("| **mean ± sd** | 17.00 ± 1.00 | 0.6000 ± 0.1000 | 18.00 ± 1.00 | "
                         "0.6000 ± 0.1000 | 19.00 ± 1.00 | 0.6000 ± 0.1000 |")


def test_evaluate_seeds_runs_one_evaluation_per_seed(tmp_path, eval_inputs):
    model_dir, clean = eval_inputs({"one.png": _smooth_photo(48, 64, seed=1)})
    output = tmp_path / "eval"
    result = evaluate_seeds(clean, None, model_dir, output, [0, 5], log=lambda line: None)
    for seed in (0, 5):
        single = json.loads((output / f"seed_{seed}" / "results.json").read_text())
        assert single["settings"]["seed"] == seed
        for method, values in single["mean"].items():
            assert result["per_seed"][seed][method] == pytest.approx(values)
    inputs = [result["per_seed"][s]["input"]["psnr"] for s in (0, 5)]
    assert inputs[0] != inputs[1]  # the seeds degrade differently
    assert result["mean"]["input"]["psnr"] == pytest.approx(np.mean(inputs))
    written = json.loads((output / "seeds.json").read_text())
    assert set(written["per_seed"]) == {"0", "5"} and "mean ± sd" in (
        output / "seeds.md").read_text()
    with pytest.raises(ValueError, match="distinct seeds"):
        evaluate_seeds(clean, None, model_dir, output, [1, 1])


def test_command_line_reports_a_missing_model(tmp_path):
    completed = subprocess.run(
        [sys.executable, "-m", "oldphoto_jax.evaluate", f"--checkpoint_dir={tmp_path / 'none'}"],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 2
    assert "no model at" in completed.stderr


@pytest.mark.parametrize("flag, message", [("lpips_weights", "no LPIPS weights at"),
                                           ("fid_weights", "no FID weights at")])
def test_command_line_reports_a_missing_weights_file(tmp_path, eval_inputs, flag, message):
    model_dir, _ = eval_inputs({})
    completed = subprocess.run(
        [sys.executable, "-m", "oldphoto_jax.evaluate", f"--checkpoint_dir={model_dir}",
         f"--{flag}={tmp_path / 'none.npz'}"],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 2
    assert message in completed.stderr


def test_contact_sheet_lays_out_rows_and_columns(tmp_path):
    from oldphoto_jax.evaluation import contact_sheet

    before, after = tmp_path / "before", tmp_path / "after"
    before.mkdir()
    after.mkdir()
    Image.fromarray(_smooth_photo(40, 60)).save(before / "a.jpg")
    Image.fromarray(_smooth_photo(50, 50)).save(before / "b.png")
    Image.fromarray(_smooth_photo(40, 60, seed=3)).save(after / "a.png")
    Image.fromarray(_smooth_photo(50, 50, seed=4)).save(after / "b.png")
    out = tmp_path / "sheet.png"
    assert contact_sheet.main(["--columns", str(before), str(after), "--output", str(out),
                               "--height", "20"]) == 0
    sheet = np.asarray(Image.open(out))
    assert sheet.shape == (20 * 2 + contact_sheet.GAP, 30 + 30 + contact_sheet.GAP, 3)
    (after / "b.png").unlink()
    assert contact_sheet.main(["--columns", str(before), str(after), "--output", str(out)]) == 1


def test_scratch_hr_mode_restores_with_the_hr_mapping(tmp_path, eval_inputs):
    """Only the HR roles are given, so a run that used the scratch mapping would fail."""
    roles_hr = set(roles.MODE_ROLES["scratch_hr"]) | {"scratch_detector"}
    model_dir, clean = eval_inputs({"one.png": _smooth_photo(64, 64, seed=5)}, sorted(roles_hr))
    result = evaluate(clean, None, model_dir, tmp_path / "eval", seed=0, mode="scratch_hr",
                      log=lambda line: None)
    assert result["settings"]["mode"] == "scratch_hr"
    assert np.asarray(Image.open(tmp_path / "eval" / "mask" / "one.png")).any()


def test_given_mask_restores_with_the_true_mask(tmp_path, eval_inputs):
    """--given_mask: the model restores with the true damage mask (the one the classical
    baseline gets), written as its stage-1 mask; quality mode has none to give."""
    model_dir, clean = eval_inputs({"one.png": _smooth_photo(64, 64, seed=5)})
    lines = []
    result = evaluate(clean, None, model_dir, tmp_path / "eval", seed=0, given_mask=True,
                      log=lines.append)
    assert result["settings"]["given_mask"] is True
    true = np.asarray(Image.open(tmp_path / "eval" / "mask" / "one.png").convert("L"))
    used = np.asarray(Image.open(tmp_path / "eval" / "ours" / "stage_1_restore_output" /
                                 "masks" / "mask" / "one.png").convert("L"))
    assert true.any() and np.array_equal(used, true)
    assert any("mask one.png:" in line for line in lines)
    with pytest.raises(ValueError, match="needs a scratch mode"):
        evaluate(clean, None, model_dir, tmp_path / "bad", mode="quality", given_mask=True,
                 log=lambda line: None)
