"""The lab presets file: the HostGator presets pointed at the lab's stand-in ports."""

from __future__ import annotations

from pathlib import Path

from mailhat_nb.lab.scenarios import STANDS_FOR

#: The HostGator presets (same ids and labels as the built-in ones), by lab service.
_LAB_PRESETS = (
    ("hostgator-imap-ssl", "IMAP option 1", "imap", "imaps", "ssl"),
    ("hostgator-imap-none", "IMAP option 2", "imap", "imap", "none"),
    ("hostgator-smtp-ssl", "SMTP option 1", "smtp", "submissions", "ssl"),
    ("hostgator-smtp-none-25", "SMTP option 2", "smtp", "smtp", "none"),
    ("hostgator-smtp-none-26", "SMTP option 2 (port 26)", "smtp", "smtp_alt", "none"),
    ("imap-starttls-143", "IMAP 143 with STARTTLS", "imap", "imap", "starttls"),
    ("smtp-starttls-587", "SMTP 587 with STARTTLS", "smtp", "submission", "starttls"),
    ("smtp-starttls-25", "SMTP 25 with STARTTLS", "smtp", "smtp", "starttls"),
    ("smtp-starttls-26", "SMTP 26 with STARTTLS", "smtp", "smtp_alt", "starttls"),
    ("pop3-ssl-995", "POP3 995 SSL/TLS", "pop3", "pop3s", "ssl"),
    ("pop3-none-110", "POP3 110 (no encryption)", "pop3", "pop3", "none"),
)


def write_presets(path: Path, ports: dict[str, int]) -> None:
    """Write the lab presets file (DESIGN.md format plus ``stands_for``)."""
    out = [
        "# The lab's stand-ins for the HostGator presets, written by `mailhat lab up`.",
        "# `stands_for` is the standard port each lab port plays; ids match the",
        "# built-in presets so verdicts read the same against the lab.",
    ]
    for pid, label, protocol, service, security in _LAB_PRESETS:
        out += [
            "", "[[preset]]", f'id = "{pid}"', f'label = "{label}"',
            f'protocol = "{protocol}"', 'host = "{server}"', f"port = {ports[service]}",
            f'security = "{security}"', f"stands_for = {STANDS_FOR[service]}",
        ]
    path.write_text("\n".join(out) + "\n")

