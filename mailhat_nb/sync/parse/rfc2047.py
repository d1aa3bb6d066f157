"""RFC 2047 encoded words (``=?charset?Q|B?text?=``), decoded leniently.

Why not :func:`email.header.decode_header`: it returns bytes chunks the
caller must still decode, raises ``LookupError`` on unknown charsets and
``UnicodeDecodeError`` on broken bytes, and gives no way to tell "decoded
cleanly" from "guessed". Real subjects need all of: unknown charset names
(``=?NONE?B?...?=``, ``x-unknown``), broken padding (``VEVTVA=``), text in the
wrong charset, encoded words glued to plain text, CJK characters split
across two adjacent words (so bytes of adjacent same-charset words are joined
*before* decoding).

:func:`decode_words` returns the text and a status bitmask; the caller turns
the bits into row defects and keeps the raw value when a fallback was used.
"""

from __future__ import annotations

import binascii
import codecs
import contextlib
import re
from functools import lru_cache
from typing import Final

#: Status bits returned by :func:`decode_words`.
OK: Final = 0
BROKEN: Final = 1  #: bad base64/QP, or bytes invalid in the charset: replaced/guessed
UNKNOWN_CHARSET: Final = 2  #: charset name unknown to Python: decoded as UTF-8 or cp1252

# charset: no "?" or space; encoded text: anything but "?" (real encoders leave
# spaces in Q text, and RFC 2047's ban on them is widely ignored).
_EW_RE: Final = re.compile(r"=\?([^?\s]+)\?([BbQq])\?([^?]*)\?=")

#: Labels that name one charset but that Python spells differently, or where
#: the superset is what senders really used (GB2312 mail is GBK/GB18030 in
#: practice; ks_c_5601 is cp949).
_ALIASES: Final[dict[str, str]] = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "ks_c_5601-1987": "cp949",
    "ks_c_5601": "cp949",
    "euc-kr": "cp949",
    "iso-8859-8-i": "iso-8859-8",
    "iso-8859-6-i": "iso-8859-6",
    "x-sjis": "shift_jis",
    "shift-jis": "shift_jis",
    "windows-31j": "cp932",
    "x-mac-roman": "mac_roman",
    "unicode-1-1-utf-7": "utf-7",
}

#: When a codec fails, the superset the sender most likely really used.
_WIDER: Final[dict[str, tuple[str, ...]]] = {
    "ascii": ("utf-8", "cp1252"),
    "iso2022_jp": ("iso2022_jp_ext", "iso2022_jp_3", "iso2022_jp_2"),
    "shift_jis": ("cp932",),
    "euc_jp": ("euc_jis_2004",),
    "big5": ("big5hkscs", "cp950"),
    "euc_kr": ("cp949",),
}

# Codecs whose every encoded word starts with its own byte-order mark: never join them.
_SELF_CONTAINED: Final = ("utf-16", "utf-32")

# Codecs Python knows that are not charsets a mail could legitimately name.
_NOT_CHARSETS: Final = frozenset(
    {"undefined", "idna", "punycode", "unicode_escape", "raw_unicode_escape", "mbcs", "oem"}
)


@lru_cache(maxsize=512)
def codec_for(charset: str) -> str | None:
    """Python codec name for a MIME charset label, or ``None`` when unknown.

    RFC 2231 language tags (``utf-8*en``) are dropped. Bytes-to-bytes codecs
    (``base64``, ``zlib``, ``rot13``) are refused: a header naming one is
    garbage, not an instruction.
    """
    label = charset.strip().strip('"').lower().split("*", 1)[0]
    label = _ALIASES.get(label, label)
    try:
        info = codecs.lookup(label)
    except (LookupError, ValueError):
        return None
    if not getattr(info, "_is_text_encoding", True) or info.name in _NOT_CHARSETS:
        return None
    if info.name == "iso8859-1":
        # As browsers do (WHATWG): bytes 0x80-0x9F labelled latin-1 are cp1252
        # punctuation ("…", "’"), never the C1 control characters.
        return "cp1252"
    return info.name


def decode_bytes(data: bytes, codec: str | None) -> tuple[str, int]:
    """Decode ``data`` in ``codec``, falling back the way mail clients do.

    Unknown codec: UTF-8 if the bytes are valid UTF-8, else cp1252 (the
    charset 8-bit mail most often really is), flagged ``UNKNOWN_CHARSET``.
    Invalid bytes in a known codec: try UTF-8, else decode with replacement
    characters, flagged ``BROKEN``.
    """
    if codec is not None:
        with contextlib.suppress(UnicodeDecodeError, LookupError):
            return data.decode(codec), OK
        for wider in _WIDER.get(codec, ()):
            with contextlib.suppress(UnicodeDecodeError):
                return data.decode(wider), BROKEN
        status = BROKEN
    else:
        status = UNKNOWN_CHARSET
    if not data.isascii():  # 7-bit data failing a stateful codec is not UTF-8 either
        with contextlib.suppress(UnicodeDecodeError):
            return data.decode("utf-8"), status
    if codec is not None:
        return data.decode(codec, "replace"), status | BROKEN
    return data.decode("cp1252", "replace"), status


def _payload(enc: str, text: str) -> tuple[bytes, int]:
    """The bytes of one encoded word's text, and BROKEN when repaired."""
    raw = text.encode("ascii", "replace")
    status = OK if text.isascii() else BROKEN
    if enc in "Qq":
        return binascii.a2b_qp(raw, header=True), status
    stripped = raw.replace(b" ", b"").rstrip(b"=")
    rem = len(stripped) % 4
    if rem == 1:  # one stray character cannot be base64: drop it
        stripped = stripped[:-1]
        status = BROKEN
    elif rem:
        stripped += b"=" * (4 - rem)
        if raw.count(b"=") != 4 - rem:  # padding was wrong in the original
            status = BROKEN
    try:
        return binascii.a2b_base64(stripped), status
    except binascii.Error:
        return raw, BROKEN


def decode_words(value: str) -> tuple[str, int]:
    """Decode every encoded word in ``value``.

    Whitespace between two adjacent encoded words is dropped (RFC 2047 6.2);
    other text is kept as it is. Adjacent words in the same charset are
    decoded together, so a multi-byte character split across them survives
    (UTF-16/32 words excepted: each carries its own byte-order mark).

    Returns
    -------
    (text, status)
        ``status`` is ``OK`` or a combination of ``BROKEN`` and
        ``UNKNOWN_CHARSET``.
    """
    if "=?" not in value:
        return value, OK
    out: list[str] = []
    status = OK
    pos = 0
    run_codec: str | None = None
    run_label = ""
    run = bytearray()
    for m in _EW_RE.finditer(value):
        gap = value[pos : m.start()]
        if gap and (pos == 0 or not run_label or not gap.isspace()):
            if run_label:
                text, st = decode_bytes(bytes(run), run_codec)
                out.append(text)
                status |= st
                run.clear()
                run_label = ""
            out.append(gap)
        label = m.group(1).lower()
        data, st = _payload(m.group(2), m.group(3))
        status |= st
        if label != run_label or (run_codec or "").startswith(_SELF_CONTAINED):
            if run_label:
                text, st = decode_bytes(bytes(run), run_codec)
                out.append(text)
                status |= st
                run.clear()
            run_label = label
            run_codec = codec_for(label)
        run += data
        pos = m.end()
    if run_label:
        text, st = decode_bytes(bytes(run), run_codec)
        out.append(text)
        status |= st
    out.append(value[pos:])
    return "".join(out), status
