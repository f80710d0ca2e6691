"""Training configs: ``common.py`` (what every stage shares) and one file per training stage.

Each stage file's ``get_config(arg)`` is what ``train.py --config configs/<stage>.py:<arg>``
runs; its docstring gives the commands.
"""
