"""What every panel shares: two views of one state, and errors shown as sentences.

A panel is displayed twice over, in one output:

* ``application/vnd.jupyter.widget-view+json``: the live ipywidgets view,
  which JupyterLab and Voilà render;
* ``text/html``: a static snapshot of the same results, which is what
  nbconvert (and so the demo report) falls back to when a notebook carries
  no widget state. And a notebook written by this project never carries
  widget state: a Password widget's value would be in it.

Errors: a panel catches :class:`~mailhat_nb.errors.MailhatError` and shows its
message in words. Anything else is shown as its type and (redacted) message,
never as a traceback, which in a credentials notebook can print a frame's
local variables.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import ipywidgets as w

from mailhat_nb.errors import MailhatError
from mailhat_nb.secrets import Secret, redact
from mailhat_nb.widgets import render

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
#: Width of the labels in front of form fields, so the fields line up.
LABEL_WIDTH = "170px"
FIELD_LAYOUT = {"width": "560px"}


def field_style() -> dict[str, str]:
    """Style for a labelled form field (labels one width, never cut off)."""
    return {"description_width": LABEL_WIDTH}


def as_list(value: str | Sequence[str] | None) -> list[str]:
    """A notebook parameter as a list: one string is one item, not its letters."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value.strip() else []
    return list(value)


def describe_error(exc: BaseException, secrets: Iterable[Secret | str] = ()) -> str:
    """One sentence for the agent: the message of our errors, type and message of others.

    Every known secret is masked out of the text first, as a last line of
    defence (our own messages never carry one).
    """
    if isinstance(exc, MailhatError):
        text = str(exc) or type(exc).__name__
    else:
        text = f"Unexpected error ({type(exc).__name__}): {exc}"
    return redact(text, secrets)


class Panel:
    """Base of the panels: a widget tree plus a static HTML snapshot of the same state.

    Subclasses build ``self.widget`` and implement :meth:`static_html`.
    """

    #: What ``text/plain`` says where neither widgets nor HTML render.
    title = "mailhat panel"

    def __init__(self) -> None:
        self.widget: w.Widget = w.VBox()
        self.status = w.HTML()
        self.error: str = ""

    # ------------------------------------------------------------------ display

    def static_html(self) -> str:  # pragma: no cover - every subclass overrides it
        """Render the panel's current results as static HTML."""
        raise NotImplementedError

    def _repr_html_(self) -> str:
        return self.static_html()

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        return {
            "text/plain": f"{self.title} (interactive in JupyterLab or Voilà)",
            "text/html": self.static_html(),
            WIDGET_VIEW: {"version_major": 2, "version_minor": 0,
                          "model_id": self.widget.model_id},
        }

    # ------------------------------------------------------------------ status

    def say(self, text: str, kind: str = "info") -> None:
        """Show one line of status (plain text, escaped)."""
        self.status.value = render.message(text, kind) if text else ""

    def guarded(self, action: Callable[[], None], secrets: Callable[[], Iterable[Secret]]
                = lambda: (), busy: w.Button | None = None) -> bool:
        """Run ``action``; on an error, show it in words and return False.

        ``secrets`` names the passwords to mask from any message, read only
        when there is an error to show. ``busy``, the button that started
        ``action``, is disabled until it ends, to show the panel is at work.
        """
        self.error = ""
        if busy is not None:
            busy.disabled = True
        try:
            action()
        except Exception as exc:  # a panel must never show a traceback
            self.error = describe_error(exc, secrets())
            self.say(self.error, "fail")
            return False
        finally:
            if busy is not None:
                busy.disabled = False
        return True

    def error_html(self) -> str:
        """The last error as a static box, or ""."""
        return render.message(self.error, "fail") if self.error else ""
