"""The colour-shift measure: Lab statistics of known colours, the kinds of photo, and the report
of a (random-weight) model over a folder."""
from __future__ import annotations

import json

import numpy as np
import pytest

from oldphoto_jax.evaluation import colour_shift


def flat(rgb, size=(16, 24)):
    return np.broadcast_to(np.asarray(rgb, np.uint8), size + (3,)).copy()


def test_grey_is_neutral_with_zero_chroma_and_no_shift():
    stats = colour_shift.colour_stats(flat((128, 128, 128)))
    assert abs(stats.a) < 0.01 and abs(stats.b) < 0.01 and stats.chroma < 0.01
    assert colour_shift.kind_of(stats) == "neutral"
    row = colour_shift.shift(flat((90, 90, 90)), flat((90, 90, 90)))
    assert row["dab"] == pytest.approx(0.0, abs=1e-9) and row["kind"] == "neutral"


def test_kinds_of_photo():
    assert colour_shift.kind_of(colour_shift.colour_stats(flat((160, 130, 95)))) == "toned"
    assert colour_shift.kind_of(colour_shift.colour_stats(flat((40, 90, 200)))) == "colour"
    assert colour_shift.kind_of(colour_shift.colour_stats(flat((230, 30, 40)))) == "colour"


def test_a_red_cast_is_a_positive_a_shift_and_a_blue_one_a_negative_b_shift():
    grey = flat((120, 120, 120))
    red = colour_shift.shift(grey, flat((140, 115, 115)))
    assert red["da"] > 5 and abs(red["db"]) < red["da"]
    blue = colour_shift.shift(grey, flat((110, 120, 145)))
    assert blue["db"] < -5
    assert blue["dab"] == pytest.approx(np.hypot(blue["da"], blue["db"]))


def test_an_output_of_another_size_is_compared_at_the_input_size():
    row = colour_shift.shift(flat((100, 100, 100), (16, 24)), flat((100, 100, 100), (32, 48)))
    assert row["dab"] == pytest.approx(0.0, abs=1e-6)


def test_report_of_a_model_over_a_folder(eval_inputs, smooth_photo, tmp_path):
    model_dir, folder = eval_inputs({"one.png": smooth_photo(64, 80, 0),
                                     "two.png": smooth_photo(72, 64, 1)})
    out = tmp_path / "report"
    report = colour_shift.measure(model_dir, [str(folder)], ["scratch"], out, log=lambda s: None)
    assert [r["photo"] for r in report["rows"]] == ["clean/one.png", "clean/two.png"]
    assert all(np.isfinite(r["dab"]) for r in report["rows"])
    assert json.loads((out / "colour_shift.json").read_text())["summary"] == report["summary"]
    assert "| clean/one.png |" in (out / "colour_shift.md").read_text()
    assert (out / "colour_shift.png").stat().st_size > 0
    with pytest.raises(SystemExit, match="cannot run the mode"):
        colour_shift.measure(model_dir, [str(folder)], ["quality"], out, log=lambda s: None)
