"""Train one task of the restoration model: the top-level script of ``oldphoto-train``. The
command, its flags and its help text (this script's ``--help``) live in
``oldphoto_jax/cli/train.py``."""
# Importing __doc__ makes the command's docstring this module's, which absl prints for --help.
from oldphoto_jax.cli.train import __doc__, is_multiprocess_job, main, run  # noqa: F401

if __name__ == "__main__":
    run()
