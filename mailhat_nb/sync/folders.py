"""Folder roles (inbox, sent, trash ...) from IMAP special-use flags or names.

Kept apart from :mod:`mailhat_nb.analysis.frames` because it needs neither pandas nor
pyarrow: a sync of a hundred new messages should not pay their import.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from typing import Final

FOLDER_ROLES: Final = ("inbox", "sent", "drafts", "trash", "junk", "all", "archive", "")

_SPECIAL_USE: Final[dict[str, str]] = {
    "\\inbox": "inbox",
    "\\sent": "sent",
    "\\drafts": "drafts",
    "\\trash": "trash",
    "\\junk": "junk",
    "\\spam": "junk",
    "\\all": "all",
    "\\allmail": "all",
    "\\archive": "archive",
}

# Leaf folder names by role: IMAP defaults of common servers and clients
# (Dovecot/cPanel, Outlook/Exchange, Gmail, Thunderbird, Apple Mail) in the
# languages they localise to, plus the Enron / Lotus Notes export names.
# Compared case-folded, accents kept (both spellings listed where clients differ).
_ROLE_NAMES: Final[dict[str, tuple[str, ...]]] = {
    "inbox": ("inbox", "notes_inbox", "posteingang", "boîte de réception",
              "bandeja de entrada", "posta in arrivo", "postvak in", "inkorgen",
              "входящие", "收件箱", "受信トレイ"),
    "sent": ("sent", "sent items", "sent mail", "sent messages", "sent-mail", "sent_items",
             "_sent_mail", "sent_mail", "sentmail", "gesendet", "gesendete objekte",
             "gesendete elemente", "envoyés", "envoyes", "éléments envoyés",
             "messages envoyés", "enviados", "elementos enviados", "itens enviados",
             "enviadas", "posta inviata", "inviati", "elementi inviati", "verzonden",
             "verzonden items", "skickat", "skickade objekt", "sendt", "sendte elementer",
             "sendte", "lähetetyt", "wysłane", "elementy wysłane", "odeslané", "odoslané",
             "elküldött elemek", "gönderilmiş öğeler", "отправленные", "已发送",
             "已发送邮件", "寄件備份", "送信済み", "送信済みアイテム", "보낸편지함"),
    "drafts": ("drafts", "draft", "entwürfe", "brouillons", "borradores", "rascunhos",
               "bozze", "concepten", "utkast", "kladder", "luonnokset", "kopie robocze",
               "koncepty", "piszkozatok", "taslaklar", "черновики", "草稿", "下書き",
               "임시보관함"),
    "trash": ("trash", "deleted items", "deleted messages", "deleted", "deleted_items",
              "bin", "papierkorb", "gelöschte objekte", "gelöschte elemente", "corbeille",
              "éléments supprimés", "papelera", "elementos eliminados", "lixeira",
              "itens excluídos", "cestino", "posta eliminata", "elementi eliminati",
              "prullenbak", "verwijderde items", "papperskorgen", "borttagna objekt",
              "papirkurv", "slettede elementer", "roskakori", "kosz", "elementy usunięte",
              "koš", "корзина", "удаленные", "удалённые", "已删除", "已刪除", "ゴミ箱",
              "휴지통"),
    "junk": ("junk", "junk e-mail", "junk email", "junk mail", "spam", "bulk mail",
             "junk-e-mail", "spamverdacht", "courrier indésirable", "indésirables",
             "correo no deseado", "lixo eletrônico", "posta indesiderata",
             "ongewenste e-mail", "skräppost", "søppelpost", "uønsket e-post", "roskaposti",
             "спам", "垃圾邮件", "迷惑メール"),
    "all": ("all mail", "all_documents", "alle nachrichten", "tous les messages",
            "todos", "tutti i messaggi", "alle e-mail", "вся почта", "所有邮件",
            "すべてのメール"),
    "archive": ("archive", "archives", "archiv", "archivio", "archivo", "arquivo",
                "archief", "arkiv", "arkisto", "archiwum", "архив", "存档", "アーカイブ"),
}  # fmt: skip
_NAME_TO_ROLE: Final[dict[str, str]] = {
    unicodedata.normalize("NFC", name).casefold(): role
    for role, names in _ROLE_NAMES.items()
    for name in names
}
_SEPARATORS: Final = re.compile(r"[/.\\]")


def folder_role(name: str, special_use: Iterable[str | bytes] = ()) -> str:
    r"""The role of a folder: ``inbox|sent|drafts|trash|junk|all|archive`` or ``""``.

    Parameters
    ----------
    name
        Folder name as the source gives it (decoded from modified UTF-7):
        ``INBOX``, ``INBOX.Sent``, ``[Gmail]/Sent Mail``, ``Gesendete Objekte``,
        Enron's ``sent_items`` / ``_sent_mail``.
    special_use
        RFC 6154 flags from LIST (``\Sent``, ``b"\\Junk"`` ...). They win
        over the name: a server that says ``\Sent`` knows, whatever the
        folder is called in the user's language.

    Notes
    -----
    By name, only the last component counts (``INBOX.Sent`` -> ``Sent``), so a
    sub-folder such as ``Sent/2019`` has no role: its messages are still the
    user's, but nothing here can know that.
    """
    for flag in special_use:
        text = flag.decode("ascii", "replace") if isinstance(flag, bytes) else str(flag)
        role = _SPECIAL_USE.get(text.strip().lower())
        if role is not None:
            return role
    full = unicodedata.normalize("NFC", name).strip().casefold()
    return _NAME_TO_ROLE.get(full) or _NAME_TO_ROLE.get(_SEPARATORS.split(full)[-1].strip(), "")
