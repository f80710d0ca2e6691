"""Photo sources: folder listing with bad files skipped, decoding, the per-process cache."""
from __future__ import annotations

import logging
import pickle

import numpy as np
import pytest
from PIL import Image

from oldphoto_jax.data import ArrayPhotos, FolderPhotos, JoinedPhotos, photos as photos_lib


def test_folder_skips_and_reports_each_bad_file_once(folders, caplog):
    with caplog.at_level(logging.WARNING, logger="oldphoto_jax.data"):
        source = FolderPhotos(str(folders / "clean"))
    names = [source.name(i) for i in range(len(source))]
    assert names == ["photo0.png", "photo1.png", "photo2.png"]
    assert [name for name, _ in source.skipped] == ["broken.jpg"]
    reports = [r.getMessage() for r in caplog.records if "broken.jpg" in r.getMessage()]
    assert len(reports) == 1
    image = source[0]
    assert image.dtype == np.uint8 and image.shape == (48, 64, 3)


def test_folder_decodes_like_pillow_rgb_and_grey_becomes_three_channels(folders):
    grey = FolderPhotos(str(folders / "old_grey"))[0]
    with Image.open(folders / "old_grey" / "grey.jpg") as image:
        expected = np.asarray(image.convert("RGB"))
    np.testing.assert_array_equal(grey, expected)
    assert (grey[..., 0] == grey[..., 1]).all() and (grey[..., 1] == grey[..., 2]).all()


def test_a_file_that_breaks_after_listing_is_replaced_by_the_next(tmp_path, caplog):
    for k in range(3):
        Image.fromarray(np.full((8, 8, 3), 50 * k, np.uint8)).save(tmp_path / f"p{k}.png")
    source = FolderPhotos(str(tmp_path))
    (tmp_path / "p1.png").write_bytes(b"truncated")
    with caplog.at_level(logging.WARNING, logger="oldphoto_jax.data"):
        first, again = source[1], source[1]
    assert first[0, 0, 0] == 100 and again[0, 0, 0] == 100  # p2 stands in for p1
    assert sum("p1.png" in r.getMessage() for r in caplog.records) == 1


def test_empty_folder_is_an_error(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"nope")
    with pytest.raises(ValueError, match="no readable images"):
        FolderPhotos(str(tmp_path))


def test_cached_photos_are_shared_read_only_and_the_cache_is_not_pickled(folders):
    source = FolderPhotos(str(folders / "old"))
    a = source[1]
    assert source[1] is a and not a.flags.writeable
    clone = pickle.loads(pickle.dumps(source))
    assert len(clone._cache) == 0
    np.testing.assert_array_equal(clone[1], a)


def test_cache_evicts_least_recently_used_within_its_budget():
    cache = photos_lib.DecodedCache(max_bytes=250)
    loads = []

    def loader(key):
        def load():
            loads.append(key)
            return np.zeros(100, np.uint8)
        return load

    for key in ("a", "b", "a", "c", "a", "b"):
        cache.get(key, loader(key))
    # "c" evicted "b" (least recently used), so "b" was loaded twice; "a" stayed cached.
    assert loads == ["a", "b", "c", "b"]
    assert cache.nbytes <= 250 and len(cache) == 2
    big = cache.get("huge", lambda: np.zeros(1000, np.uint8))
    assert big.size == 1000 and len(cache) == 2


def test_array_photos():
    images = [np.zeros((4, 5, 3), np.uint8), np.ones((6, 7, 3), np.uint8)]
    source = ArrayPhotos(images, ["x", "y"])
    assert len(source) == 2 and source.name(1) == "y" and source[1].shape == (6, 7, 3)
    assert not source[0].flags.writeable
    with pytest.raises(ValueError):
        ArrayPhotos([np.zeros((4, 5), np.uint8)])


def test_joined_photos_read_several_sources_as_one():
    first = ArrayPhotos([np.zeros((4, 4, 3), np.uint8)], names=["a"])
    second = ArrayPhotos([np.full((4, 4, 3), k, np.uint8) for k in (1, 2)], names=["b", "c"])
    joined = JoinedPhotos([first, second])
    assert len(joined) == 3
    assert [joined.name(i) for i in range(3)] == ["a", "b", "c"]
    assert [int(joined[i][0, 0, 0]) for i in range(4)] == [0, 1, 2, 0]  # wraps like a source
    assert pickle.loads(pickle.dumps(joined)).name(2) == "c"
    with pytest.raises(ValueError):
        JoinedPhotos([])


def test_clean_photos_of_several_folders_leave_out_each_held_out_name_where_it_is(tmp_path):
    from oldphoto_jax.training.inputs import ConfigError, clean_photos

    for folder, names in (("one", ("p.png", "q.png")), ("two", ("r.png", "s.png"))):
        (tmp_path / folder).mkdir()
        for k, name in enumerate(names):
            Image.fromarray(np.full((8, 8, 3), 10 * k, np.uint8)).save(tmp_path / folder / name)
    spec = f"{tmp_path / 'one'}, {tmp_path / 'two'}"
    source = clean_photos(spec, exclude=("q.png", "r.png"))
    assert [source.name(i) for i in range(len(source))] == ["p.png", "s.png"]
    assert len(clean_photos(str(tmp_path / "one"))) == 2
    with pytest.raises(ConfigError, match="none of the folders"):
        clean_photos(spec, exclude=("missing.png",))
