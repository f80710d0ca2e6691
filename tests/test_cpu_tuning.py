"""The fast XLA:CPU configuration: how the flags are merged, that the entry points apply it, and
that the pinned jaxlib still honours the experimental flag (a convolution on a reflection-padded
input leaves YNNPACK)."""
from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys

import pytest

from oldphoto_jax import cpu_tuning

ROOT = pathlib.Path(__file__).resolve().parents[1]
FLAG = "--xla_cpu_experimental_ynn_fusion_type"
SCHEDULER = "--xla_cpu_enable_concurrency_optimized_scheduler=false"


def test_flags_are_appended_to_the_users():
    flags = cpu_tuning.tuned_xla_flags("--xla_force_host_platform_device_count=4")
    assert flags == ("--xla_force_host_platform_device_count=4 "
                     f"{FLAG}=-individual_convolution {SCHEDULER}")
    assert cpu_tuning.tuned_xla_flags("") == f"{FLAG}=-individual_convolution {SCHEDULER}"


def test_a_flag_the_user_set_wins():
    mine = f"  {FLAG}=individual_convolution --xla_dump_to=/tmp/x "
    assert cpu_tuning.tuned_xla_flags(mine) == f"{mine.strip()} {SCHEDULER}"
    mine = "--xla_cpu_enable_concurrency_optimized_scheduler=true"
    assert cpu_tuning.tuned_xla_flags(mine) == f"{mine} {FLAG}=-individual_convolution"


