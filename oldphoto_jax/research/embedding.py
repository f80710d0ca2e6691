"""2-D pictures of the sets: PCA and t-SNE (numpy), drawn as PNG scatter plots (Pillow).

:func:`tsne` is exact t-SNE (van der Maaten and Hinton 2008): Gaussian affinities calibrated to a
perplexity by bisection, a Student-t kernel in 2-D, early exaggeration, momentum and per-coordinate
gains, initialised deterministically from the PCA projection. O(n^2) memory and time per
iteration: fine for the few hundred to few thousand crops of this tool.
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

COLOURS = {"R": (214, 39, 40), "X": (255, 127, 14), "Y": (31, 119, 180)}


def standardise(x: np.ndarray) -> np.ndarray:
    std = x.std(0)
    std[std == 0] = 1.0
    return (x - x.mean(0)) / std


def pca(x: np.ndarray, dims: int) -> np.ndarray:
    """The rows' coordinates on their first ``dims`` principal axes (sign fixed so each axis'
    largest coefficient is positive)."""
    centred = x - x.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    axes = vt[:dims]
    signs = np.sign(axes[np.arange(len(axes)), np.abs(axes).argmax(1)])
    signs[signs == 0] = 1.0
    return centred @ (axes * signs[:, None]).T


def _affinities(x: np.ndarray, perplexity: float) -> np.ndarray:
    """Symmetrised P of t-SNE: per row a Gaussian whose entropy is log(perplexity)."""
    n = len(x)
    d = (x * x).sum(1)[:, None] + (x * x).sum(1)[None, :] - 2 * x @ x.T
    d = np.maximum(d, 0)
    np.fill_diagonal(d, np.inf)
    target = np.log(perplexity)
    low, high = np.full(n, 1e-20), np.full(n, 1e20)
    beta = np.ones(n) / max(np.median(d[np.isfinite(d)]), 1e-12)
    for _ in range(64):
        logits = -d * beta[:, None]
        logits -= logits.max(1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(1, keepdims=True)
        entropy = -(p * np.log(np.maximum(p, 1e-300))).sum(1)
        too_flat = entropy > target
        low = np.where(too_flat, beta, low)
        high = np.where(too_flat, high, beta)
        beta = np.where(high < 1e19, np.sqrt(low * high), beta * 2)
        if np.max(np.abs(entropy - target)) < 1e-4:
            break
    p = (p + p.T) / (2 * n)
    return np.maximum(p, 1e-12)


def tsne(x: np.ndarray, perplexity: float = 30.0, iterations: int = 750, seed: int = 0
         ) -> np.ndarray:
    """n x 2 t-SNE coordinates of the rows of ``x`` (perplexity capped at (n - 1) / 3)."""
    n = len(x)
    if n < 4:
        return pca(x, 2) if n > 1 else np.zeros((n, 2))
    p = _affinities(x, min(perplexity, (n - 1) / 3))
    y = pca(x, 2)
    y = y / max(np.std(y[:, 0]), 1e-12) * 1e-4
    y += np.random.default_rng(seed).normal(0, 1e-6, y.shape)
    velocity = np.zeros_like(y)
    gains = np.ones_like(y)
    rate = max(n / 12 / 4, 50.0)
    for it in range(iterations):
        exaggeration = 12.0 if it < 250 else 1.0
        momentum = 0.5 if it < 250 else 0.8
        squared = (y * y).sum(1)
        kernel = 1.0 / (1.0 + np.maximum(squared[:, None] + squared[None, :] - 2 * y @ y.T, 0))
        np.fill_diagonal(kernel, 0.0)
        q = np.maximum(kernel / kernel.sum(), 1e-12)
        # dC/dy_i = 4 sum_j (P_ij - Q_ij) K_ij (y_i - y_j)
        w = (exaggeration * p - q) * kernel
        gradient = 4.0 * (w.sum(1)[:, None] * y - w @ y)
        same = np.sign(gradient) == np.sign(velocity)
        gains = np.where(same, gains * 0.8, gains + 0.2).clip(0.01)
        velocity = momentum * velocity - rate * gains * gradient
        y = y + velocity
        y -= y.mean(0)
    return y


def subsample(names: np.ndarray, max_per_set: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of at most ``max_per_set`` rows of each set (all rows of smaller sets),
    drawn without replacement from ``seed``."""
    rng = np.random.default_rng(seed)
    keep = []
    for name in np.unique(names):
        rows = np.flatnonzero(names == name)
        keep.append(rows if len(rows) <= max_per_set else
                    rng.choice(rows, max_per_set, replace=False))
    return np.sort(np.concatenate(keep))


