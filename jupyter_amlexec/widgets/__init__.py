"""Live widgets (stock ipywidgets 8 only, so they render in JupyterLab, Notebook 7 and VS Code).

Imported only when a magic shows a widget: `%load_ext` never pays for ipywidgets or matplotlib.
"""

from .dashboard import RunsDashboard
from .run_widget import RunWidget

__all__ = ["RunWidget", "RunsDashboard"]
