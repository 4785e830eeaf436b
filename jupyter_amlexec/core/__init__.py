"""The core of jupyter_amlexec: config, snapshots, history, executors and the runner.

Nothing under this package imports IPython, ipywidgets, tornado or jupyter_server; adapters
(magics, widgets, CLI, server) sit on top of it.
"""
