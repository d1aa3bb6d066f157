"""The lab's ports: one block of free ports per lab, on every lab address.

``base + 993`` stands for 993, and so on (:data:`scenarios.STANDS_FOR`), plus
a few extra ports at fixed offsets: Dovecot's LMTP (Exim delivers there), an
SMTP port with neither STARTTLS nor AUTH (``relay``), and the sidecar's
misbehaving ports.
"""

from __future__ import annotations

import random
import socket
import subprocess

from mailhat_nb.errors import LabError
from mailhat_nb.lab.scenarios import STANDS_FOR

#: Internal and extra ports, as offsets from the lab's port base.
EXTRA_OFFSETS = {"lmtp": 24, "relay": 525, "silent": 1, "blackhole": 2, "closed": 3}
ADDRESSES = ("127.0.0.1", "127.0.0.2")


def bindable(kind: int, address: str, port: int) -> bool:
    """True when a server could bind ``address:port`` now (``kind``: TCP or UDP).

    SO_REUSEADDR as every server sets it: connections in TIME-WAIT from a
    previous scenario do not make a port busy.
    """
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address, port))
        except OSError:
            return False
    return True


def port_free(port: int) -> bool:
    """True when a server could bind ``port`` on every lab address now."""
    return all(bindable(socket.SOCK_STREAM, address, port) for address in ADDRESSES)


def allocate_ports(rng: random.Random | None = None) -> dict[str, int]:
    """Pick a free block of ports: ``base + 993`` stands for 993, and so on.

    The base is a random multiple of 1000 between 20000 and 59000, so two labs
    (a demo and a test run) can run side by side, and the ports stay readable.
    """
    rng = rng or random.Random()  # noqa: S311 - port choice, not security
    bases = list(range(20000, 60000, 1000))
    rng.shuffle(bases)
    for base in bases:
        ports = {name: base + std for name, std in STANDS_FOR.items()}
        ports |= {name: base + off for name, off in EXTRA_OFFSETS.items()}
        if all(port_free(p) for p in ports.values()):
            return ports
    raise LabError("no free block of ports between 20000 and 60000 on 127.0.0.1/127.0.0.2")


def holders(ports: list[int]) -> str:
    """Which processes hold ``ports`` (from ``ss``), for error messages."""
    out = subprocess.run(["ss", "-tanpH"], capture_output=True, text=True, check=False).stdout
    wanted = tuple(f":{p} " for p in ports)
    return "; ".join(" ".join(ln.split()) for ln in out.splitlines()
                     if any(w in ln + " " for w in wanted)) or "nothing visible"

