"""``python -m oldphoto_jax.bench``: the cases measure the pipeline's own jitted functions (no
timing is asserted: it is a benchmark, not a timed test)."""
from __future__ import annotations

import os

import numpy as np
import pytest

from oldphoto_jax import bench, model_files
from oldphoto_jax.testing.random_model import write_random_model

ROLES = ("vae_a", "mapping_scratch", "vae_b_scratch", "scratch_detector")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("bench") / "model"
    write_random_model(directory, roles=ROLES)
    return directory


def test_stages_the_model_lacks_are_skipped_with_the_missing_roles(model_dir):
    roles = model_files.load_model(model_dir).roles
    runnable, notes = bench.available_stages(roles, bench.STAGES)
    assert runnable == ["detect", "restore_scratch"]
    assert "note: skipping restore_quality: the model lacks mapping_quality, vae_b_quality" in notes
    assert "note: skipping restore_hr: the model lacks mapping_hr" in notes
    assert "note: skipping face_256: the model lacks face_256" in notes
    assert "note: skipping face_512: the model lacks face_512" in notes


def test_face_selects_both_face_sizes_and_unknown_stages_are_refused():
    assert bench.expand_stages(["detect", "face", "face_512"]) == ["detect", "face_256",
                                                                  "face_512"]
    with pytest.raises(ValueError, match="unknown stage 'faces'"):
        bench.expand_stages(["faces"])


def test_restore_case_runs_the_pipeline_function_at_full_size(model_dir):
    result = bench.run_case(str(model_dir), "restore_scratch", 48, repeats=1, attention_chunk=7)
    assert result["output_shape"] == [1, 48, 48, 3]
    assert result["compile_s"] > 0 and result["run_s"] > 0
    assert result["peak_rss_mib"] >= result["rss0_mib"] > 0
    assert result["user_s"] >= 0 and result["sys_s"] >= 0 and result["minor_faults"] >= 0
    assert "official_s" not in result  # the official code was not measured at 48 px
    assert "xla_flags" in result
    assert result["gflop"] > 0 and result["gflop_per_s"] == pytest.approx(
        result["gflop"] / result["run_s"])
    assert "peak_fraction" not in result  # no peak is known for a CPU


def test_the_peak_share_is_of_the_known_device():
    assert bench.device_peak_tflops("NVIDIA H100 80GB HBM3") == 67.0
    assert bench.device_peak_tflops("NVIDIA H100 PCIe") == 51.0
    assert bench.device_peak_tflops("NVIDIA H200") == 67.0
    assert bench.device_peak_tflops("cpu") is None
    fields = bench.rate_fields(2e12, 0.5, 67.0)
    assert fields["gflop"] == 2000 and fields["gflop_per_s"] == 4000
    assert fields["peak_fraction"] == pytest.approx(4 / 67)
    assert "peak_fraction" not in bench.rate_fields(2e12, 0.5, None)
    assert bench.rate_fields(None, 0.5, 67.0) == {}
    row = bench.markdown_table([{"stage": "detect", "size": 256, "network_side": 256,
                                 **fields}]).splitlines()[2].split(" | ")
    assert row[bench.TABLE_HEADER.index("% of peak")] == "6.0"
    assert row[bench.TABLE_HEADER.index("GFLOP/s")] == "4,000"


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


def test_cpu_counters_are_per_run():
    class Usage:
        def __init__(self, user, system, faults):
            self.ru_utime, self.ru_stime, self.ru_minflt = user, system, faults

    runs = bench.per_run_usage(Usage(1.0, 0.5, 100), Usage(5.0, 1.5, 700), 2)
    assert runs == {"user_s": 2.0, "sys_s": 0.5, "minor_faults": 300.0}


def test_the_official_times_are_kept_with_their_provenance():
    assert set(bench.OFFICIAL) == {("detect", 256), ("restore_quality", 256),
                                   ("restore_quality", 512), ("restore_scratch", 512),
                                   ("restore_hr", 512), ("face_256", 256), ("face_512", 512)}
    assert all(stage in bench.STAGES for stage, _ in bench.OFFICIAL)
    assert "PyTorch 2.13" in bench.OFFICIAL_PROVENANCE and "issue 18" in bench.OFFICIAL_PROVENANCE
    case = {"stage": "restore_scratch", "size": 512, "network_side": 512, "run_s": 7.14,
            "peak_rss_mib": 2373.0}
    case.update(bench.official_comparison(case))
    assert case["official_s"] == 14.28 and case["official_peak_mib"] == 4746
    assert case["vs_official"] == pytest.approx(0.5) and case["peak_vs_official"] == (
        pytest.approx(0.5))
    assert bench.official_comparison({**case, "size": 1024}) == {}
    row = bench.markdown_table([case]).splitlines()[2].split(" | ")
    header = bench.TABLE_HEADER
    assert row[header.index("× official")] == "0.50"
    assert row[header.index("official peak MiB")] == "4,746"
    assert row[header.index("user s")] == "–"  # not measured in this made-up row


def test_the_official_times_of_the_machine_kind_are_chosen():
    assert bench.official_reference("AMD EPYC 7B13")[0] is bench.OFFICIAL_EPYC
    assert bench.official_reference("Intel(R) Xeon(R) Platinum 8481C")[0] is bench.OFFICIAL
    assert set(bench.OFFICIAL_EPYC) == set(bench.OFFICIAL)
    assert "AMD EPYC" in bench.OFFICIAL_EPYC_PROVENANCE
    case = {"stage": "detect", "size": 256, "run_s": 0.56, "peak_rss_mib": 307.0}
    assert bench.official_comparison(case, bench.OFFICIAL_EPYC)["vs_official"] == (
        pytest.approx(0.5))


def _exit_without_a_result(results, code):
    del results
    os._exit(code)  # as a worker killed by a fatal XLA error or the OOM killer


def test_a_worker_that_dies_without_a_result_is_reported_not_waited_for():
    result = bench.result_of_worker(_exit_without_a_result, (3,), timeout=120, poll_s=0.2)
    assert result == {"error": "worker died (exit code 3)"}
