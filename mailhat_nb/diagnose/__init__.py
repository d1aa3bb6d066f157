"""The connection doctor: every preset tested layer by layer, the failure named.

The notebooks and the CLI use this API::

    from mailhat_nb.diagnose import Account, diagnose
    account = Account.from_input(email, password, server=server)   # UsageError on bad input
    report = diagnose(account, presets=None, ca_file=None, timeout=10, send_test=False,
                      on_result=None, allow_plaintext_login=False)
    report.verdict.summary; report.to_frame(); report.steps_frame()
    report.to_markdown(); report.to_json(); report.to_text()

The doctor never sends the password over an unencrypted connection unless
``allow_plaintext_login=True`` (CLI ``--allow-plaintext-login``): presets with
``security = "none"`` are judged from the capabilities the server advertises,
and a report never says such a login worked when it was not tried.

Without a server name the doctor discovers it first (:mod:`mailhat_nb.discovery`);
``dns_server="IP[:PORT]"`` sends every lookup to that nameserver (:mod:`.dns`).

Modules, by what they hold: :mod:`.normalise` (input), :mod:`.presets` (TOML
data), :mod:`.dns` (the resolver), :mod:`.probe` (the layers) over :mod:`.wire`
(socket + TLS) and the protocol sessions :mod:`.imap`, :mod:`.pop3`, :mod:`.smtp`; :mod:`.classify`
and :mod:`.certificate` (what went wrong), :mod:`.codes` (what to say),
:mod:`.transcript` (redaction), :mod:`.gate` (one login per protocol),
:mod:`.evidence`, :mod:`.verdict`, :mod:`.report`, :mod:`.sendtest`, :mod:`.doctor` (the sweep);
:mod:`.crm` (the CRM's own error, understood with the table ``crm_errors.toml``,
set beside the verdict) and :mod:`.history` (runs kept per customer, what changed).

Importing this package imports none of them: the names below load their
module on first use, so the sync, which shares :mod:`.certificate`'s
verified TLS context, never pays for the doctor.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mailhat_nb.diagnose.codes import CODES, Code
    from mailhat_nb.diagnose.doctor import DEFAULT_TIMEOUT, diagnose
    from mailhat_nb.diagnose.normalise import Account, normalise_account
    from mailhat_nb.diagnose.presets import Preset, Target, builtin_names, load_presets
    from mailhat_nb.diagnose.report import Report
    from mailhat_nb.diagnose.results import PresetResult, Step
    from mailhat_nb.diagnose.verdict import Verdict

_HOMES = {
    "CODES": "codes",
    "Code": "codes",
    "DEFAULT_TIMEOUT": "doctor",
    "diagnose": "doctor",
    "Account": "normalise",
    "normalise_account": "normalise",
    "Preset": "presets",
    "Target": "presets",
    "builtin_names": "presets",
    "load_presets": "presets",
    "Report": "report",
    "PresetResult": "results",
    "Step": "results",
    "Verdict": "verdict",
}

__all__ = [
    "CODES",
    "DEFAULT_TIMEOUT",
    "Account",
    "Code",
    "Preset",
    "PresetResult",
    "Report",
    "Step",
    "Target",
    "Verdict",
    "builtin_names",
    "diagnose",
    "load_presets",
    "normalise_account",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
