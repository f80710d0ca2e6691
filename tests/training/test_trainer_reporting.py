"""Metric buffering and the non-finite check, image grids, TensorBoard files, progress lines."""
from __future__ import annotations

import glob

import jax.numpy as jnp
import numpy as np
import pytest

from oldphoto_jax.training import reporting


def test_buffer_means_and_first_non_finite_step_and_metric():
    buffer = reporting.MetricBuffer()
    buffer.add(1, {"loss/a": jnp.float32(1.0), "loss/b": jnp.float32(4.0)})
    buffer.add(2, {"loss/a": jnp.float32(3.0), "loss/b": jnp.float32(6.0)})
    assert buffer.pop_means() == {"loss/a": 2.0, "loss/b": 5.0}
    assert len(buffer) == 0
    buffer.add(3, {"loss/a": jnp.float32(1.0), "loss/b": jnp.float32(1.0)})
    buffer.add(4, {"loss/a": jnp.float32(1.0), "loss/b": jnp.float32(np.inf)})
    buffer.add(5, {"loss/a": jnp.float32(np.nan), "loss/b": jnp.float32(np.nan)})
    with pytest.raises(reporting.NonFiniteError) as caught:
        buffer.check()
    assert (caught.value.step, caught.value.values) == (4, {"loss/b": np.inf})
    assert "loss/b" in str(caught.value) and "step 4" in str(caught.value)


def test_first_non_finite_leaf_names_the_path():
    tree = {"params": {"conv": jnp.ones((2, 2)), "bias": jnp.zeros(3)}, "step": jnp.int32(3)}
    assert reporting.first_non_finite_leaf(tree) is None
    tree["params"]["bias"] = jnp.array([0.0, jnp.nan, 1.0])
    assert reporting.first_non_finite_leaf(tree) == "['params']['bias']"


def test_image_grid_layout_and_values():
    a = np.full((3, 4, 5, 3), -1.0, np.float32)       # black
    b = np.full((3, 4, 5, 1), 1.0, np.float32)        # white, grey channel
    b[1] = 0.0                                        # mid grey for example 1
    grid = reporting.image_grid({"a": a, "b": b}, max_rows=2, gap=1)
    assert grid.dtype == np.uint8
    assert grid.shape == (2 * 4 + 3, 2 * 5 + 3, 3)
    np.testing.assert_array_equal(grid[1:5, 1:6], 0)             # row 0, column a
    np.testing.assert_array_equal(grid[6:10, 7:12], 128)         # row 1, column b
    np.testing.assert_array_equal(grid[0], 255)                  # gaps are white


def test_progress_line_rates_and_eta():
    now = [0.0]
    progress = reporting.Progress(total_steps=100, global_batch=4, clock=lambda: now[0])
    progress.start(10)
    now[0] = 5.0
    line = progress.line(20, {"loss/l1": 0.5})
    assert "step 20/100" in line and "2.00 steps/s" in line and "8.0 img/s" in line
    assert "ETA 0:00:40" in line and "loss/l1 0.5" in line


def test_progress_line_says_where_the_loop_time_went():
    now = [0.0]
    progress = reporting.Progress(total_steps=100, global_batch=4, clock=lambda: now[0])
    times = reporting.LoopTimes()
    progress.start(10)
    times.add("input", 1.0)
    times.add("dispatch", 0.5)
    times.add("device", 3.0)
    times.add("device", 0.25)
    now[0] = 5.0
    line = progress.line(20, {"loss/l1": 0.5}, times.pop())
    assert "input 20% dispatch 10% device 65%" in line
    assert progress.fractions == {"input": 0.2, "dispatch": 0.1, "device": 0.65}
    assert times.pop() == {"input": 0.0, "dispatch": 0.0, "device": 0.0}   # popped: anew
    now[0] = 6.0
    assert "%" not in progress.line(30, {}) and progress.fractions == {}


def test_writer_makes_event_files(tmp_path, read_event_tags):
    writer = reporting.MetricWriter(str(tmp_path))
    writer.scalars(3, {"loss/l1": 0.25})
    writer.image(3, "samples", np.zeros((8, 8, 3), np.uint8))
    writer.close()
    assert len(glob.glob(str(tmp_path / "events.out.tfevents.*"))) == 1
    tags = read_event_tags(tmp_path)
    assert tags["loss/l1"] == [3] and tags["samples"] == [3]


def test_progress_line_shows_objectives_and_the_reconstruction_metric():
    means = {"gan/g": 1.0, "loss/vae": 2.0, "metric/l1": 0.5, "lr/vae": 2e-4, "loss/D": 0.3}
    assert reporting.shown_metrics(means, "metric/l1") == {
        "loss/vae": 2.0, "metric/l1": 0.5, "loss/D": 0.3}
