"""Address-list headers (From, To, Cc, Delivered-To) into ``(name, addr)`` pairs.

Two paths, because speed is the point and most headers are simple:

- **fast path**: no quotes, comments, groups or backslashes in the value;
  split on commas, each piece is ``Name <addr>`` or a bare ``addr``.
  That is nearly every real To/Cc line (Enron: all but a few hundred).
- **tokenizer**: everything else (quoted names with commas, ``addr (Name)``
  comments, group syntax ``team: a@x, b@y;`` and ``undisclosed-recipients:;``,
  unbalanced quotes or brackets), a small RFC 5322 state machine that never
  raises and reports whether the value was clean.

Why not :func:`email.utils.getaddresses`: much slower on the common case,
and on garbage it returns ``('', '')`` pairs or silently splits an unquoted
``Dean, Clint <c@x>`` into a bogus address ``Dean``; here such a leading
phrase is joined onto the next mailbox's display name instead.

Addresses come back lower-cased and stripped of whitespace and stray quotes
(DESIGN: addresses are compared lower-cased). Display names come back as
written (quotes removed, not yet RFC 2047-decoded: only the From name is
kept, so only it pays for decoding).
"""

from __future__ import annotations

import re
from typing import Final

Mailbox = tuple[str, str]

# The fast path: a list of simple mailboxes, `"Quoted Name" <a@b>`, `Name <a@b>`,
# `<a@b>` or `a@b`, comma-separated. Anything else (comments, groups, escapes,
# addresses without "@", empty list items) fails the fullmatch and goes to the
# tokenizer. Every mailbox ends at a comma or the end of the value.
_ADDR = r"[^\s\"'<>,;:()\\@]++@[^\s\"'<>,;:()\\@]++"  # "'": <'a@x'> is repaired, slowly
_BOX = (
    r"[ \t]*+(?:{g}" + _ADDR + r")"
    r"|(?:\"{g}[^\"\\]*+)\"[ \t]*+|{g}[^\"<>,;:()\\]*+))<[ \t]*+{g}" + _ADDR + r")[ \t]*+>)"
    r"[ \t]*+(?:,|\Z)"
)
# groups: bare addr, quoted name, name (with trailing blanks), addr
_BOX_RE: Final = re.compile(_BOX.format(g="("))
# Possessive quantifiers and an atomic group per mailbox (Python 3.11+): no
# backtracking, so a late failure costs one pass, not 2^mailboxes.
_LIST_RE: Final = re.compile("(?>" + _BOX.format(g="(?:") + ")*+")
# Bare "a@x, b@y" lists, the commonest shape: validate in one pass, then split.
_BARE_LIST_RE: Final = re.compile(
    r"[ \t]*+" + _ADDR + r"(?:[ \t]*+,[ \t]*+" + _ADDR + r")*+[ \t]*+,?[ \t]*+"
)
_TOKEN_RE: Final = re.compile(
    r"""
     (?P<q>"(?:[^"\\]|\\.)*")                                         # quoted string
    |(?P<c>\((?:[^()\\]|\\.|\((?:[^()\\]|\\.)*\)?)*(?:\)|\Z))         # comment, 1 nesting
    |(?P<a><[^<>]*(?:>|\Z))                                           # angle address
    |(?P<s>[,;:])                                                     # specials
    |(?P<w>[^\s"(<>,;:]+)                                             # atom / addr-spec
    |(?P<x>\S)                                                        # stray > ) <
    """,
    re.X | re.S,
)
_UNESCAPE_RE: Final = re.compile(r"\\(.)", re.S)
_COMMENT_RE: Final = re.compile(r"\((?:[^()\\]|\\.)*\)")


def _clean_addr(addr: str) -> tuple[str, bool]:
    """Normalise an addr-spec; returns it ("" if nothing usable) and whether it was clean.

    Handles what real headers put between the brackets: comments
    (``pete(his account)@silly.test``), folding whitespace, wrapping quotes
    (``<'a@b'>``), obsolete source routes (``<@relay:u@h>``), ``mailto:``, and
    the mangled ``<Undisclosed-Recipient:;@host>`` of some MTAs (nothing).
    """
    clean = True
    addr = addr.strip()
    if "(" in addr:
        addr = _COMMENT_RE.sub("", addr)
        clean = False
    if len(addr) > 1 and addr[0] == addr[-1] and addr[0] in "'\"`":
        addr = addr[1:-1]
        clean = False
    if '"' not in addr and (" " in addr or "\t" in addr or "\n" in addr):
        addr = "".join(addr.split())
    if ":" in addr or ";" in addr:
        rest = addr.rsplit(":", 1)[-1].strip(";")
        clean = clean and addr.startswith("@")  # a source route is legal (obsolete)
        addr = rest if "@" in rest and not rest.startswith("@") else ""
    return addr.lower(), clean


def _complete(word: str) -> bool:
    """``local@domain`` with both parts present (not ``@`` / ``a@`` / ``@b``)."""
    at = word.find("@")
    return 0 < at < len(word) - 1


