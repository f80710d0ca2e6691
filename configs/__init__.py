"""Training configs: ``common.py`` (what every task shares) and one file per training task.

Each task file's ``get_config(arg)`` is what ``train.py --config configs/<task>.py:<arg>``
runs; its docstring gives the commands.
"""
