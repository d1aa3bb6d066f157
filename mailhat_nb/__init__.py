"""mailhat_nb: diagnose mail connections, sync mailboxes, chart correspondence.

The package is the pure, testable core behind the notebooks; the widgets live
in :mod:`mailhat_nb.widgets` and are the only code that imports ipywidgets.
"""

__version__ = "0.1.0"
