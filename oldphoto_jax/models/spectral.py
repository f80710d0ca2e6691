"""PyTorch's spectral norm on a convolution, shared by the face generator and the discriminators.

``SpectralConv2d`` is a zero-padded, optionally strided ``nn.Conv2d``, optionally wrapped in
``torch.nn.utils.spectral_norm``:

* ``spectral_norm=False``: a plain conv whose ``kernel`` is the effective (folded) weight;
* ``spectral_norm=True``: ``kernel`` holds PyTorch's ``weight_orig`` (HWIO) and the ``spectral``
  collection holds ``u`` [out] and ``v`` [in*kh*kw] (PyTorch's flattening order ``(in, kh, kw)``).
  With ``train=False`` there is no power iteration and ``sigma = u . (W v)`` (PyTorch's eval);
  with ``train=True`` (apply with ``mutable=["spectral"]``) one power iteration on the
  stop-gradient weight updates ``u, v`` before ``sigma`` is computed, as PyTorch does in training.
"""
from __future__ import annotations

from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from oldphoto_jax.layers import (Precision, conv2d, l2_normalize, official_kernel_init,
                                 torch_bias_init)

Array = jax.Array


def kernel_matrix(kernel: Array) -> Array:
    """HWIO kernel -> PyTorch's ``weight.reshape(out, -1)`` (flattening order in, kh, kw)."""
    return jnp.transpose(kernel, (3, 2, 0, 1)).reshape(kernel.shape[-1], -1)


def spectral_sigma(w_mat: Array, u: Array, v: Array, precision: Precision = "highest") -> Array:
    """PyTorch's ``sigma = u . (W_mat @ v)``."""
    return jnp.dot(u, jnp.dot(w_mat, v, precision=precision), precision=precision)


def power_iteration(w_mat: Array, u: Array, n_iterations: int = 1, eps: float = 1e-12,
                    precision: Precision = "highest") -> tuple[Array, Array]:
    """``torch.nn.utils.spectral_norm``'s training-mode update of (u, v), without gradient."""
    w = jax.lax.stop_gradient(w_mat)
    u = jax.lax.stop_gradient(u)
    v = None
    for _ in range(n_iterations):
        v = l2_normalize(jnp.dot(w.T, u, precision=precision), axis=0, eps=eps)
        u = l2_normalize(jnp.dot(w, v, precision=precision), axis=0, eps=eps)
    return u, v


class SpectralConv2d(nn.Module):
    """Zero-padded, strided ``nn.Conv2d``, optionally wrapped in PyTorch's spectral norm.

    Variables: params ``kernel`` (HWIO) [+ ``bias``]; with ``spectral_norm``, collection
    ``spectral`` with ``u`` and ``v`` (module docstring).
    """

    features: int
    kernel_size: int = 3
    stride: int = 1
    padding: int = 1
    use_bias: bool = True
    spectral_norm: bool = False
    n_power_iterations: int = 1
    eps: float = 1e-12
    precision: Precision = "highest"
    kernel_init: Callable = official_kernel_init

    @nn.compact
    def __call__(self, x: Array, train: bool = False) -> Array:
        k, cin, cout = self.kernel_size, x.shape[-1], self.features
        kernel = self.param("kernel", self.kernel_init, (k, k, cin, cout))
        if self.spectral_norm:
            w_mat = kernel_matrix(kernel)

            def init_vector(n):
                return l2_normalize(jax.random.normal(self.make_rng("params"), (n,)), 0, self.eps)

            u_var = self.variable("spectral", "u", init_vector, cout)
            v_var = self.variable("spectral", "v", init_vector, cin * k * k)
            u, v = u_var.value, v_var.value
            if train:
                u, v = power_iteration(w_mat, u, self.n_power_iterations, self.eps,
                                       self.precision)
                if not self.is_initializing():
                    u_var.value, v_var.value = u, v
            kernel = kernel / spectral_sigma(w_mat, u, v, self.precision)
        # Pad explicitly, then a VALID convolution: the same result, but XLA:CPU computes the
        # weight gradient of a stride-1 4x4 conv with in-conv padding 2 (output larger than
        # input) ~25x slower than this form (measured 49.7 s vs 1.85 s for the 256->512 block
        # at 33 px, batch 4).
        p = self.padding
        x = jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
        y = conv2d(x, kernel, stride=self.stride, padding=0, precision=self.precision)
        if self.use_bias:
            bias = self.param("bias", torch_bias_init(cin * k * k), (cout,))
            y = y + bias.astype(y.dtype)
        return y
