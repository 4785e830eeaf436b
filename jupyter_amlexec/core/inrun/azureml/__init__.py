"""Stand-in for Workbench's `azureml` package inside runs: only `azureml.logging` is provided."""
