"""Defaults that every inference entry point shares (``infer.py``, the Python API, the web
server, ``evaluate``, ``bench``), in one place. Imports nothing, so the entry points can define
their flags before JAX is imported.
"""

# Query rows per block of the partial non-local attention (``--with_scratch``) and of the HR
# patch attention, at most: ``models.mapping.block_rows`` gives a block of more than 2**25
# weights fewer rows, down to 1024 (2048 rows: the official-width scratch stage at 512 px 3.5 %
# faster than 1024, +65 MiB at its peak; benchmarks/README.md, issue 18). 0 = dense.
ATTENTION_CHUNK = 2048
