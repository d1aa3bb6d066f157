"""``lab.json``: what a running lab is, for any client, validated when read.

A ``lab.json`` of the wrong shape is a :class:`~mailhat_nb.errors.LabError`,
never a traceback: ``down`` then stops nothing.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mailhat_nb.errors import LabError, reason
from mailhat_nb.lab.check import PortCheck
from mailhat_nb.lab.ports import EXTRA_OFFSETS
from mailhat_nb.lab.scenarios import SCENARIOS, STANDS_FOR
from mailhat_nb.lab.world import World


@dataclass
class LabInfo:
    """What ``lab.json`` holds: enough for any client to use the lab."""

    root: str
    scenario: str
    server: str
    domain: str
    ports: dict[str, int]
    stands_for: dict[str, int]
    ca_file: str
    presets: str
    users: list[str]
    pids: dict[str, int] = field(default_factory=dict)
    folders: dict[str, int] = field(default_factory=dict)
    started: str = ""
    #: The world's addresses (:meth:`World.to_dict`): ``resolver`` is the lab's DNS.
    world: dict[str, str] = field(default_factory=dict)

    @property
    def dns_server(self) -> str:
        """The lab's resolver, for ``--dns-server`` ("" for a lab started before it had one)."""
        return self.world.get("resolver", "")

    def email(self, user: str = "alice") -> str:
        """The full address of lab user ``user``."""
        return f"{user}@{self.domain}"

    def to_json(self) -> str:
        """Serialise for ``lab.json`` and ``mailhat lab status --json``."""
        return json.dumps(asdict(self), indent=2, sort_keys=True)



_TEXT_FIELDS = ("root", "scenario", "server", "domain", "ca_file", "presets", "started")
_COUNT_FIELDS = ("ports", "stands_for", "pids", "folders")
_OPTIONAL = {"pids", "folders", "started", "world"}


def _shape_problem(data: object) -> str | None:
    """What is wrong with ``data`` as the content of ``lab.json``; None when it fits."""
    if not isinstance(data, dict):
        kind = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
        return f"it holds {kind.get(type(data), 'a number')}, not an object"
    fields = set(LabInfo.__dataclass_fields__)
    missing = sorted(fields - _OPTIONAL - data.keys())
    if missing:
        return "it lacks " + ", ".join(missing)
    for key in _TEXT_FIELDS:
        if key in data and not isinstance(data[key], str):
            return f"{key} is not a string"
    for key in _COUNT_FIELDS:
        value = data.get(key, {})
        if not isinstance(value, dict) or not all(
                isinstance(k, str) and type(v) is int for k, v in value.items()):
            return f"{key} is not an object of whole numbers"
    world = data.get("world", {})
    if not isinstance(world, dict) or not all(isinstance(v, str) for v in world.values()):
        return "world is not an object of strings"
    if world and World.from_dict(world) is None:
        return "world names no resolver address of the lab's loopback blocks"
    if not isinstance(data["users"], list) or not all(isinstance(u, str) for u in data["users"]):
        return "users is not a list of strings"
    if data["scenario"] not in SCENARIOS:
        return f"scenario {data['scenario']!r} is not a lab scenario"
    lacking = sorted((set(STANDS_FOR) | set(EXTRA_OFFSETS)) - data["ports"].keys())
    if lacking:
        return "ports lacks " + ", ".join(lacking)
    if not all(0 < port < 65536 for port in data["ports"].values()):
        return "ports holds a number that is not a TCP port"
    if not all(pid > 0 for pid in data.get("pids", {}).values()):
        return "pids holds a number that is not a process id"
    return None


def load_info(path: Path) -> LabInfo | None:
    """Read and validate the lab state file ``path``; None when there is none.

    Raises
    ------
    LabError
        When it cannot be read or does not have the shape ``up`` writes.
    """
    try:
        raw = path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise LabError(f"cannot read the lab state file {path}: {reason(exc)}") \
            from exc
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise LabError(f"{path} is not a lab state file: it is not JSON ({exc})") from None
    problem = _shape_problem(data)
    if problem:
        raise LabError(f"{path} is not a lab state file: {problem}")
    return LabInfo(**{k: v for k, v in data.items() if k in LabInfo.__dataclass_fields__})



def write_info(path: Path, info: LabInfo) -> None:
    """Write ``lab.json`` atomically: readers never see half of it."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(info.to_json())
    os.replace(tmp, path)


def as_dict(info: LabInfo, checks: list[PortCheck]) -> dict[str, Any]:
    """``lab status --json``: the info plus each port's behaviour."""
    data = asdict(info)
    data["checks"] = [asdict(c) for c in checks]
    return data
