"""PCA and t-SNE of the embedding picture."""
import numpy as np
from PIL import Image

from oldphoto_jax.research import embedding


def test_pca_finds_the_axis_of_largest_spread():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 3)) * np.array([0.1, 5.0, 1.0])
    flat = embedding.pca(x, 2)
    assert flat.shape == (500, 2)
    np.testing.assert_allclose(np.abs(flat[:, 0]), np.abs(x[:, 1] - x[:, 1].mean()), atol=0.2)
    assert flat[:, 0].std() > flat[:, 1].std() > 0.5


def test_tsne_keeps_separated_clusters_apart():
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(size=(50, 10)), rng.normal(4.0, 1.0, size=(50, 10))])
    labels = np.repeat([0, 1], 50)
    y = embedding.tsne(x, iterations=400)
    d = ((y[:, None] - y[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    assert (labels[d.argmin(1)] == labels).mean() == 1.0
    within = np.mean([y[labels == c].std(0).mean() for c in (0, 1)])
    assert np.linalg.norm(y[labels == 0].mean(0) - y[labels == 1].mean(0)) > 3 * within


def test_picture_has_a_row_per_space_and_colours_per_set():
    rng = np.random.default_rng(2)
    names = np.array(["R"] * 10 + ["X"] * 10 + ["Y"] * 10)
    spaces = {"a": (rng.normal(size=(30, 4)), names), "b": (rng.normal(size=(30, 6)), names)}
    picture, coordinates = embedding.embedding_picture(
        spaces, {"a": "space a", "b": "space b"}, {"R": "r", "X": "x", "Y": "y"}, side=200)
    assert isinstance(picture, Image.Image) and picture.size == (400, 26 + 2 * 224)
    assert coordinates["b"]["tsne"].shape == (30, 2)
    colours = {tuple(c) for c in np.asarray(picture).reshape(-1, 3)}
    assert set(embedding.COLOURS.values()) <= colours


def test_subsample_caps_each_set():
    names = np.array(["R"] * 5 + ["X"] * 40 + ["Y"] * 40)
    keep = embedding.subsample(names, 10, seed=0)
    assert [int((names[keep] == n).sum()) for n in "RXY"] == [5, 10, 10]
    assert len(set(keep)) == len(keep)
    np.testing.assert_array_equal(keep, embedding.subsample(names, 10, seed=0))
