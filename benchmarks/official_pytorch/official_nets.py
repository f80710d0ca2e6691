"""The OFFICIAL PyTorch networks of *Bringing Old Photos Back to Life*, built from an unmodified
checkout of github.com/microsoft/Bringing-Old-Photos-Back-to-Life at the release inference
configuration, and loaded with the parity fixtures' weights.

Runs with a separate virtual environment holding torch (README.md); never imported by the tests.

Where things are (every path configurable, nothing under /work hard-coded):

* the official checkout: ``--official_dir`` or ``$OFFICIAL_SRC`` (only the files of
  :data:`NEEDED_FILES` are read);
* the parity fixtures: ``--parity_dir`` or ``$OLDPHOTO_PARITY_DIR`` (the ``cases`` folder, as for
  the project's own parity tests; ``make_weights.py`` and ``keys/`` are in its parent), default
  ``../shared/parity/cases`` beside the repository;
* what the harness writes (weights cache, inputs, JSON): ``--work_dir``, default
  ``outputs/official_pytorch/`` in the repository (git-ignored).

The official sources are used as fetched. What they import but the inference networks never run
is replaced in ``sys.modules`` before they are imported (:func:`install_stand_ins`):
``sync_batchnorm`` (a separate download in the official set-up: vacancy/Synchronized-BatchNorm-
PyTorch), ``torchvision`` (VGG perceptual losses, training only) and, for the face networks,
``util.util`` (an option-parsing helper that needs dill and PIL).

The official Global/ and Face_Enhancement/ trees both have a top-level package named ``models``,
so one process can import only one of them: :func:`use_family` puts the right folder on
``sys.path`` (the official scripts run with that folder as their working directory). Every
caller here runs one network family per process.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import types
from types import SimpleNamespace

import numpy as np

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OFFICIAL_REPOSITORY = "https://github.com/microsoft/Bringing-Old-Photos-Back-to-Life"
DEFAULT_PARITY_DIR = os.path.join(os.path.dirname(REPO_ROOT), "shared", "parity", "cases")
DEFAULT_WORK_DIR = os.path.join(REPO_ROOT, "outputs", "official_pytorch")

FAMILY_FOLDERS = {"global": "Global", "face": "Face_Enhancement"}
# The official files the networks import, relative to the checkout.
NEEDED_FILES = (
    "Global/models/networks.py",
    "Global/models/mapping_model.py",
    "Global/models/NonLocal_feature_mapping_model.py",
    "Global/models/base_model.py",
    "Global/util/image_pool.py",
    "Global/detection_models/networks.py",
    "Global/detection_models/antialiasing.py",
    "Face_Enhancement/models/__init__.py",
    "Face_Enhancement/models/networks/__init__.py",
    "Face_Enhancement/models/networks/architecture.py",
    "Face_Enhancement/models/networks/base_network.py",
    "Face_Enhancement/models/networks/encoder.py",
    "Face_Enhancement/models/networks/generator.py",
    "Face_Enhancement/models/networks/normalization.py",
)

# network name -> its family
NETWORKS = {
    "scratch_unet": "global",
    "vae_a": "global",
    "vae_b_quality": "global",
    "vae_b_scratch": "global",
    "mapping_quality": "global",
    "mapping_scratch": "global",
    "mapping_patch_attention": "global",
    "face_spade_256": "face",
    "face_spade_512": "face",
}

# Weights used for timing: the parity fixtures' weights of a case that validate.py checks for
# each network: network name -> (parity case whose overrides apply, key listing, seed). Time and
# memory do not depend on the values; these are scaled like real weights (no inf/NaN).
TIMING_WEIGHTS = {
    "scratch_unet": ("pipeline_scratch", "scratch_unet", 31),
    "vae_a": ("vae_encoder", "vae_a", 11),
    "vae_b_quality": ("vae_decoder", "vae_b_quality", 12),
    "mapping_quality": ("mapping_quality", "mapping_quality", 13),
    "vae_b_scratch": ("pipeline_scratch", "vae_b_scratch", 33),
    "mapping_scratch": ("mapping_scratch", "mapping_scratch", 14),
    "mapping_patch_attention": ("mapping_hr", "mapping_patch_attention", 15),
    "face_spade_256": ("face_256", "face_spade_256", 17),
    "face_spade_512": ("face_512", "face_spade_512", 18),
}


# ------------------------------------------------------------------------------------------ paths
@dataclasses.dataclass(frozen=True)
class Paths:
    """The official checkout, the parity fixtures' cases folder and the work directory."""

    official: str
    parity_cases: str
    work: str

    @property
    def parity_root(self) -> str:
        """The fixture set's folder (``make_weights.py``, ``keys/``, ``cases/``)."""
        return os.path.dirname(self.parity_cases)

    @property
    def weights_dir(self) -> str:
        return os.path.join(self.work, "weights")

    @property
    def inputs_dir(self) -> str:
        return os.path.join(self.work, "inputs")

    def as_arguments(self) -> list[str]:
        """Command-line arguments that give a child process the same paths."""
        return ["--official_dir", self.official, "--parity_dir", self.parity_cases,
                "--work_dir", self.work]


