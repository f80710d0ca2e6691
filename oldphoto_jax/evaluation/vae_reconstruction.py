"""How well a model's VAEs reconstruct photos: the ceiling of its global restoration.

    .venv/bin/python -m oldphoto_jax.evaluation.vae_reconstruction --checkpoint_dir weights/default

The restored photo is VAE_B's decoding of a mapped latent, so VAE_B's own encode-then-decode of
the clean photos bounds what the pipeline can reach. On the evaluation set (the held-out clean
photos degraded as ``python -m oldphoto_jax.evaluate`` does) this prints the PSNR of VAE_B on the
clean photos and of VAE_A on the degraded ones, per photo and on average; and the same once each
reconstruction's mean colour offset (per channel) is removed, which separates global colour
casts from lost detail.
"""
from __future__ import annotations

import functools

import numpy as np
from absl import app, flags


@functools.lru_cache(maxsize=8)
def _jitted_round_trip(module):
    import jax

    def round_trip(variables, image):
        latent = module.apply(variables, image, method="encode")
        return module.apply(variables, latent, method="decode")
    return jax.jit(round_trip)


def reconstruct(vae, rgb: np.ndarray) -> np.ndarray:
    """``decode(encode(rgb))`` of a ``(module, variables)`` VAE pair, uint8 RGB in and out (sides
    multiples of 4): the pipeline's input normalisation, and its clamped PNG conversion (no
    min-max stretch, so the VAE's own colour is what is scored)."""
    from oldphoto_jax.pipeline import postprocess, preprocess

    module, variables = vae
    out = _jitted_round_trip(module)(variables, preprocess.to_network_input(rgb))
    return postprocess.clamped_png(np.asarray(out))[0]


OFFSET_REMOVED = ", global colour offset removed"


def reconstruction_psnr(model, cases) -> dict[str, list[float]]:
    """{"vae_b (clean)": [...], "vae_a (degraded)": [...]} PSNR per case, for the VAEs the model
    has (VAE_B under ``vae_b_quality`` or ``vae_b_scratch``), each followed by the same with the
    reconstruction's mean colour offset removed (``<name>, global colour offset removed``): the
    gap between the two is what global colour casts cost."""
    from oldphoto_jax.evaluation import image_scores

    results = {}
    vae_b_role = next((r for r in ("vae_b_quality", "vae_b_scratch") if r in model.roles), None)
    pairs = []
    if vae_b_role:
        pairs.append(("vae_b (clean)", model.network(vae_b_role), "clean"))
    if "vae_a" in model.roles:
        pairs.append(("vae_a (degraded)", model.network("vae_a"), "degraded"))
    for name, vae, field in pairs:
        inputs = [getattr(c, field) for c in cases]
        outputs = [reconstruct(vae, x) for x in inputs]
        results[name] = [image_scores.psnr(x, y) for x, y in zip(inputs, outputs)]
        results[name + OFFSET_REMOVED] = [image_scores.psnr_offset_removed(x, y)
                                          for x, y in zip(inputs, outputs)]
    return results


FLAGS = flags.FLAGS


def define_flags() -> None:
    """The command line's flags (defined only when run as a program, so the library functions
    import beside other absl programs)."""
    from oldphoto_jax.evaluation import degraded_set

    degraded_set.define_case_flags("Model directory holding vae_a and/or vae_b.")


def main(argv):
    del argv
    from oldphoto_jax.evaluation import degraded_set

    model, cases, _ = degraded_set.model_and_cases_from_flags()
    results = reconstruction_psnr(model, cases)
    if not results:
        raise app.UsageError(f"{FLAGS.checkpoint_dir} has no VAE")
    print("| VAE (input) | " + " | ".join(c.name for c in cases) + " | mean |")
    print("|---|" + "---:|" * (len(cases) + 1))
    for name, values in results.items():
        cells = " | ".join(f"{v:.2f}" for v in values)
        print(f"| {name} | {cells} | {np.mean(values):.2f} |")


if __name__ == "__main__":
    from oldphoto_jax import cpu_tuning

    cpu_tuning.apply()  # before the JAX backend starts
    define_flags()
    app.run(main)
