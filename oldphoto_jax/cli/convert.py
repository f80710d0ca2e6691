"""``oldphoto-convert``: ``python -m oldphoto_jax.convert`` (official checkpoints to our format)."""
from absl import app

from oldphoto_jax.convert.__main__ import main


def run() -> None:
    app.run(main)


if __name__ == "__main__":
    run()
