"""Workbench's logging API (`from azureml.logging import get_azureml_logger`), over amlexec_run.

Lets a 2017 Workbench script log into the jupyter_amlexec run history unchanged.
"""

import amlexec_run


class _Logged:
    """Workbench's log() returned something to .wait() on; our metrics are written synchronously."""

    def wait(self, timeout=None):
        return None


class AzureMLLogger:
    def log(self, name, value):
        amlexec_run.log(name, value)
        return _Logged()

    def upload(self, name, content):
        amlexec_run.upload(name, content)
        return _Logged()


def get_azureml_logger():
    return AzureMLLogger()
