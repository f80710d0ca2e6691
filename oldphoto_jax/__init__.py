"""oldphoto-jax: Bringing Old Photos Back to Life in JAX/Flax.

``from oldphoto_jax import Restorer, restore`` (see ``oldphoto_jax.api``); the import is lazy, so
``import oldphoto_jax`` stays cheap (no JAX until a restorer is made).
"""

_API = ("Restorer", "Result", "restore", "RestorationError")


def __getattr__(name):
    if name in _API:
        from oldphoto_jax import api

        return getattr(api, name)
    raise AttributeError(f"module 'oldphoto_jax' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_API))
