"""A real mail server on loopback for tests, demos and training.

``Lab().up()`` starts a private Dovecot (IMAP, POP3) and a private Exim
(SMTP, delivering into Dovecot) on 127.0.0.1 high ports with demo mailboxes
and switchable fault scenarios, and a world of customer domains with a real DNS
resolver (unbound) on a loopback block of its own (:mod:`.world`, :mod:`.dns`,
:mod:`.web`); ``Lab().down()`` stops exactly what it started.
"""

from mailhat_nb.lab.scenarios import SCENARIOS, Scenario
from mailhat_nb.lab.server import Lab
from mailhat_nb.lab.state import LabInfo

__all__ = ["SCENARIOS", "Lab", "LabInfo", "Scenario"]
