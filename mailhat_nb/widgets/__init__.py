"""The notebook panels: the only code that imports ipywidgets (or IPython).

Each panel shows live widgets in JupyterLab and Voilà, and leaves a static
HTML snapshot of its results for headless runs (papermill, nbconvert, the
demo report), so an executed notebook reads well without widget state::

    from mailhat_nb.widgets import DoctorPanel
    doctor = DoctorPanel(email=email, server=server, presets=presets,
                         password_env=password_env, ca_file=ca_file)
    doctor                                  # the form, the live grid, the verdict

:class:`DoctorPanel` (connection doctor), :class:`SyncPanel` (mailbox sync),
:class:`CorrespondencePanel` (charts, alias review, exports) and
:class:`Walkthrough` (the training scenarios). The rules they rely on
(parameters, where the password comes from, the connection handed from the
doctor to the sync) are plain functions in :mod:`mailhat_nb.app.params`, and the
markup in :mod:`mailhat_nb.widgets.render`.
"""

from mailhat_nb.widgets.correspondence import CorrespondencePanel
from mailhat_nb.widgets.doctor import DoctorPanel
from mailhat_nb.widgets.sync import SyncPanel
from mailhat_nb.widgets.training import Walkthrough

__all__ = ["CorrespondencePanel", "DoctorPanel", "SyncPanel", "Walkthrough"]
