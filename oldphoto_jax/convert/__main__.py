"""Convert the official PyTorch checkpoints into an oldphoto-jax model directory.

    python -m oldphoto_jax.convert \
        --global_checkpoints global_checkpoints.zip \
        --face_checkpoints face_checkpoints.zip \
        --output models/official

Either archive may be the zip or a folder holding its unzipped files. No PyTorch is needed and no
pickled code is executed. Extra keys in a checkpoint are reported and ignored; a missing key or a
wrong shape is an error naming the file and the key, and then nothing is written.
"""
import sys

from absl import app, flags


_GLOBAL = flags.DEFINE_string(
    "global_checkpoints", None,
    "global_checkpoints.zip or a folder with its files (checkpoints/restoration/*, "
    "checkpoints/detection/FT_Epoch_latest.pt).")
_FACE = flags.DEFINE_string(
    "face_checkpoints", None,
    "face_checkpoints.zip or a folder with its files (checkpoints/Setting_9_epoch_100, "
    "checkpoints/FaceSR_512).")
_OUTPUT = flags.DEFINE_string("output", None, "Model directory to write.", required=True)
_SKIP_MISSING = flags.DEFINE_bool(
    "skip_missing", False, "Convert the files that exist instead of failing on a missing one.")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace an existing output directory.")


def main(argv):
    del argv
    from oldphoto_jax.convert.common import ConversionError
    from oldphoto_jax.model_files import CheckpointError
    from oldphoto_jax.convert.official import convert_official
    from oldphoto_jax.convert.torch_file import TorchFileError

    try:
        warnings = convert_official({"global": _GLOBAL.value, "face": _FACE.value}, _OUTPUT.value,
                                    skip_missing=_SKIP_MISSING.value, overwrite=_OVERWRITE.value)
    except (ConversionError, CheckpointError, TorchFileError) as e:
        print(f"error: {e}", file=sys.stderr)
        print("nothing was written", file=sys.stderr)
        return 1
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    print(f"wrote {_OUTPUT.value}")
    return 0


if __name__ == "__main__":
    app.run(main)