def test_apply_is_idempotent_and_can_be_switched_off():
    environ = {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    once = cpu_tuning.apply(environ)
    assert cpu_tuning.apply(environ) == once == environ["XLA_FLAGS"]
    assert once.startswith("--xla_force_host_platform_device_count=2 ")
    for off in ("0", "false", "OFF"):
        environ = {cpu_tuning.SWITCH: off, "XLA_FLAGS": "--a=1"}
        assert cpu_tuning.apply(environ) is None and environ["XLA_FLAGS"] == "--a=1"
        assert "off" in cpu_tuning.describe(environ)
    environ = {}
    cpu_tuning.apply(environ)
    assert FLAG in environ["XLA_FLAGS"] and "on" in cpu_tuning.describe(environ)


def test_allocator_tunables_are_opt_in_for_child_processes_and_the_users_win():
    environ = {"GLIBC_TUNABLES": "glibc.malloc.tcache_count=0"}
    cpu_tuning.apply(environ)
    # by default only the arena limit
    assert environ["GLIBC_TUNABLES"] == "glibc.malloc.tcache_count=0:glibc.malloc.arena_max=2"
    environ = {"GLIBC_TUNABLES": "glibc.malloc.arena_max=8"}
    cpu_tuning.apply(environ)
    assert environ["GLIBC_TUNABLES"] == "glibc.malloc.arena_max=8"  # the user's wins
    environ = {"GLIBC_TUNABLES": "glibc.malloc.arena_max=4:glibc.malloc.tcache_count=0",
               cpu_tuning.MALLOC_SWITCH: "1"}
    cpu_tuning.apply(environ)
    assert environ["GLIBC_TUNABLES"] == ("glibc.malloc.arena_max=4:glibc.malloc.tcache_count=0:"
                                         "glibc.malloc.mmap_max=0:"
                                         f"glibc.malloc.trim_threshold={512 << 20}")
    environ = {cpu_tuning.SWITCH: "0", cpu_tuning.MALLOC_SWITCH: "1"}
    cpu_tuning.apply(environ)
    assert "GLIBC_TUNABLES" not in environ


@pytest.mark.skipif(cpu_tuning._mallopt() is None, reason="not glibc")
def test_mallopt_accepts_the_allocator_settings():
    # mallopt in a child process (it would change this one's allocator for the other tests)
    done = subprocess.run(
        [sys.executable, "-c", "import os; from oldphoto_jax import cpu_tuning; "
         "print(cpu_tuning.tune_allocator(os.environ), os.environ['GLIBC_TUNABLES'])"],
        env={k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"},
        capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["True", cpu_tuning.tuned_glibc_tunables("")]


@pytest.mark.skipif(cpu_tuning._mallopt() is None, reason="not glibc")
def test_release_free_memory_gives_freed_heap_memory_back():
    # In a child process: 250 MiB in blocks below malloc's mmap threshold, all freed but the
    # last (which keeps the heap's top in place, so glibc trims nothing by itself).
    code = """if True:
        from oldphoto_jax import cpu_tuning
        def rss():
            for line in open('/proc/self/status'):
                if line.startswith('VmRSS'):
                    return int(line.split()[1]) // 1024
        blocks = [bytearray(64 << 10) for _ in range(4000)]
        last = blocks[-1]
        del blocks
        before = rss()
        print(cpu_tuning.release_free_memory(), before - rss())
    """
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    released, mib = done.stdout.split()
    assert released == "True" and int(mib) > 150, done.stdout


def test_the_pipeline_imports_neither_opencv_nor_scikit_image():
    # They cost ~40 MiB resident (issue 18): only face alignment and pasting and --HR's mask
    # dilation load them, when they run.
    code = ("import sys; import oldphoto_jax.api, oldphoto_jax.bench, oldphoto_jax.cli.restore, "
            "oldphoto_jax.serve; print(sorted({'cv2', 'skimage', 'scipy'} & set(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"


# infer.py and train.py run oldphoto_jax.cli's run(), which the console scripts call too.
@pytest.mark.parametrize("script", ["oldphoto_jax/cli/restore.py", "oldphoto_jax/cli/train.py",
                                    "oldphoto_jax/bench.py",
                                    "oldphoto_jax/evaluate.py", "oldphoto_jax/parity/__main__.py",
                                    "benchmarks/bench_training.py",
                                    "benchmarks/bench_conv_transpose.py",
                                    "benchmarks/bench_nonlocal_memory.py"])
def test_entry_points_apply_it_first_thing(script):
    source = (ROOT / script).read_text()
    marker = "def run() -> None:" if "def run() -> None:" in source else \
        'if __name__ == "__main__":'
    main_block = re.sub(r'^\s*""".*?"""', "", source.split(marker, 1)[1], flags=re.S)
    first_call = next(line.strip() for line in main_block.splitlines()
                      if line.strip() and not line.strip().startswith(("from ", "import ", "#")))
    assert first_call.startswith("cpu_tuning.apply()"), (script, first_call)


@pytest.mark.parametrize("script, module", [("infer.py", "restore"), ("train.py", "train")])
def test_top_level_scripts_run_the_cli_entry_points(script, module):
    source = (ROOT / script).read_text()
    assert f"from oldphoto_jax.cli.{module} import" in source
    assert source.split('if __name__ == "__main__":', 1)[1].strip() == "run()"


# Compiles a 3x3 VALID convolution on a reflection-padded 64-channel input (a ResnetBlock's) and
# reports whether a YNNPACK fusion still wraps a convolution, and the device count.
_PROBE = """
import json, re, sys
from oldphoto_jax import cpu_tuning
cpu_tuning.apply()
import jax, jax.numpy as jnp
def f(x, k):
    x = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
    return jax.lax.conv_general_dilated(x, k, (1, 1), "VALID",
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))
hlo = jax.jit(f).lower(jnp.ones((1, 32, 32, 64)), jnp.ones((3, 3, 64, 64))).compile().as_text()
bodies = {}
for block in re.split(r"\\n(?=%|ENTRY)", hlo):
    bodies[block.split(" ", 1)[0].lstrip("%")] = block
called = [re.search(r"calls=%([\\w.-]+)", line).group(1) for line in hlo.splitlines()
          if "ynn" in line.lower() and "calls=%" in line]
print(json.dumps({"conv_in_ynn": any("convolution(" in bodies.get(c, "") for c in called),
                  "devices": jax.device_count()}))
"""


def _probe(**env) -> dict:
    environ = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", cpu_tuning.SWITCH)}
    environ.update(JAX_PLATFORMS="cpu", **env)
    done = subprocess.run([sys.executable, "-c", _PROBE], env=environ, capture_output=True,
                          text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_pinned_jaxlib_takes_convolutions_out_of_ynnpack_with_the_flag():
    """If this fails after a jaxlib upgrade, the experimental flag no longer does what
    cpu_tuning relies on: re-measure with ``python -m oldphoto_jax.bench``."""
    tuned = _probe(XLA_FLAGS="--xla_force_host_platform_device_count=2")
    assert tuned == {"conv_in_ynn": False, "devices": 2}  # the user's flag is kept
    untuned = _probe(**{cpu_tuning.SWITCH: "0"})
    # Without the flag jaxlib 0.10.2 compiles it into a YNNPACK fusion (the slow path of issue
    # 18). Once this no longer holds, the flag may have become unnecessary.
    assert untuned == {"conv_in_ynn": True, "devices": 1}