def add_path_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds ``--official_dir``, ``--parity_dir`` and ``--work_dir`` (defaults from the
    environment, see the module docstring)."""
    parser.add_argument("--official_dir", default=os.environ.get("OFFICIAL_SRC"),
                        help="checkout of the official repository (default: $OFFICIAL_SRC)")
    parser.add_argument("--parity_dir",
                        default=os.environ.get("OLDPHOTO_PARITY_DIR", DEFAULT_PARITY_DIR),
                        help="parity fixtures' cases folder (default: $OLDPHOTO_PARITY_DIR or "
                             "../shared/parity/cases beside the repository)")
    parser.add_argument("--work_dir", default=DEFAULT_WORK_DIR,
                        help="weights cache, inputs and results (default: "
                             "outputs/official_pytorch/ in the repository)")


def missing_official_files(official_dir: str) -> list[str]:
    return [f for f in NEEDED_FILES if not os.path.isfile(os.path.join(official_dir, f))]


def resolve_paths(args: argparse.Namespace) -> Paths:
    """Checks the paths of ``args`` and returns them absolute; exits with a message that says
    what is missing and where to get it."""
    if not args.official_dir:
        raise SystemExit("no official checkout given: pass --official_dir or set OFFICIAL_SRC to "
                         f"a checkout of {OFFICIAL_REPOSITORY} (README.md: getting the sources)")
    official = os.path.abspath(args.official_dir)
    missing = missing_official_files(official)
    if missing:
        listing = "\n".join(f"  {'MISSING ' if f in missing else 'found   '}{f}"
                            for f in NEEDED_FILES)
        raise SystemExit(f"{official} lacks {len(missing)} of the files needed from "
                         f"{OFFICIAL_REPOSITORY} (README.md: getting the sources):\n{listing}")
    parity = os.path.abspath(args.parity_dir)
    for needed in (os.path.join(parity, "cases.json"),
                   os.path.join(os.path.dirname(parity), "make_weights.py")):
        if not os.path.isfile(needed):
            raise SystemExit(f"parity fixtures not found: no {needed} (pass --parity_dir or set "
                             "OLDPHOTO_PARITY_DIR to the fixture set's cases folder)")
    return Paths(official, parity, os.path.abspath(args.work_dir))


# ------------------------------------------------------------------------------ imports, stand-ins
def _module(name: str, **attributes) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attributes)
    return module


def _data_parallel_with_callback(module, *args, **kwargs):
    """Identity: the UNet only rebinds a local name with it (``self = DataParallel...(self)``)."""
    return module


def install_stand_ins(family: str) -> None:
    """Puts in ``sys.modules`` the modules that the official networks import but never use at
    inference, so that the official files need no edit and no extra package.

    ``SynchronizedBatchNorm2d`` is ``torch.nn.BatchNorm2d``: in eval mode the synchronised class
    falls back to ``F.batch_norm`` with the running statistics, as BatchNorm2d (same state-dict
    keys). ``torchvision`` and ``util.util`` are empty modules: only the VGG losses (training) and
    the option parser use them."""
    import torch

    sync_batchnorm = _module("sync_batchnorm", SynchronizedBatchNorm2d=torch.nn.BatchNorm2d,
                             DataParallelWithCallback=_data_parallel_with_callback)
    torchvision_models = _module("torchvision.models")
    stand_ins = {"torchvision": _module("torchvision", models=torchvision_models),
                 "torchvision.models": torchvision_models}
    if family == "global":
        stand_ins["detection_models.sync_batchnorm"] = sync_batchnorm
    else:
        util_util = _module("util.util")
        stand_ins.update({"models.networks.sync_batchnorm": sync_batchnorm,
                          "util": _module("util", util=util_util), "util.util": util_util})
    sys.modules.update(stand_ins)


_family = None


def use_family(family: str, official_dir: str) -> None:
    """Makes the official ``family`` tree ('global' or 'face') importable in this process."""
    global _family
    if _family is not None and _family != family:
        raise RuntimeError(f"this process already imported the {_family} tree")
    if _family is None:
        sys.dont_write_bytecode = True  # leave the official checkout as it is
        install_stand_ins(family)
        sys.path.insert(0, os.path.join(official_dir, FAMILY_FOLDERS[family]))
        _family = family


# ----------------------------------------------------------------------------------- the networks
def global_options(mode: str) -> SimpleNamespace:
    """Global/test.py's options of ``mode`` ('quality', 'scratch', 'scratch_hr'): TestOptions
    defaults + ``parameter_set(opt)``."""
    opt = SimpleNamespace(
        label_nc=0, input_nc=3, output_nc=3, ngf=64, n_downsample_global=3, mc=64, k_size=4,
        start_r=1, spatio_size=64, feat_dim=-1, use_segmentation_model=False, norm="instance",
        mapping_n_block=6, map_mc=512, mapping_net_dilation=1,
        # Scratch_and_Quality_restore
        NL_res=False, use_SN=False, correlation_renormalize=False, NL_use_mask=False,
        NL_fusion_method="add", non_local="", softmax_temperature=1.0, use_self=False,
        cosin_similarity=False,
        # --HR
        mapping_exp=0, inference_optimize=False, mask_dilation=0,
    )
    if mode in ("scratch", "scratch_hr"):
        opt.NL_res = True
        opt.use_SN = True
        opt.correlation_renormalize = True
        opt.NL_use_mask = True
        opt.NL_fusion_method = "combine"
        opt.non_local = "Setting_42"
    if mode == "scratch_hr":
        opt.mapping_exp = 1
        opt.inference_optimize = True
        opt.mask_dilation = 3
    return opt


def face_options(load_size: int) -> SimpleNamespace:
    """Face_Enhancement TestOptions with run.py's arguments (test_face.py)."""
    return SimpleNamespace(
        netG="spade", ngf=64, norm_G="spectralspadesyncbatch3x3", num_upsampling_layers="normal",
        use_vae=False, no_parsing_map=True, injection_layer="all", label_nc=18, no_instance=True,
        semantic_nc=18, contain_dontcare_label=False, aspect_ratio=1.0, load_size=load_size,
        crop_size=load_size, preprocess_mode="resize", z_dim=256, gpu_ids=[],
        init_type="xavier", init_variance=0.02,
    )


