"""Restore a folder of old photos: the top-level script of ``oldphoto-restore``. The command, its
flags and its help text (this script's ``--help``) live in ``oldphoto_jax/cli/restore.py``."""
# Importing __doc__ makes the command's docstring this module's, which absl prints for --help.
from oldphoto_jax.cli.restore import __doc__, main, run  # noqa: F401  (the flags are defined there)

if __name__ == "__main__":
    run()
