"""jupyter_amlexec: run notebook cells and scripts on compute targets, with a run history."""

__version__ = "0.1.0"