def _build_face(name: str, load_size: int | None):
    from models.networks.generator import SPADEGenerator

    return SPADEGenerator(face_options(load_size or int(name.rsplit("_", 1)[1])))


def _build_unet():
    from detection_models.networks import UNet

    # Global/detection.py
    return UNet(in_channels=1, out_channels=1, depth=4, conv_num=2, wf=6, padding=True,
                batch_norm=True, up_mode="upsample", with_tanh=False, sync_bn=True,
                antialiasing=True)


def _build_vae():
    from models import networks

    # Pix2PixHDModel_Mapping.initialize: netG_A / netG_B
    opt = global_options("quality")
    return networks.GlobalGenerator_DCDCv2(
        opt.input_nc, opt.output_nc, opt.ngf, opt.k_size, opt.n_downsample_global,
        networks.get_norm_layer(norm_type=opt.norm), opt=opt)


def _build_mapping(name: str):
    from models.mapping_model import (Mapping_Model, Mapping_Model_with_mask,
                                      Mapping_Model_with_mask_2)

    mode, cls = {"mapping_quality": ("quality", Mapping_Model),
                 "mapping_scratch": ("scratch", Mapping_Model_with_mask),
                 "mapping_patch_attention": ("scratch_hr", Mapping_Model_with_mask_2)}[name]
    opt = global_options(mode)
    channels = min(opt.ngf * 2 ** opt.n_downsample_global, opt.mc)
    return cls(channels, opt.map_mc, n_blocks=opt.mapping_n_block, opt=opt)


