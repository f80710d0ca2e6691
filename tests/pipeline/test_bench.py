"""``python -m oldphoto_jax.bench``: the cases measure the pipeline's own jitted functions (no
timing is asserted: it is a benchmark, not a timed test)."""
from __future__ import annotations

import numpy as np
import pytest

from oldphoto_jax import bench, checkpoints
from oldphoto_jax.testing.random_model import write_random_model

ROLES = ("vae_a", "mapping_scratch", "vae_b_scratch", "scratch_detector")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("bench") / "model"
    write_random_model(directory, roles=ROLES)
    return directory


def test_stages_the_model_lacks_are_skipped_with_the_missing_roles(model_dir):
    roles = checkpoints.load_model(model_dir).roles
    runnable, notes = bench.available_stages(roles, bench.STAGES)
    assert runnable == ["detect", "restore_scratch"]
    assert "note: skipping restore_quality: the model lacks mapping_quality, vae_b_quality" in notes
    assert "note: skipping restore_hr: the model lacks mapping_hr" in notes
    assert any(n.startswith("note: skipping face: the model lacks face_512 or face_256")
               for n in notes)


def test_restore_case_runs_the_pipeline_function_at_full_size(model_dir):
    result = bench.run_case(str(model_dir), "restore_scratch", 48, repeats=1, attention_chunk=7)
    assert result["output_shape"] == [1, 48, 48, 3]
    assert result["compile_s"] > 0 and result["run_s"] > 0
    assert result["peak_rss_mib"] >= result["rss0_mib"] > 0


def test_detect_case_in_a_fresh_process_and_the_table(model_dir):
    result = bench.run_in_subprocess(str(model_dir), "detect", 64, 1, 1024, timeout=300)
    assert "error" not in result, result
    assert result["output_shape"] == [1, 256, 256, 1]  # short side 256, as the pipeline
    failed = {"stage": "restore_hr", "size": 64, "error": "ValueError: boom"}
    table = bench.markdown_table([result, failed]).splitlines()
    assert result["network_side"] == 256
    assert table[2].startswith("| detect | 64 | 256 | ") and table[3].startswith(
        "| restore_hr | 64 | error: ValueError: boom")


def test_synthetic_photo_has_scratch_lines():
    photo, mask = bench.synthetic_photo(64)
    assert photo.shape == (64, 64, 3) and photo.dtype == np.uint8
    assert set(np.unique(mask)) == {0.0, 1.0} and 0.02 < mask.mean() < 0.5


def test_official_width_random_networks_for_benchmarks():
    from oldphoto_jax.testing.random_model import random_network

    module, variables = random_network("mapping_scratch", widths="official")
    assert (module.nc, module.mc) == (64, 512)  # the release's widths
    with pytest.raises(ValueError, match="widths"):
        write_random_model("/nonexistent", widths="huge")
