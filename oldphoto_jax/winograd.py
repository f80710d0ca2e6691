"""3x3 stride-1 convolutions by Winograd's minimal filtering F(2x2, 3x3), for XLA:CPU.

Every 2x2 block of outputs of a 3x3 convolution is computed from a 4x4 tile of the input with
16 multiplications per (input, output) channel pair instead of 36:

    Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A

where ``d`` is the tile, ``g`` the 3x3 kernel, ``B``, ``G``, ``A`` the fixed 4x4, 4x3 and 4x2
transforms below. Over all tiles and channels the elementwise products become 16 matrix
products ``(tiles x C_in) @ (C_in x C_out)``, one per position of the transformed tile; the input
and output transforms are additions, cheap next to them when the layer is wide. So the layer
costs 16/36 of the direct convolution's multiply-adds; on a CPU, where XLA's direct convolution
already runs near the machine's peak FLOP rate (the official-width quality stage: ~160 GFLOP/s
on the 2-core AMD EPYC, its peak), that is the only way left to go faster. Measured with the
official-width networks (``python -m oldphoto_jax.bench``, benchmarks/README.md): the quality
stage at 512 px 7.87 -> 4.70 s, HR 16.05 -> 10.03 s, scratch 15.20 -> 11.24 s; ``layers.conv2d``
uses it on the CPU for the 3x3 layers of at least 256 channels producing at least 64x64 pixels
(``layers.CONV_ALGORITHMS``, ``layers.winograd_worthwhile``).

What it costs: more memory. The transformed input and products of a band of tiles (below), the
transformed kernel, and a larger executable: 55-145 MiB more at the peak of the quality and HR
stages than the direct convolution (``OLDPHOTO_JAX_CONV_ALGORITHM=direct`` chooses
that), and a longer first compilation.

The result equals the direct convolution up to float32 rounding: the transforms only add,
subtract and halve, and the sums are regrouped (measured max error against a float64 reference,
1x64x64x512 -> 512: 4.9e-6 against 1.6e-6 for XLA's direct convolution, on outputs of
magnitude ~5). Larger tiles (F(4x4, 3x3): 36 products per 16 outputs) save more but were ~20x
less accurate here, too far from the parity tolerances to use.

Only the forward pass uses the transforms: the gradient (training) is the direct convolution's
(a ``custom_vjp``), so training computes exactly the gradients it computed before.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

# F(2, 3): input transform Bᵀ (4x4), kernel transform G (4x3), output transform Aᵀ (2x4).
B_T = np.array([[1, 0, -1, 0],
                [0, 1, 1, 0],
                [0, -1, 1, 0],
                [0, 1, 0, -1]], np.float64)
G = np.array([[1, 0, 0],
              [0.5, 0.5, 0.5],
              [0.5, -0.5, 0.5],
              [0, 0, 1]], np.float64)
A_T = np.array([[1, 1, 1, 0],
                [0, 1, -1, -1]], np.float64)
OUT = 2   # outputs per tile side
TILE = 4  # inputs per tile side


def _combine(rows, coefficients):
    """sum_i coefficients[i] * rows[i], skipping zero coefficients (all are 0, ±1 or ±0.5)."""
    total = None
    for c, row in zip(coefficients, rows):
        if c == 0:
            continue
        term = row if c == 1 else -row if c == -1 else row * jnp.asarray(c, row.dtype)
        total = term if total is None else total + term
    return total


def transform_kernel(kernel: jax.Array) -> jax.Array:
    """G g Gᵀ of an HWIO 3x3 kernel: (16, C_in, C_out), tile positions in row-major order.

    Separable, each stage one elementwise sum with broadcast coefficients (an einsum here became
    a badly shaped matrix product, 4-5x slower)."""
    g = jnp.asarray(G, kernel.dtype)
    rows = sum(g[:, i, None, None, None] * kernel[None, i] for i in range(3))     # 4 x 3 x I x O
    tiles = sum(g[None, :, j, None, None] * rows[:, None, j] for j in range(3))  # 4 x 4 x I x O
    return tiles.reshape(TILE * TILE, *kernel.shape[2:])


def transform_input(x: jax.Array) -> tuple[jax.Array, tuple[int, int, int]]:
    """Bᵀ d B of every tile of a padded NHWC input whose sides are 2 * tiles + 2:
    ((16, N * tiles_h * tiles_w, C), (N, tiles_h, tiles_w)).

    Separable (rows, then columns), each stage one elementwise sum over strided views with
    broadcast coefficients, so that XLA emits one loop per stage: stacking separately computed
    transforms became a concatenation that XLA:CPU copies slowly (2x the time of the whole
    transform here)."""
    n, hp, wp, c = x.shape
    th, tw = (hp - 2) // OUT, (wp - 2) // OUT
    b = jnp.asarray(B_T, x.dtype)
    rows = sum(b[:, r, None, None, None, None] * x[None, :, r:r + OUT * th:OUT]
               for r in range(TILE))                                      # 4 x N x th x wp x C
    tiles = sum(b[None, :, s, None, None, None, None] * rows[:, None, :, :, s:s + OUT * tw:OUT]
                for s in range(TILE))                                     # 4 x 4 x N x th x tw x C
    return tiles.reshape(TILE * TILE, n * th * tw, c), (n, th, tw)


def transform_output(products: jax.Array, grid: tuple[int, int, int]) -> jax.Array:
    """Aᵀ M A of the (16, tiles, C_out) products: the N x 2*th x 2*tw x C_out output."""
    n, th, tw = grid
    m = products.reshape(TILE, TILE, n, th, tw, -1)
    out_rows = []
    for i in range(OUT):
        row = _combine([m[a] for a in range(TILE)], A_T[i])               # 4 x N x th x tw x O
        out_rows.append(jnp.stack([_combine([row[b] for b in range(TILE)], A_T[j])
                                   for j in range(OUT)], axis=3))         # N x th x tw x 2 x O
    y = jnp.stack(out_rows, axis=2)                                       # N x th x 2 x tw x 2 x O
    return y.reshape(n, th * OUT, tw * OUT, -1)


def _direct(x, kernel, padding_hw, precision):
    return jax.lax.conv_general_dilated(x, kernel, (1, 1), padding_hw,
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                        precision=precision)


def _winograd(x, kernel, padding_hw, precision, band_tiles):
    (top, bottom), (left, right) = padding_hw
    n, h, w, _ = x.shape
    out_h, out_w = h + top + bottom - 2, w + left + right - 2
    tiles_h, tiles_w = -(-out_h // OUT), -(-out_w // OUT)
    # Tile rows per band, never more than the image has: padding up to a whole band of
    # BAND_TILES tiles made a 16-px layer compute 4x its size (1024 -> 1024 channels: 150 ->
    # 67 ms with this; direct 33 ms).
    rows = min(max(1, band_tiles // (n * tiles_w)), tiles_h) if band_tiles else tiles_h
    bands = -(-tiles_h // rows)
    # Zero padding, plus what completes the last tile and band (their outputs are cropped).
    extra_h = bands * rows * OUT - out_h
    extra_w = tiles_w * OUT - out_w
    if top or bottom + extra_h or left or right + extra_w:
        x = jnp.pad(x, ((0, 0), (top, bottom + extra_h), (left, right + extra_w), (0, 0)))
    # The transformed kernel (16/9 of the kernel) depends on the parameters only; tied to the
    # input here, XLA computes it when the layer runs instead of computing every layer's at the
    # start and holding them all (quality mapping: +140 MiB at the peak without this).
    x, kernel = jax.lax.optimization_barrier((x, kernel))
    u = transform_kernel(kernel)

    def band(rows_in):
        tiles, grid = transform_input(rows_in)
        products = jax.lax.dot_general(tiles, u, (((2,), (1,)), ((0,), (0,))),
                                       precision=precision)
        return transform_output(products, grid)

    if bands == 1:
        y = band(x)
    else:  # one band of tile rows at a time: the transformed arrays are 4x the band's size
        y = jax.lax.map(lambda i: band(jax.lax.dynamic_slice_in_dim(
            x, i * rows * OUT, rows * OUT + 2, axis=1)), jnp.arange(bands))
        y = jnp.moveaxis(y, 0, 1).reshape(n, bands * rows * OUT, tiles_w * OUT, -1)
    return y[:, :out_h, :out_w]


# Tiles transformed at once: the input and product arrays of a band are 16 x BAND_TILES x
# channels each (C = 512: 8 MiB), instead of 4x the layer's input and output.
BAND_TILES = 256


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def conv3x3(x: jax.Array, kernel: jax.Array, padding_hw, precision=None,
            band_tiles: int = BAND_TILES) -> jax.Array:
    """The stride-1, undilated 3x3 convolution of NHWC ``x`` with HWIO ``kernel`` and zero
    padding ``padding_hw`` = ((top, bottom), (left, right)), by F(2x2, 3x3), ``band_tiles``
    tiles at a time (0: all at once); its gradient is the direct convolution's."""
    return _winograd(x, kernel, padding_hw, precision, band_tiles)


def _conv3x3_fwd(x, kernel, padding_hw, precision, band_tiles):
    return _winograd(x, kernel, padding_hw, precision, band_tiles), (x, kernel)


def _conv3x3_bwd(padding_hw, precision, band_tiles, residuals, grad_out):
    del band_tiles
    x, kernel = residuals
    _, vjp = jax.vjp(lambda a, k: _direct(a, k, padding_hw, precision), x, kernel)
    return vjp(grad_out)


conv3x3.defvjp(_conv3x3_fwd, _conv3x3_bwd)