def parse_mailboxes(value: str) -> tuple[list[Mailbox], bool]:
    """Parse an address-list header value.

    Parameters
    ----------
    value
        Unfolded, stripped header value (str; 8-bit already decoded by the caller).

    Returns
    -------
    (mailboxes, clean)
        ``mailboxes``: ``(display name, lower-cased address)`` in order,
        group members included, empty groups contributing nothing.
        ``clean`` is False when some part could not be read as an address
        (it is dropped, or kept as a bare word without ``@``).
    """
    if _LIST_RE.fullmatch(value) is not None:
        return [(q or n.rstrip(), (b or a).lower()) for b, q, n, a in _BOX_RE.findall(value)], True
    return _parse_tokens(value)


def parse_addresses(value: str) -> tuple[list[str], bool]:
    """:func:`parse_mailboxes` without the names (To, Cc, Delivered-To): faster.

    Bare ``a@x, b@y`` lists, the commonest shape, are validated by one regex
    pass and then split with string methods, without building match tuples.
    """
    if _BARE_LIST_RE.fullmatch(value) is not None:
        items = value.lower().replace(" ", "").replace("\t", "").split(",")
        if not items[-1]:
            items.pop()
        return items, True
    if _LIST_RE.fullmatch(value) is not None:
        return [b or a for b, _, _, a in _BOX_RE.findall(value.lower())], True
    boxes, clean = _parse_tokens(value)
    return [addr for _, addr in boxes], clean


def _parse_tokens(value: str) -> tuple[list[Mailbox], bool]:
    """The slow, complete path: an RFC 5322 address-list state machine."""
    out: list[Mailbox] = []
    clean = True
    phrase: list[str] = []  # display-name words, or the words of a bare addr-spec
    comments: list[str] = []
    angle: str | None = None
    pending: str | None = None  # "Dean" of an unquoted "Dean, Clint <c@x>"
    in_group = False

    def junk(words: str) -> None:
        nonlocal clean
        clean = False
        word = words.strip()
        if word and " " not in word:
            addr, _ = _clean_addr(word)
            if addr:
                out.append(("", addr))

    def flush(sep: str) -> None:
        nonlocal angle, pending, clean
        if angle is not None:
            addr, ok = _clean_addr(angle)
            name = " ".join(phrase) or " ".join(comments)
            if pending is not None:
                name = f"{pending}, {name}" if name else pending
                pending = None
            if not ok or "@" not in addr:
                clean = False
            if addr:
                out.append((name, addr))
        elif phrase:
            if pending is not None:
                junk(pending)
                pending = None
            at_words = [w for w in phrase if "@" in w]
            if len(at_words) > 1 and all(w.count("@") == 1 and w[0] != "@" for w in at_words):
                # "a@x b@y": addresses separated by spaces instead of commas
                clean = False
                for w in at_words:
                    addr, _ = _clean_addr(w)
                    out.append(("", addr))
            elif (
                len(at_words) == 1
                and len(phrase) > 1
                and phrase[-1] is at_words[0]
                and (_complete(at_words[0]) and not phrase[-2].endswith("."))
            ):
                # "Big Bug bb@bug.com": a name without brackets before the address
                # (not "jdoe@test . example", obsolete spaces inside the domain)
                clean = False
                addr, _ = _clean_addr(at_words[0])
                out.append((" ".join(w for w in phrase if w is not at_words[0]), addr))
            elif at_words:
                addr, ok = _clean_addr("".join(phrase))
                if not ok or addr.count("@") != 1:
                    clean = False
                if addr:
                    out.append((" ".join(comments), addr))
            elif sep == ",":
                pending = " ".join(phrase)
            else:
                junk(" ".join(phrase))
        phrase.clear()
        comments.clear()
        angle = None

    for m in _TOKEN_RE.finditer(value):
        kind = m.lastgroup
        tok = m.group()
        if kind == "w":
            phrase.append(tok)
        elif kind == "q":
            if value.startswith("@", m.end()):
                phrase.append(tok)  # quoted local part: "john doe"@example.com
                continue
            inner = tok[1:-1]
            phrase.append(_UNESCAPE_RE.sub(r"\1", inner) if "\\" in inner else inner)
        elif kind == "a":
            if angle is not None or not tok.endswith(">"):
                clean = False
            if angle is None:
                angle = tok[1:-1] if tok.endswith(">") else tok[1:]
        elif kind == "c":
            inner = tok[1:-1] if tok.endswith(")") else tok[1:]
            comments.append(inner.strip())
        elif kind == "s":
            if tok == ":":
                if angle is None and not any("@" in w for w in phrase) and not in_group:
                    phrase.clear()  # group display name: not an address
                    comments.clear()
                    if pending is not None:
                        junk(pending)
                        pending = None
                    in_group = True
                else:
                    clean = False
            elif tok == ";":
                flush(";")
                in_group = False
            else:
                flush(",")
        else:  # stray ">" ")" "<", or the '"' of an unterminated quoted string
            clean = False
    flush("")
    if pending is not None:
        junk(pending)
    return out, clean
