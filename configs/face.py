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
import ml_collections

from configs import common

ARGS = ("256", "512", "tiny")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    arg = arg or "256"
    if arg not in ARGS:
        raise ValueError(f"configs/face.py takes '256', '512' or 'tiny', got {arg!r}")
    size = "tiny" if arg == "tiny" else ""
    load_size = {"256": 256, "512": 512, "tiny": 32}[arg]
    config = ml_collections.ConfigDict(common.trainer(size))
    config.task = "face"
    tiny = size == "tiny"
    config.model = dict(name="spade", ngf=2 if tiny else 64, load_size=load_size,
                        num_up_blocks=4, nhidden=4 if tiny else 128)
    config.disc = dict(num_D=2, n_layers=3, ndf=8 if tiny else 64, spectral_norm=True)
    config.loss = dict(lambda_feat=10.0, lambda_vgg=10.0,
                       vgg_weights="")  # a torchvision VGG19 .npz; empty = no VGG term
    # TTUR: generator lr/2, discriminator 2 lr, betas (0, 0.9); 50 epochs without decay.
    config.optim = dict(lr=2e-4, ttur=True, b1=0.0, b2=0.9, eps=1e-8, niter=50, niter_decay=0,
                        steps_per_epoch=0,  # 0 = floor(N / batch_size) of the faces
                        # held fixed: NETWORK/PATH prefixes (training/optim.py)
                        frozen="")
    config.input = common.input_pipeline("faces", 2 if tiny else 16, load_size, size)
    config.data = dict(faces=str(common.PHOTOS / "clean") if tiny else "",
                       align_faces=False, face_bank_size=256)
    config.export_role = "face_512" if load_size == 512 else "face_256"
    return config
