"""Floating-point operations of a JAX function, counted on its jaxpr.

XLA's own count (``compiled.cost_analysis()["flops"]``) visits a loop's body once whatever its
trip count, so it undercounts every stage that loops: the banded Winograd convolutions
(``lax.map`` over bands of tiles) and the chunked attention of the scratch mappings (the
official-width quality stage at 256 px: 52 GFLOP by XLA's count against 308 counted here). This
counts what the function computes in its matrix products and convolutions (>97 % of every
stage's work; elementwise operations are left out), each loop's body times its length:

* ``dot_general``: 2 x (output elements) x (contracted size);
* ``conv_general_dilated``: 2 x (output elements) x (input channels per group) x (kernel taps),
  the taps falling on padding included (as PyTorch's and most published counts do);
* ``scan`` (``lax.map``, ``fori_loop`` with static bounds): its body x ``length``; ``cond``: its
  most expensive branch; any other primitive with inner jaxprs (``pjit``, ``custom_vjp_call``,
  ``remat``, ``while``): each inner jaxpr once (a ``while`` loop's trip count is not known).

Winograd layers therefore count their transformed products (16/36 of the direct convolution's
multiplications), i.e. the work done, not the work a direct convolution would have done.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import jax
from jax.extend import core as jex_core


def _jaxprs_in(value) -> list:
    if isinstance(value, jex_core.ClosedJaxpr):
        return [value.jaxpr]
    if isinstance(value, jex_core.Jaxpr):
        return [value]
    if isinstance(value, (tuple, list)):
        return [j for v in value for j in _jaxprs_in(v)]
    return []


def _dot_flops(eqn) -> float:
    (lhs_contract, _), _ = eqn.params["dimension_numbers"]
    lhs = eqn.invars[0].aval.shape
    contracted = math.prod(lhs[d] for d in lhs_contract)
    return 2.0 * math.prod(eqn.outvars[0].aval.shape) * contracted


def _conv_flops(eqn) -> float:
    rhs_spec = eqn.params["dimension_numbers"].rhs_spec  # (out feature, in feature, spatial...)
    rhs = eqn.invars[1].aval.shape
    taps = math.prod(rhs[d] for d in rhs_spec[2:])
    return 2.0 * math.prod(eqn.outvars[0].aval.shape) * rhs[rhs_spec[1]] * taps


def jaxpr_flops(jaxpr) -> float:
    """The matrix-product and convolution FLOPs of a (closed) jaxpr (module docstring)."""
    if isinstance(jaxpr, jex_core.ClosedJaxpr):
        jaxpr = jaxpr.jaxpr
    total = 0.0
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        if name == "dot_general":
            total += _dot_flops(eqn)
        elif name == "conv_general_dilated":
            total += _conv_flops(eqn)
        elif name == "scan":
            total += eqn.params["length"] * jaxpr_flops(eqn.params["jaxpr"])
        elif name == "cond":
            total += max((jaxpr_flops(b) for b in eqn.params["branches"]), default=0.0)
        else:
            total += sum(jaxpr_flops(inner) for value in eqn.params.values()
                         for inner in _jaxprs_in(value))
    return total


def function_flops(fn: Callable, *args: Any) -> float:
    """The FLOPs of one call ``fn(*args)`` (traced, not run)."""
    return jaxpr_flops(jax.make_jaxpr(fn)(*args))
