"""The one table of network roles: what each network of a model is for.

A model directory holds networks by *role* (``vae_a``, ``mapping_scratch``, ``face_512``, ...).
Everything that names roles takes them from :data:`ROLES`: the model-directory format
(:mod:`oldphoto_jax.model_files`: known roles, descriptions), the restoration modes of the
pipeline (:data:`MODE_ROLES`), the training exports (:data:`VAE_B_ROLES`, :data:`MAPPING_ROLES`),
the converter of the official checkpoints (``official_*`` fields) and the random test models.
This module imports nothing of the project, so every layer may use it.
"""
from __future__ import annotations

import dataclasses
from types import MappingProxyType


@dataclasses.dataclass(frozen=True)
class Role:
    name: str
    description: str        # for manifests and error messages
    kind: str               # "vae_a" | "vae_b" | "mapping" | "scratch_detector" | "face"
    network: str            # class name of the network (oldphoto_jax.models.registry)
    modes: tuple[str, ...]  # restoration modes (MODES) whose global restoration needs it
    official_archive: str   # the official release's archive holding it: "global" or "face"
    official_path: str      # path inside that archive, as the official code opens it
    official_args: dict = dataclasses.field(default_factory=dict)  # constructor arguments
    official_entry: str | None = None  # the state dict is obj[entry] (detection checkpoint)


_RESTORATION = "checkpoints/restoration"
_ROLES = (
    Role("vae_a", "VAE_A: its encoder maps old photos into the shared latent space",
         "vae_a", "VAE", ("quality", "scratch", "scratch_hr"),
         "global", f"{_RESTORATION}/VAE_A_quality/latest_net_G.pth", {"required": "encoder"}),
    Role("vae_b_quality", "VAE_B for quality restoration: its decoder renders clean photos",
         "vae_b", "VAE", ("quality",),
         "global", f"{_RESTORATION}/VAE_B_quality/latest_net_G.pth", {"required": "decoder"}),
    Role("vae_b_scratch",
         "VAE_B for scratch restoration (also HR): its decoder renders clean photos",
         "vae_b", "VAE", ("scratch", "scratch_hr"),
         "global", f"{_RESTORATION}/VAE_B_scratch/latest_net_G.pth", {"required": "decoder"}),
    Role("mapping_quality", "Mapping_Model: latent translation without scratch handling",
         "mapping", "MappingModel", ("quality",),
         "global", f"{_RESTORATION}/mapping_quality/latest_net_mapping_net.pth"),
    Role("mapping_scratch",
         "Mapping_Model_with_mask: partial non-local block guided by the scratch mask",
         "mapping", "MappingModelWithMask", ("scratch",),
         "global", f"{_RESTORATION}/mapping_scratch/latest_net_mapping_net.pth"),
    Role("mapping_hr",
         "Mapping_Model_with_mask_2: multi-scale patch attention for high resolution",
         "mapping", "MappingModelWithMask2", ("scratch_hr",),
         "global", f"{_RESTORATION}/mapping_Patch_Attention/latest_net_mapping_net.pth"),
    Role("scratch_detector", "UNet that predicts the scratch mask",
         "scratch_detector", "ScratchUNet", (),
         "global", "checkpoints/detection/FT_Epoch_latest.pt", official_entry="model_state"),
    Role("face_256", "SPADE face generator, 256x256 faces",
         "face", "SPADEGenerator", (),
         "face", "checkpoints/Setting_9_epoch_100/latest_net_G.pth", {"load_size": 256}),
    Role("face_512", "SPADE face generator, 512x512 faces (--HR)",
         "face", "SPADEGenerator", (),
         "face", "checkpoints/FaceSR_512/latest_net_G.pth", {"load_size": 512}),
)

ROLES: MappingProxyType[str, Role] = MappingProxyType({role.name: role for role in _ROLES})


def roles_of_kind(kind: str) -> tuple[str, ...]:
    """The role names of one ``kind``, in table order."""
    return tuple(name for name, role in ROLES.items() if role.kind == kind)


# The restoration modes (the official test.py's parameter sets) and their global-restoration
# networks, in the order they run: (VAE_A, mapping, VAE_B).
MODES = ("quality", "scratch", "scratch_hr")


def _mode_roles(mode: str) -> tuple[str, str, str]:
    def one(kind: str) -> str:
        (name,) = (n for n in roles_of_kind(kind) if mode in ROLES[n].modes)
        return name

    return one("vae_a"), one("mapping"), one("vae_b")


MODE_ROLES = MappingProxyType({mode: _mode_roles(mode) for mode in MODES})
# The roles a VAE_B training run can export.
VAE_B_ROLES = roles_of_kind("vae_b")
# Mapping training variant ("quality", "scratch", "hr") -> the role it exports.
MAPPING_ROLES = MappingProxyType(
    {name.removeprefix("mapping_"): name for name in roles_of_kind("mapping")})
# Mapping training variant -> the VAE_B role it is trained against (that of its mode).
MAPPING_VAE_B = MappingProxyType(
    {variant: MODE_ROLES[ROLES[name].modes[0]][2] for variant, name in MAPPING_ROLES.items()})
