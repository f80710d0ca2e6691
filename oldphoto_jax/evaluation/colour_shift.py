"""Does a model keep a photo's colours? The global colour shift between input and restoration.

    .venv/bin/python -m oldphoto_jax.evaluation.colour_shift --checkpoint_dir weights/default \\
        --folders samples/old samples/old_w_scratch ../shared/photos/old \\
        ../shared/photos/old_w_scratch --modes quality scratch --output_dir eval/colour

For each photo and restoration mode (faces off: the global restoration only) it compares the
photo as restoration starts from (``Result.origin``) with the restoration, in CIELAB (D65,
scikit-image): the shift of the mean a* (green-red) and b* (blue-yellow), its length
``|Δab|``, and the mean chroma before and after. A photo is called *neutral* when its mean
chroma is below :data:`NEUTRAL_CHROMA` (black-and-white, a grey cast at most), *toned* when its
colour is one warm hue (sepia, yellowing: mean hue within :data:`TONED_HUES` and chroma below
:data:`TONED_CHROMA`), else *colour*. A model that keeps colours moves neutral and colour photos
by little; moving a toned photo toward neutral is the fading correction the method may do.

Writes ``colour_shift.md`` (one row per photo and mode, and the mean |Δab| per kind),
``colour_shift.json`` and ``colour_shift.png`` (input | one column per mode) to
``--output_dir``, and prints the table.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import sys

import numpy as np
from PIL import Image
from skimage import color

from oldphoto_jax import roles

NEUTRAL_CHROMA = 4.0       # mean chroma C*ab below this: a neutral (black-and-white) photo
TONED_HUES = (20.0, 100.0)  # degrees of mean hue h_ab: orange to yellow (sepia, yellowing)
TONED_CHROMA = 30.0
MODES = roles.MODES  # quality, scratch, scratch_hr


@dataclasses.dataclass(frozen=True)
class ColourStats:
    """Mean L*, a*, b* and mean chroma C*ab (per pixel, then averaged) of a photo."""

    lightness: float
    a: float
    b: float
    chroma: float

    @property
    def hue(self) -> float:
        """Hue angle of the mean colour, degrees in [0, 360)."""
        return float(np.degrees(np.arctan2(self.b, self.a)) % 360.0)


def colour_stats(rgb: np.ndarray) -> ColourStats:
    """:class:`ColourStats` of a uint8 RGB image."""
    lab = color.rgb2lab(np.asarray(rgb, np.float64) / 255.0)
    chroma = np.hypot(lab[..., 1], lab[..., 2])
    return ColourStats(*(float(v) for v in (lab[..., 0].mean(), lab[..., 1].mean(),
                                            lab[..., 2].mean(), chroma.mean())))


def kind_of(stats: ColourStats) -> str:
    """``neutral``, ``toned`` or ``colour`` (module docstring)."""
    if stats.chroma < NEUTRAL_CHROMA:
        return "neutral"
    if TONED_HUES[0] <= stats.hue <= TONED_HUES[1] and stats.chroma < TONED_CHROMA:
        return "toned"
    return "colour"


def shift(before: np.ndarray, after: np.ndarray) -> dict:
    """The colour shift from ``before`` to ``after`` (uint8 RGB; ``after`` is resized to
    ``before``'s size if they differ)."""
    if after.shape[:2] != before.shape[:2]:
        after = np.asarray(Image.fromarray(after).resize(before.shape[1::-1], Image.BICUBIC))
    a, b = colour_stats(before), colour_stats(after)
    da, db = b.a - a.a, b.b - a.b
    return {"kind": kind_of(a), "da": da, "db": db, "dab": float(np.hypot(da, db)),
            "dL": b.lightness - a.lightness, "chroma_in": a.chroma, "chroma_out": b.chroma}


def summarise(rows: list[dict]) -> dict:
    """``{mode: {kind: {"photos", "mean_dab", "max_dab"}}}``."""
    out: dict = {}
    for row in rows:
        out.setdefault(row["mode"], {}).setdefault(row["kind"], []).append(row["dab"])
    return {mode: {kind: {"photos": len(v), "mean_dab": float(np.mean(v)),
                          "max_dab": float(np.max(v))} for kind, v in sorted(kinds.items())}
            for mode, kinds in out.items()}


def markdown(rows: list[dict], summary: dict) -> str:
    lines = ["| photo | kind | mode | Δa* | Δb* | \\|Δab\\| | ΔL* | chroma in | chroma out |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['photo']} | {r['kind']} | {r['mode']} | {r['da']:+.2f} | "
                     f"{r['db']:+.2f} | {r['dab']:.2f} | {r['dL']:+.2f} | {r['chroma_in']:.2f} | "
                     f"{r['chroma_out']:.2f} |")
    lines += ["", "| mode | kind | photos | mean \\|Δab\\| | max \\|Δab\\| |",
              "|---|---|---:|---:|---:|"]
    for mode, kinds in summary.items():
        for kind, s in kinds.items():
            lines.append(f"| {mode} | {kind} | {s['photos']} | {s['mean_dab']:.2f} | "
                         f"{s['max_dab']:.2f} |")
    return "\n".join(lines) + "\n"


def photo_paths(folders: list[str]) -> list[pathlib.Path]:
    from data_synth import imagefiles

    paths = []
    for folder in folders:
        if not pathlib.Path(folder).is_dir():
            raise SystemExit(f"colour_shift: {folder} is not a folder")
        paths += [pathlib.Path(p) for p in imagefiles.list_images(folder)]
    return paths


def measure(checkpoint_dir, folders: list[str], modes: list[str], output_dir, *,
            max_side: int = 0, sheet_height: int = 160, log=print) -> dict:
    """Restore every photo of ``folders`` in each mode, write the report, return it."""
    from oldphoto_jax import api
    from oldphoto_jax.evaluation.contact_sheet import sheet
    from oldphoto_jax.pipeline.stage_runner import mode_options

    restorer = api.Restorer(checkpoint_dir, faces=False)
    available = restorer.modes()
    missing = [m for m in modes if not available.get(m)]
    if missing:
        raise SystemExit(f"colour_shift: the model in {checkpoint_dir} cannot run the mode(s) "
                         f"{missing}; it runs {[m for m in MODES if available.get(m)]}")
    output = pathlib.Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    rows, sheet_rows = [], []
    for path in photo_paths(folders):
        label = f"{path.parent.name}/{path.name}"
        cells = []
        for mode in modes:
            options = dict(mode_options(mode), max_side=max_side or None)
            try:
                result = restorer.restore(str(path), **options)
            except api.RestorationError as error:
                log(f"skipped {label}: {error}")
                break
            if not cells:
                cells.append(result.origin)
            cells.append(result.restored)
            row = {"photo": label, "mode": mode, **shift(result.origin, result.restored)}
            rows.append(row)
            log(f"{label} [{mode}] {row['kind']}: Δa* {row['da']:+.2f} Δb* {row['db']:+.2f} "
                f"|Δab| {row['dab']:.2f}")
        else:
            sheet_rows.append(cells)
    summary = summarise(rows)
    report = {"checkpoint_dir": str(checkpoint_dir), "modes": modes, "rows": rows,
              "summary": summary}
    (output / "colour_shift.json").write_text(json.dumps(report, indent=1))
    text = markdown(rows, summary)
    (output / "colour_shift.md").write_text(text)
    if sheet_rows:
        Image.fromarray(sheet(sheet_rows, sheet_height)).save(output / "colour_shift.png")
    log(text)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint_dir", default=None,
                        help="model directory (default: the bundled model)")
    parser.add_argument("--folders", nargs="+", required=True, help="folders of photos")
    parser.add_argument("--modes", nargs="+", default=["scratch"], choices=MODES)
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--max_side", type=int, default=0,
                        help="downscale photos whose longer side exceeds this (0 = as they are)")
    parser.add_argument("--sheet_height", type=int, default=160)
    args = parser.parse_args(argv)
    measure(args.checkpoint_dir, args.folders, args.modes, args.output_dir,
            max_side=args.max_side, sheet_height=args.sheet_height)
    return 0


if __name__ == "__main__":
    from oldphoto_jax import cpu_tuning

    cpu_tuning.apply()  # before the JAX backend starts
    sys.exit(main())
