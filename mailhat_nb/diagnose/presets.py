"""Presets: connection settings to try, as TOML data (never code).

A presets file (DESIGN.md) is a list of ``[[preset]]`` tables with ``id``,
``label``, ``protocol``, ``host``, ``port`` and ``security``. Optional keys
this module also reads:

``stands_for``
    The standard port a test port plays (the lab's files use it), shown in
    labels: "IMAP option 1 (993 SSL/TLS)".
``alt_hosts``
    More host templates to test the same preset on. HostGator's presets carry
    both the server name and ``mail.{domain}``: customers mix them up, and the
    certificate only covers the server name, so both are tested when both apply.
``hint``
    Provider advice shown with a failure (app passwords, OAuth-only ...).
``auth``
    ``password`` (default), ``app-password`` or ``oauth-only``.

A file may also carry top-level ``title``, ``domains`` (email domains the
file is chosen for automatically, e.g. gmail.com) and ``panel``: the hosting
control panel behind its servers (``cpanel``), whose habits the advice may
quote ("cPanel expects the full email address as the username") only for
presets that say so.

The built-in files live in ``presets/``: ``hostgator`` (the default) first,
then the common providers. ``--presets`` takes a built-in name, a
comma-separated list of them, or a path.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from mailhat_nb.diagnose.normalise import Account
from mailhat_nb.errors import PresetsError, UsageError

PROTOCOLS = ("imap", "pop3", "smtp")
SECURITIES = ("ssl", "starttls", "none")
AUTH_KINDS = ("password", "app-password", "oauth-only")
SECURITY_NAMES = {"ssl": "SSL/TLS", "starttls": "STARTTLS", "none": "no encryption"}
DEFAULT = "hostgator"

_REQUIRED = {"id": str, "label": str, "protocol": str, "host": str, "port": int,
             "security": str}
_OPTIONAL = {"stands_for": int, "alt_hosts": list, "hint": str, "auth": str}
_FIELD = re.compile(r"\{([^{}]*)\}")
_PLACEHOLDERS = {"server", "domain"}
#: How a type is named in a validation message ("'port' must be an integer").
_KIND_NAMES = {int: "an integer", str: "a string", list: "a list"}


@dataclass(frozen=True)
class Preset:
    """One connection setting to test, as the presets file states it."""

    id: str
    label: str
    protocol: str
    host: str
    port: int
    security: str
    stands_for: int | None = None
    alt_hosts: tuple[str, ...] = ()
    hint: str = ""
    auth: str = "password"
    source: str = ""
    #: The hosting control panel behind the server (the file's ``panel``), or "".
    panel: str = ""

    @property
    def std_port(self) -> int:
        """The port this preset stands for (its own port unless ``stands_for``)."""
        return self.stands_for or self.port

    @property
    def display(self) -> str:
        """Label with port and security: "IMAP option 1 (993 SSL/TLS)"."""
        security = SECURITY_NAMES[self.security]
        if str(self.std_port) not in self.label:
            return f"{self.label} ({self.std_port} {security})"
        if security.lower() not in self.label.lower():
            return f"{self.label}, {security}"
        return self.label


@dataclass(frozen=True)
class Target:
    """A preset with its host expanded for one account: what one probe connects to.

    ``alternate`` is True when the host came from the preset's ``alt_hosts``
    rather than its own ``host``: the presets file's preference between two
    names that both work (the verdict's tie-break, never an order of probes).
    """

    preset: Preset
    host: str
    alternate: bool = False

    @property
    def protocol(self) -> str:  # noqa: D102 - shorthand
        return self.preset.protocol

    @property
    def port(self) -> int:  # noqa: D102
        return self.preset.port

    @property
    def security(self) -> str:  # noqa: D102
        return self.preset.security

    @property
    def port_text(self) -> str:
        """The port to type, and the one a lab port stands for: "31993 (standing for 993)"."""
        p = self.preset
        if p.stands_for and p.stands_for != p.port:
            return f"{p.port} (standing for {p.stands_for})"
        return str(p.port)

    def setting(self) -> str:
        """Say what to type into the CRM.

        E.g. "IMAP option 1: gator1234.hostgator.com, port 993, SSL/TLS".
        """
        p = self.preset
        return f"{p.label}: {self.host}, port {self.port_text}, {SECURITY_NAMES[p.security]}"

    def fields(self, username: str) -> str:
        """The setting field by field, as the CRM's form asks for it, with the username.

        E.g. "server gator1234.hostgator.com, port 993, security SSL/TLS, username
        info@customer.com (IMAP option 1)".
        """
        p = self.preset
        return (f"server {self.host}, port {self.port_text}, security "
                f"{SECURITY_NAMES[p.security]}, username {username} ({p.label})")


# ------------------------------------------------------------------ loading


def builtin_names() -> list[str]:
    """Names of the built-in presets files, HostGator first."""
    names = sorted(p.name.removesuffix(".toml") for p in _builtin_dir().iterdir()
                   if p.name.endswith(".toml"))
    names.remove(DEFAULT)
    return [DEFAULT, *names]


def _builtin_dir() -> Any:
    return resources.files("mailhat_nb.diagnose") / "presets"


def _parse(text: str, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PresetsError(f"{source}: not valid TOML: {exc}") from exc


def _check_template(template: str, where: str) -> None:
    """Refuse a host template that cannot expand to one host name.

    A space or a stray brace would otherwise reach the resolver as part of
    the name and come back as a puzzling ``dns_not_found`` on every sweep.
    """
    if any(c.isspace() for c in template.strip()):
        raise PresetsError(f"{where}: host {template!r} contains a space; give one host name "
                           "(or list more in alt_hosts)")
    if "{" in _FIELD.sub("", template) or "}" in _FIELD.sub("", template):
        raise PresetsError(f"{where}: host {template!r} has a stray or unbalanced brace; "
                           "placeholders are written {server} or {domain}")
    unknown = set(_FIELD.findall(template)) - _PLACEHOLDERS
    if unknown:
        raise PresetsError(f"{where}: unknown placeholder(s) "
                           f"{', '.join('{' + u + '}' for u in sorted(unknown))} in {template!r}; "
                           "use {server} or {domain}")


def _check_top_level(data: dict[str, Any], source: str) -> None:
    extra = set(data) - {"preset", "title", "domains", "panel"}
    if extra:
        raise PresetsError(f"{source}: unknown top-level key(s) {', '.join(sorted(extra))}")
    for key in ("title", "panel"):
        if key in data and not isinstance(data[key], str):
            raise PresetsError(f"{source}: {key!r} must be a string")
    domains = data.get("domains", [])
    # A string here would be read letter by letter as domains ("gmail.com" -> g, m, ...).
    if not isinstance(domains, list) or not all(isinstance(d, str) and d.strip()
                                                for d in domains):
        raise PresetsError(f"{source}: 'domains' must be a list of email domains, e.g. "
                           'domains = ["gmail.com", "googlemail.com"]')


def parse_presets(text: str, source: str = "<presets>") -> list[Preset]:
    """Parse and validate the text of a presets file.

    Raises
    ------
    PresetsError
        With the file, the preset and the field at fault.
    """
    data = _parse(text, source)
    _check_top_level(data, source)
    entries = data.get("preset")
    if not isinstance(entries, list) or not entries:
        raise PresetsError(f"{source}: no [[preset]] tables")
    out: list[Preset] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries, 1):
        where = f"{source}: preset #{index}"
        if not isinstance(entry, dict):
            raise PresetsError(f"{where} is not a table")
        if "id" in entry:
            where = f"{source}: preset {entry['id']!r}"
        for key, kind in _REQUIRED.items():
            if key not in entry:
                raise PresetsError(f"{where}: missing {key!r}")
            if not isinstance(entry[key], kind) or isinstance(entry[key], bool):
                raise PresetsError(f"{where}: {key!r} must be {_KIND_NAMES[kind]}")
        unknown = set(entry) - set(_REQUIRED) - set(_OPTIONAL)
        if unknown:
            raise PresetsError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        for key, kind in _OPTIONAL.items():
            if key in entry and (not isinstance(entry[key], kind) or isinstance(entry[key], bool)):
                raise PresetsError(f"{where}: {key!r} must be {_KIND_NAMES[kind]}")
        if entry["protocol"] not in PROTOCOLS:
            raise PresetsError(f"{where}: protocol must be one of {', '.join(PROTOCOLS)}")
        if entry["security"] not in SECURITIES:
            raise PresetsError(f"{where}: security must be one of {', '.join(SECURITIES)}")
        for key in ("port", "stands_for"):
            if key in entry and not 1 <= entry[key] <= 65535:
                raise PresetsError(f"{where}: {key} {entry[key]} is out of range (1-65535)")
        if entry.get("auth", "password") not in AUTH_KINDS:
            raise PresetsError(f"{where}: auth must be one of {', '.join(AUTH_KINDS)}")
        alts = entry.get("alt_hosts", [])
        if not all(isinstance(a, str) and a for a in alts):
            raise PresetsError(f"{where}: alt_hosts must be a list of host names")
        for template in [entry["host"], *alts]:
            if not template.strip():
                raise PresetsError(f"{where}: empty host")
            _check_template(template, where)
        if entry["id"] in seen:
            raise PresetsError(f"{where}: duplicate id")
        seen.add(entry["id"])
        out.append(Preset(
            id=entry["id"], label=entry["label"], protocol=entry["protocol"],
            host=entry["host"].strip(), port=entry["port"], security=entry["security"],
            stands_for=entry.get("stands_for"), alt_hosts=tuple(a.strip() for a in alts),
            hint=entry.get("hint", ""), auth=entry.get("auth", "password"), source=source,
            panel=data.get("panel", ""),
        ))
    return out


def _builtin_text(name: str) -> str:
    return (_builtin_dir() / f"{name}.toml").read_text(encoding="utf-8")  # type: ignore[no-any-return]


def builtin_domains() -> dict[str, str]:
    """Email domain -> built-in presets name, for choosing presets automatically."""
    found: dict[str, str] = {}
    for name in builtin_names():
        data = _parse(_builtin_text(name), f"{name}.toml")
        _check_top_level(data, f"{name}.toml")
        for domain in data.get("domains", []):
            found[str(domain).lower()] = name
    return found


def load_presets(spec: str | Path | None = None, email_domain: str | None = None) -> list[Preset]:
    """Load the presets to test.

    Parameters
    ----------
    spec:
        A built-in name (``hostgator``, ``gmail`` ...), several joined with
        commas, or the path of a presets file. None chooses by
        ``email_domain`` (gmail.com -> gmail ...) and falls back to HostGator.
    email_domain:
        The account's domain, for that automatic choice.

    Raises
    ------
    UsageError
        For an unknown name or a file that cannot be read.
    PresetsError
        For a file that does not parse or validate.
    """
    if spec is None or str(spec).strip() == "":
        name = builtin_domains().get((email_domain or "").lower(), DEFAULT)
        return parse_presets(_builtin_text(name), f"{name}.toml")
    text = str(spec).strip()
    path = Path(text).expanduser()
    if path.is_dir():
        raise UsageError(f"presets {text!r} is a directory, not a presets file: give a TOML "
                         "file or a built-in name")
    if path.is_file() or text.endswith(".toml") or "/" in text:
        try:
            content = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read presets file {text}: {exc}") from exc
        return parse_presets(content, str(path))
    names = builtin_names()
    wanted = [n.strip().lower() for n in text.split(",") if n.strip()]
    if not wanted:
        raise UsageError(f"presets {text!r} names no presets: use a file path or one of "
                         f"{', '.join(names)}")
    out: list[Preset] = []
    for name in wanted:
        if name not in names:
            raise UsageError(f"unknown presets {name!r}: use a file path or one of "
                             f"{', '.join(names)}")
        out += parse_presets(_builtin_text(name), f"{name}.toml")
    ids = [p.id for p in out]
    if len(ids) != len(set(ids)):
        raise PresetsError(f"presets {text!r} repeat an id")
    return out


# ------------------------------------------------------------------ expansion


def expand_host(template: str, account: Account) -> str | None:
    """Fill ``{server}`` and ``{domain}``; None when a needed value is missing.

    >>> from mailhat_nb.diagnose.normalise import normalise_account
    >>> acct = normalise_account("a@example.com", "pw", server=None)
    >>> expand_host("mail.{domain}", acct), expand_host("{server}", acct)
    ('mail.example.com', None)
    """
    values = {"server": account.server, "domain": account.domain}
    if not all(values.get(k) for k in _FIELD.findall(template)):
        return None
    return _FIELD.sub(lambda m: str(values[m.group(1)]), template).lower()


def expand(presets: list[Preset], account: Account) -> tuple[list[Target], list[str]]:
    """Targets to probe: each preset on each of its host templates that applies.

    Returns
    -------
    targets, notes:
        Targets in preset order (a preset's own host first, then its
        ``alt_hosts``), without duplicates (same protocol, host, port and
        security); notes name presets that could not be expanded, and a
        username without a domain where the presets' control panel expects
        the full address (cPanel's habit, said only for its presets).
    """
    targets: list[Target] = []
    notes: list[str] = []
    if "@" not in account.username and any(p.panel == "cpanel" for p in presets):
        notes.append(f"username {account.username!r} has no domain: cPanel (HostGator) "
                     f"expects the full email address ({account.email}) as the username")
    seen: set[tuple[str, str, int, str]] = set()
    for preset in presets:
        hosts = [expand_host(t, account) for t in (preset.host, *preset.alt_hosts)]
        usable = [(h, index > 0) for index, h in enumerate(hosts) if h]
        if not usable:
            notes.append(f"skipped {preset.display}: it needs a server name (--server)")
            continue
        for host, alternate in usable:
            key = (preset.protocol, host, preset.port, preset.security)
            if key in seen:
                continue
            seen.add(key)
            targets.append(Target(preset, host, alternate))
    return targets, notes
