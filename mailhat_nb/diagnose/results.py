"""What one probe found: its steps and its diagnosis, ready to display.

A :class:`PresetResult` holds only redacted text (step details and the
transcript were scrubbed where they were made); its JSON form is the
``results[]`` entry of DESIGN.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mailhat_nb.diagnose import codes
from mailhat_nb.diagnose.gate import REJECTIONS
from mailhat_nb.diagnose.presets import SECURITY_NAMES, Preset, Target
from mailhat_nb.diagnose.transcript import Line

SYMBOLS = {"ok": "✓", "warn": "⚠", "fail": "✗", "skip": "·"}


@dataclass
class Step:
    """One layer of a probe: ``status`` is ok, warn, fail or skip."""

    name: str
    status: str = "ok"
    elapsed_ms: float = 0.0
    detail: str = ""
    code: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Return the DESIGN.md step object."""
        return {"name": self.name, "status": self.status,
                "elapsed_ms": round(self.elapsed_ms, 1), "detail": self.detail}


@dataclass
class PresetResult:
    """The outcome of probing one :class:`~mailhat_nb.diagnose.presets.Target`."""

    target: Target
    code: str = "ok"
    steps: list[Step] = field(default_factory=list)
    transcript: list[Line] = field(default_factory=list)
    certificate: dict[str, Any] | None = None
    elapsed_ms: float = 0.0
    #: The addresses the host resolved to, sorted (empty: the DNS step did not succeed).
    addresses: tuple[str, ...] = ()
    #: The address the TCP step connected to (empty: it did not connect).
    reached: str = ""
    #: Set by the verdict when the code was re-read in the light of other results.
    context: str = ""
    #: True when credentials were sent on this probe's connection (a login was
    #: attempted, whatever its outcome). False for unencrypted presets judged
    #: from the server's offer alone, and for logins the gate did not allow.
    login_tried: bool = False
    #: Set by the verdict: a setting of the same protocol, encrypted, whose login
    #: worked in the same sweep; a failing row points at it (None: none did).
    alternative: PresetResult | None = field(default=None, repr=False, compare=False)

    # ---------------------------------------------------------------- identity

    @property
    def preset(self) -> Preset:  # noqa: D102 - shorthand
        return self.target.preset

    @property
    def protocol(self) -> str:  # noqa: D102
        return self.target.protocol

    @property
    def host(self) -> str:  # noqa: D102
        return self.target.host

    @property
    def port(self) -> int:  # noqa: D102
        return self.target.port

    @property
    def security(self) -> str:  # noqa: D102
        return self.target.security

    @property
    def status(self) -> str:
        """``ok``, ``warn`` or ``fail``, from the code."""
        return codes.get(self.code).status

    @property
    def works(self) -> bool:
        """True when a login was made and it (and the mailbox) worked, warnings allowed."""
        return self.status in ("ok", "warn") and self.login_tried

    @property
    def untested_plaintext(self) -> bool:
        """True for an unencrypted preset judged from the server's offer alone.

        The server would take the password in clear text; the doctor did not
        send it, so whether the login itself works is unknown.
        """
        return self.code == "plaintext_password_exposed" and not self.login_tried

    @property
    def usable(self) -> bool:
        """True when the preset can be recommended, if only with its warning.

        It :attr:`works`, or it is :attr:`untested_plaintext`: the verdict
        may then name it as the only setting left, never as one that worked.
        """
        return self.works or self.untested_plaintext

    @property
    def rejection_reused(self) -> bool:
        """True when the login was not tried here because another preset's was rejected.

        The gate (:mod:`mailhat_nb.diagnose.gate`) allows one failed login
        per protocol; the other presets of that protocol carry the same code
        with their auth step skipped, and no password was sent on them.
        """
        auth = self.step("auth")
        return auth is not None and auth.status == "skip" and auth.code in REJECTIONS

    def step(self, name: str) -> Step | None:
        """Return the step called ``name``, if it ran."""
        return next((s for s in self.steps if s.name == name), None)

    @property
    def failed_step(self) -> Step | None:
        """The step that failed, if any."""
        return next((s for s in self.steps if s.status == "fail"), None)

    # ---------------------------------------------------------------- wording

    def _fields(self) -> dict[str, str]:
        cert = self.certificate or {}
        names = ", ".join(cert.get("names", [])) or "other names"
        rec = cert.get("recommended_host")
        return {"host": self.host, "port": str(self.port), "label": self.preset.label,
                "protocol": self.protocol.upper(), "names": names,
                "recommended": f", e.g. {rec}" if rec else "",
                "not_here": str(cert.get("not_here", ""))}

    @property
    def title(self) -> str:
        """A few words for the result (provider-aware)."""
        if self.rejection_reused:
            return "Not tried (login rejected on another preset)"
        if self.code == "auth_failed" and self.preset.auth == "oauth-only":
            return "Password login is off (OAuth only)"
        if self.code == "auth_failed" and self.preset.auth == "app-password":
            return "Login rejected (app password needed)"
        if self.code == "plaintext_password_exposed":
            return ("Unencrypted login offered (not tried)" if not self.login_tried
                    else "Works, but unencrypted")
        return codes.get(self.code).title

    @property
    def explanation(self) -> str:
        """A sentence for the customer."""
        if self.code == "auth_failed" and self.preset.auth == "oauth-only":
            return ("This provider no longer accepts a password for this kind of connection; "
                    "the rejection does not mean the password is wrong.")
        text = codes.render(codes.get(self.code).explanation, **self._fields())
        if self.code == "plaintext_password_exposed":
            text += (" The doctor's test login worked, and its password crossed the network "
                     "unencrypted too." if self.login_tried else
                     " The doctor did not send the password here, so whether the login "
                     "itself works was not tested.")
        if self.rejection_reused:
            text += (" The doctor did not try it on this preset: these credentials were "
                     f"already rejected on another {self.protocol.upper()} preset, and one "
                     "failed login per protocol keeps the account from being locked.")
        return f"{text} {self.context}".strip()

    @property
    def remedy(self) -> str:
        """What the agent should do about this row (provider hints included).

        Like the verdict's, it never recommends a setting that failed: the
        code's remedy names none, and a row that did not work adds the setting
        of the same protocol that did in this sweep, when one did
        (:attr:`alternative`). A POP3 login that works is no setting for the
        CRM, which needs IMAP.
        """
        if self.protocol == "pop3" and self.code == "ok":
            return ("POP3 works with these settings (so the password is right), but the CRM "
                    "needs IMAP: do not enter this setting in the CRM.")
        alt = self.alternative
        if self.status == "ok" or alt is None:   # an alternative is always an ok row
            return self.fix
        return f"{self.fix} {alt.setting()} works: use it instead."

    @property
    def fix(self) -> str:
        """What to do about this result's cause, naming no other setting.

        The code's remedy with its fields filled and the provider's hint; the
        verdict's remedy is built from it.
        """
        text = codes.get(self.code).remedy
        if self.code == "cert_hostname_mismatch" and (self.certificate or {}).get("not_here"):
            text = codes.NO_NAME_LEADS_HERE
        panel = codes.PANEL_NOTES.get((self.preset.panel, self.code))
        return self._with_hint(f"{text} {panel}" if panel else text)

    def _with_hint(self, text: str) -> str:
        base = codes.render(text, **self._fields())
        hint = self.preset.hint
        if hint and self.code == "auth_failed" and self.preset.auth != "password":
            return hint
        if hint and self.code != "ok":
            return f"{base} Provider note: {hint}"
        return base

    @property
    def detail(self) -> str:
        """The detail of the deciding step (failure, else first warning).

        A step skipped with a diagnosis (a login the gate did not allow: "not
        tried: ... already rejected these credentials") counts as deciding
        when nothing failed or warned.
        """
        for status in ("fail", "warn"):
            step = next((s for s in self.steps if s.status == status), None)
            if step:
                return step.detail
        step = next((s for s in self.steps if s.status == "skip" and s.code), None)
        return step.detail if step else ""

    def setting(self) -> str:
        """Say what to enter in the CRM (see :meth:`Target.setting`)."""
        return self.target.setting()

    def fields(self, username: str) -> str:
        """What to type, field by field, username included (see :meth:`Target.fields`)."""
        return self.target.fields(username)

    @property
    def security_name(self) -> str:  # noqa: D102
        return SECURITY_NAMES[self.security]

    def to_dict(self) -> dict[str, Any]:
        """Return the DESIGN.md ``results[]`` object."""
        return {
            "preset": self.preset.id, "protocol": self.protocol, "host": self.host,
            "port": self.port, "security": self.security, "status": self.status,
            "code": self.code, "title": self.title, "remedy": self.remedy,
            "elapsed_ms": round(self.elapsed_ms, 1),
            "steps": [s.to_dict() for s in self.steps],
            "transcript": [ln.to_dict() for ln in self.transcript],
            "certificate": self.certificate or {},
            # Additive to DESIGN.md: whether the password was sent on this preset
            # (a login attempted, whatever its outcome). False where the code was
            # judged from the server's offer or reused from another preset's
            # rejection: "plaintext_password_exposed" then means "offered, not tried".
            "login_tried": self.login_tried,
        }