def build(name: str, official_dir: str, face_load_size: int | None = None):
    """The official module of ``name`` (see :data:`NETWORKS`), randomly initialised, in eval
    mode. ``face_load_size`` overrides the face generator's load size (same parameters; for dry
    runs at small sizes)."""
    use_family(NETWORKS[name], official_dir)
    if NETWORKS[name] == "face":
        module = _build_face(name, face_load_size)
    elif name == "scratch_unet":
        module = _build_unet()
    elif name.startswith("vae"):
        module = _build_vae()
    else:
        module = _build_mapping(name)
    return module.eval()


# ---------------------------------------------------------------------------------------- weights
def fixture_state_dict(paths: Paths, keys: str, seed: int, overrides: dict | None = None) -> dict:
    """{key: np.ndarray} from the fixture set's make_weights.py, with the ``override/<keys>/*``
    entries of a case's npz applied."""
    if paths.parity_root not in sys.path:
        sys.path.insert(0, paths.parity_root)
    from make_weights import make_state_dict

    state = make_state_dict(os.path.join(paths.parity_root, "keys", f"{keys}.txt"), seed)
    prefix = f"override/{keys}/"
    for key, value in (overrides or {}).items():
        if key.startswith(prefix):
            state[key[len(prefix):]] = np.asarray(value)
    return state


def case_overrides(npz) -> dict:
    """The ``override/...`` arrays of a parity case's npz."""
    return {k: npz[k] for k in npz.files if k.startswith("override/")}


def to_torch_state(state: dict) -> dict:
    import torch

    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()}


def weights_file(paths: Paths, name: str) -> str:
    return os.path.join(paths.weights_dir, f"{name}.pt")


def write_timing_weights(paths: Paths, names) -> list[str]:
    """Writes ``<work>/weights/<name>.pt`` (a torch state dict, as the official checkpoints are)
    for each of ``names`` that is not there yet, so that generating the arrays stays out of the
    timed processes. Returns the files written."""
    import torch

    os.makedirs(paths.weights_dir, exist_ok=True)
    written = []
    for name in names:
        path = weights_file(paths, name)
        if os.path.exists(path):
            continue
        case, keys, seed = TIMING_WEIGHTS[name]
        npz = np.load(os.path.join(paths.parity_cases, f"{case}.npz"))
        state = fixture_state_dict(paths, keys, seed, case_overrides(npz))
        torch.save(to_torch_state(state), path + ".tmp")
        os.replace(path + ".tmp", path)
        written.append(path)
    return written
