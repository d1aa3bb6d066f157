"""The lab presets file: the HostGator presets pointed at the lab's stand-in ports."""

from __future__ import annotations

from pathlib import Path

from mailhat_nb.lab.scenarios import STANDS_FOR


def write_presets(path: Path, ports: dict[str, int]) -> None:
    """Write the lab presets file (DESIGN.md format plus ``stands_for``).

    Its presets are the built-in HostGator ones (ids, labels, protocols and
    security), each on the lab port that stands for its port.
    """
    # Imported here: the lab's sidecar and web processes import this package.
    from mailhat_nb.diagnose.presets import load_presets

    service = {std: name for name, std in STANDS_FOR.items()}
    out = [
        "# The lab's stand-ins for the HostGator presets, written by `mailhat lab up`.",
        "# `stands_for` is the standard port each lab port plays; ids match the",
        "# built-in presets so verdicts read the same against the lab.",
    ]
    for p in load_presets("hostgator"):
        out += [
            "", "[[preset]]", f'id = "{p.id}"', f'label = "{p.label}"',
            f'protocol = "{p.protocol}"', 'host = "{server}"',
            f"port = {ports[service[p.port]]}", f'security = "{p.security}"',
            f"stands_for = {p.port}",
        ]
    path.write_text("\n".join(out) + "\n")
