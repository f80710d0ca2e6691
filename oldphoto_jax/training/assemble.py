"""Combine the exports of several training tasks into one model directory for ``infer.py``.

Each ``train.py`` run exports the networks of its task to ``<workdir>/export`` (a model
directory holding only those roles, e.g. ``vae_a``, or ``mapping_scratch``). A complete restoration
model needs VAE_A, a VAE_B, a mapping (and, for the other modes, the scratch detector and a face
generator)::

    .venv/bin/python -m oldphoto_jax.training.assemble --output models/mine \\
        runs/vae_a/export runs/vae_b/export runs/mapping_quality/export \\
        runs/scratch/export runs/face/export \\
        --network vae_b_scratch=runs/vae_b/export:vae_b_quality

Positional arguments are model directories whose networks are all taken; a later directory
replaces the roles an earlier one had (so ``models/official runs/mapping_quality/export`` swaps
one network of the converted official model). ``--network ROLE=DIR[:SOURCE_ROLE]`` adds one
network under ``ROLE`` (for instance the same VAE_B for quality and scratch restoration).
Networks are loaded (so checked against their checksums) and written through
``oldphoto_jax.model_files``, atomically; each network's parameter files are copied as they are,
so assembling again from the same networks gives the same bytes. ``--set ROLE.FIELD=VALUE`` changes a field that holds no
parameters (``vae_colour``'s ``restandardise``). ``--restored_range`` (default ``auto``:
``clamp`` when the VAE_Bs are ``vae_colour``, else the official ``minmax``) is recorded in the
manifest. Which roles each ``infer.py`` mode needs:

* default: ``vae_a``, ``vae_b_quality``, ``mapping_quality`` (+ ``face_256`` unless --no_faces);
* ``--with_scratch``: ``vae_a``, ``vae_b_scratch``, ``mapping_scratch``, ``scratch_detector``;
* ``--with_scratch --HR``: ``mapping_hr`` instead of ``mapping_scratch``; ``face_512`` for faces.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys
from typing import Iterable, Sequence

from oldphoto_jax import model_files
from oldphoto_jax.models.vae_colour import VAEColour
from oldphoto_jax.roles import ROLES


def parse_network(spec: str) -> tuple[str, str, str | None]:
    """``ROLE=DIR[:SOURCE_ROLE]`` -> (role, directory, source role or None)."""
    role, sep, rest = spec.partition("=")
    if not sep or not role or not rest:
        raise ValueError(f"--network expects ROLE=DIR[:SOURCE_ROLE], got {spec!r}")
    head, _, tail = rest.rpartition(":")
    if head and tail in ROLES:
        return role, head, tail
    return role, rest, None


def gather(models: Iterable[str], networks: Iterable[tuple[str, str, str | None]],
           log=print) -> tuple[dict[str, tuple], dict[str, pathlib.Path]]:
    """``{role: (module, variables)}`` from whole model directories, then single networks, and
    ``{role: the params folder its variables were read from}``."""
    chosen: dict[str, tuple] = {}
    params_from: dict[str, pathlib.Path] = {}
    origin: dict[str, str] = {}
    for directory in models:
        model = model_files.load_model(directory)
        if not model.roles:
            raise model_files.CheckpointError(f"model {directory} has no networks")
        for role in model.roles:
            if role in chosen:
                log(f"{role}: {directory} replaces {origin[role]}")
            chosen[role], origin[role] = model.network(role), directory
            params_from[role] = model.params_directory(role)
    for role, directory, source in networks:
        model = model_files.load_model(directory)
        source = source or role
        if role in chosen:
            log(f"{role}: {directory}:{source} replaces {origin[role]}")
        chosen[role], origin[role] = model.network(source), f"{directory}:{source}"
        params_from[role] = model.params_directory(source)
    for role in sorted(chosen):
        log(f"{role:18s} <- {origin[role]}")
    return chosen, params_from


def parse_setting(spec: str) -> tuple[str, str, object]:
    """``ROLE.FIELD=VALUE`` -> (role, field, value); VALUE is JSON (true, 2, "x") or a string."""
    target, sep, text = spec.partition("=")
    role, dot, field = target.partition(".")
    if not sep or not dot or not role or not field:
        raise ValueError(f"--set expects ROLE.FIELD=VALUE, got {spec!r}")
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = text
    return role, field, value


def apply_settings(networks: dict[str, tuple], settings: Iterable[tuple[str, str, object]],
                   log=print) -> dict[str, tuple]:
    """Change parameter-free fields of chosen networks (a class's ``PARAMETER_FREE_FIELDS``,
    e.g. ``vae_colour``'s ``restandardise``): the arrays stay valid by construction."""
    networks = dict(networks)
    for role, field, value in settings:
        if role not in networks:
            raise ValueError(f"--set {role}.{field}: the model has no {role} "
                             f"(it has {', '.join(sorted(networks))})")
        module, variables = networks[role]
        allowed = getattr(type(module), "PARAMETER_FREE_FIELDS", ())
        if field not in allowed:
            raise ValueError(f"--set {role}.{field}: {type(module).__name__} has no "
                             f"parameter-free field {field!r} (settable: "
                             f"{', '.join(allowed) or 'none'})")
        networks[role] = (module.clone(**{field: value}), variables)
        log(f"{role}: {field} = {value!r}")
    return networks


def auto_restored_range(networks: dict[str, tuple]) -> str:
    """``clamp`` when every VAE_B renders the photo's own colour statistics (``vae_colour``):
    the official min-max stretch would re-tone them; else the official ``minmax``."""
    decoders = [module for role, (module, _) in networks.items() if role.startswith("vae_b")]
    if decoders and all(isinstance(m, VAEColour) for m in decoders):
        return "clamp"
    return "minmax"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m oldphoto_jax.training.assemble",
        description="Combine train.py exports into one infer.py model directory.")
    parser.add_argument("models", nargs="*", help="model directories (train.py exports)")
    parser.add_argument("--network", action="append", default=[], metavar="ROLE=DIR[:SOURCE]",
                        help="one network of DIR (role SOURCE, default ROLE) under ROLE")
    parser.add_argument("--output", required=True, help="the model directory to write")
    parser.add_argument("--overwrite", action="store_true", help="replace --output if it exists")
    parser.add_argument("--description", default="",
                        help="how the networks were made, recorded in the manifest's source "
                             "(infer.py prints it) before the list of inputs")
    parser.add_argument("--set", action="append", default=[], metavar="ROLE.FIELD=VALUE",
                        help="change a parameter-free field of one network, e.g. "
                             "vae_b_scratch.restandardise=true (vae_colour)")
    parser.add_argument("--restored_range", choices=("auto",) + model_files.RESTORED_RANGES,
                        default="auto",
                        help="how global restoration's output is written: min-max stretched as "
                             "the official test.py, or clamped as rendered; auto (default): "
                             "clamp when the VAE_Bs carry colour statistics (vae_colour), else "
                             "minmax (oldphoto_jax.model_files)")
    args = parser.parse_args(argv)
    if not args.models and not args.network:
        parser.error("give at least one model directory or --network")
    try:
        networks, params_from = gather(args.models,
                                       [parse_network(spec) for spec in args.network])
        networks = apply_settings(networks, [parse_setting(spec) for spec in args.set])
        unknown = sorted(set(networks) - set(ROLES))
        if unknown:
            raise ValueError(f"unknown roles {unknown}; known: {sorted(ROLES)}")
        source = f"assembled from {', '.join(args.models + args.network)}"
        if args.description:
            source = f"{args.description}; {source}"
        restored_range = args.restored_range
        if restored_range == "auto":
            restored_range = auto_restored_range(networks)
            print(f"restored_range: {restored_range}")
        # The variables are as read (--set changes only parameter-free fields), so each
        # network's files are copied byte for byte: re-assembling a model adds to a git
        # history only the networks that changed.
        model_files.save_model(args.output, networks, overwrite=args.overwrite, source=source,
                               restored_range=restored_range, params_from=params_from)
    except (model_files.CheckpointError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {args.output} ({', '.join(sorted(networks))})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
