"""The preview tool writes clean/degraded/mask PNGs and a contact sheet, skipping bad files."""
from __future__ import annotations

import numpy as np
from PIL import Image

from data_synth import preview


def run_preview(photo_folder, out_dir, *extra):
    return preview.main(["--input", str(photo_folder), "--output", str(out_dir), "--n", "3",
                         "--seed", "5", "--size", "64", *extra])


def test_preview_writes_samples_and_contact_sheet(photo_folder, tmp_path, capsys):
    out_dir = tmp_path / "out"
    assert run_preview(photo_folder, out_dir) == 0
    captured = capsys.readouterr()
    assert [line for line in captured.err.splitlines() if "broken.jpg" in line] == [
        "skipping unreadable image broken.jpg (UnidentifiedImageError)"
    ]
    assert "readme" not in captured.err
    names = sorted(p.name for p in out_dir.iterdir())
    assert "contact_sheet.png" in names
    stems = sorted({n.rsplit("_", 1)[0] for n in names if n != "contact_sheet.png"})
    assert len(stems) == 3
    for stem in stems:
        clean = np.asarray(Image.open(out_dir / f"{stem}_clean.png"))
        degraded = np.asarray(Image.open(out_dir / f"{stem}_degraded.png"))
        mask = np.asarray(Image.open(out_dir / f"{stem}_mask.png"))
        assert clean.shape == degraded.shape == (64, 64, 3)
        assert mask.shape == (64, 64) and mask.dtype == np.uint8
    sheet = np.asarray(Image.open(out_dir / "contact_sheet.png"))
    assert sheet.shape[0] == 3 * (64 + preview._LABEL_HEIGHT)
    assert sheet.shape[1] == 3 * 64 + 2 * preview._GAP


def test_preview_is_reproducible(photo_folder, tmp_path):
    run_preview(photo_folder, tmp_path / "a")
    run_preview(photo_folder, tmp_path / "b", "--preset", "official")
    run_preview(photo_folder, tmp_path / "c")
    for path in (tmp_path / "a").iterdir():
        assert path.read_bytes() == (tmp_path / "c" / path.name).read_bytes()
    degraded_a = sorted((tmp_path / "a").glob("*_degraded.png"))
    degraded_b = sorted((tmp_path / "b").glob("*_degraded.png"))
    assert any(a.read_bytes() != b.read_bytes() for a, b in zip(degraded_a, degraded_b))


def test_preview_fails_cleanly_without_readable_images(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert preview.main(["--input", str(empty), "--output", str(tmp_path / "o")]) == 1
    assert "no readable images" in capsys.readouterr().err
