"""Face enhancement: the SPADE generator restoring aligned faces (reference 10.6).

    .venv/bin/python train.py --config configs/face.py --workdir runs/face \\
        --config.data.faces=/data/ffhq_aligned_256
    .venv/bin/python train.py --config configs/face.py:512 --workdir runs/face_512 \\
        --config.data.faces=/data/ffhq_aligned_512
    .venv/bin/python train.py --config configs/face.py:tiny --workdir runs/face_tiny

Argument: ``256`` (default: the official generator, ngf 64, 256 px faces, batch 16, hinge GAN
with spectral-norm D, TTUR), ``512`` (512 px faces, export role ``face_512``) or ``tiny``
(ngf 2, 32 px, batch 2, 300 steps; reconstruction metric ``metric/l1``).

Faces: ``--config.data.faces`` must name a folder of aligned face crops (resized to the crop
size), or of portraits with ``--config.data.align_faces=True`` (dlib aligner, faces kept in
memory: for a few hundred photos). No face set ships with the project, so the default is empty,
except for ``tiny``, which uses ``../shared/photos/clean`` (relative to the repository) as a
stand-in to exercise the code. The export holds ``face_256`` or ``face_512``.
"""
import pathlib

from oldphoto_jax.training import loop, stages

PHOTOS = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "photos"


def get_config(arg: str | None = None):
    arg = arg or "256"
    if arg not in ("256", "512", "tiny"):
        raise ValueError(f"configs/face.py takes '256', '512' or 'tiny', got {arg!r}")
    tiny = arg == "tiny"
    config = stages.default_config("face", tiny=tiny)
    if arg == "512":
        config.model.load_size = 512
        config.input.crop_size = 512
    config = loop.add_trainer_fields(config, photos_root=PHOTOS, tiny=tiny)
    if tiny:
        config.data.faces = str(PHOTOS / "clean")
    return config