def _font(size: int):
    try:
        return ImageFont.load_default(size)
    except TypeError:  # Pillow without scalable default font
        return ImageFont.load_default()


def scatter_panel(points: np.ndarray, names: np.ndarray, title: str, side: int = 300
                  ) -> Image.Image:
    """A ``side`` x ``side + 24`` white panel with ``title`` above the points, coloured by set
    (:data:`COLOURS`), the sets drawn in random interleaved order so none hides another."""
    panel = Image.new("RGB", (side, side + 24), "white")
    draw = ImageDraw.Draw(panel)
    draw.text((6, 4), title, fill=(0, 0, 0), font=_font(13))
    margin = 10
    low, high = points.min(0), points.max(0)
    span = np.where(high - low > 0, high - low, 1.0)
    xy = margin + (points - low) / span * (side - 2 * margin)
    order = np.random.default_rng(0).permutation(len(points))
    for i in order:
        x, y = xy[i]
        y = side - y + 24
        draw.ellipse((x - 2.5, y - 2.5, x + 2.5, y + 2.5), fill=COLOURS[str(names[i])])
    draw.rectangle((0, 24, side - 1, side + 23), outline=(200, 200, 200))
    return panel


def legend(width: int, titles: dict[str, str]) -> Image.Image:
    strip = Image.new("RGB", (width, 26), "white")
    draw = ImageDraw.Draw(strip)
    x = 8
    font = _font(13)
    for name, title in titles.items():
        draw.ellipse((x, 8, x + 10, 18), fill=COLOURS[name])
        text = f"{name}: {title}"
        draw.text((x + 14, 6), text, fill=(0, 0, 0), font=font)
        x += 24 + int(draw.textlength(text, font=font))
    return strip


def embedding_picture(spaces: dict[str, tuple[np.ndarray, np.ndarray]],
                      space_titles: dict[str, str], set_titles: dict[str, str],
                      seed: int = 0, side: int = 300, max_per_set: int = 150
                      ) -> tuple[Image.Image, dict]:
    """One row per space (``{space: (features n x d, set name per row)}``), columns PCA and
    t-SNE of the standardised features of at most ``max_per_set`` rows of each set
    (:func:`subsample`; t-SNE costs O(n^2) per iteration); a legend on top. Returns the picture
    and the 2-D coordinates ``{space: {"rows": kept rows, "pca": n x 2, "tsne": n x 2}}``."""
    rows, coordinates = [], {}
    for space, (x, names) in spaces.items():
        keep = subsample(names, max_per_set, seed)
        x, names = x[keep], names[keep]
        z = standardise(x)
        flat = pca(z, 2)
        spread = tsne(pca(z, min(z.shape[1], 50)), seed=seed)
        coordinates[space] = {"rows": keep, "pca": flat, "tsne": spread}
        rows.append([scatter_panel(flat, names, f"{space_titles[space]}: PCA", side),
                     scatter_panel(spread, names, f"{space_titles[space]}: t-SNE", side)])
    width = 2 * side
    top = legend(width, set_titles)
    picture = Image.new("RGB", (width, top.height + len(rows) * (side + 24)), "white")
    picture.paste(top, (0, 0))
    for r, (left, right) in enumerate(rows):
        picture.paste(left, (0, top.height + r * (side + 24)))
        picture.paste(right, (side, top.height + r * (side + 24)))
    return picture, coordinates
