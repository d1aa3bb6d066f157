"""Who is "self", and which domain is whose.

Questions every correspondence chart depends on, answered as tables a
person can read and correct, never silently:

* :func:`own_addresses`: the account's own addresses, each with the reason
  it counts as self (login, the From of sent mail, Delivered-To, the user).
  A Sent folder can hold an assistant's mail (Enron's ``delainey-d`` has
  ``kay.chapman@enron.com`` there): the table shows it, ``exclude`` drops it.
  It is the package's only rule for self: :func:`self_addresses` (the same
  rule as a set) is what the store's reader uses to set ``direction``.
* :func:`team_identity`: the same rule applied to each account of a store
  on its own rows (one account's login is never another's self); the team
  is the union (``docs/team.md``).
* which addresses are one person: :mod:`mailhat_nb.analysis.aliases`;
* :func:`by_domain`: contacts rolled up per domain.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import numpy.typing as npt
import pandas as pd

from mailhat_nb.analysis.addresses import (
    as_address_set,
    check_addresses,
    domain_of,
    explode_lists,
    factorize_addresses,
    is_address,
    normalise,
)
from mailhat_nb.analysis.dedupe import per_value
from mailhat_nb.errors import UsageError
from mailhat_nb.sync.folders import folder_role

#: Gmail labels that mark a message the user sent. Gmail files sent mail under
#: a label, not a folder: a Takeout mbox says ``Sent`` in ``X-Gmail-Labels``,
#: IMAP's ``X-GM-LABELS`` says ``\Sent`` (compared case-insensitively).
SENT_LABELS = frozenset({"sent", "\\sent"})

OWN_COLUMNS = ["address", "sources", "messages", "sent_folder_rows"]
TEAM_OWN_COLUMNS = ["account", *OWN_COLUMNS]


def is_sent_folder(messages: pd.DataFrame) -> pd.Series:
    r"""Return, per row, whether the row is filed as the account's sent mail.

    A row is sent mail when its folder is a Sent folder, or when it carries
    Gmail's ``Sent`` label:

    * ``folder_role == "sent"`` decides where the source recorded a role (IMAP
      SPECIAL-USE ``\Sent``, or the name rules of the sync and the imports);
    * where ``folder_role`` is empty or missing (a frame built by hand, an
      old store), the folder name decides, by the same rules the sync uses
      (:func:`mailhat_nb.sync.folders.folder_role`: ``Sent``, ``INBOX.Sent``,
      ``[Gmail]/Sent Mail``, ``Gesendete Objekte``, Enron's ``_sent_mail``...),
      so there is one list of Sent-folder names, not two that drift apart;
    * a label in :data:`SENT_LABELS` counts whatever the folder: a Takeout
      mbox, and a Gmail sync of ``\All``, have one folder for everything.

    Decided once per distinct folder name, role and label (a handful), not
    once per row.
    """
    sent = np.zeros(len(messages), dtype=bool)
    if "folder" in messages.columns:
        sent = per_value(messages["folder"],
                         lambda names: [folder_role(name) == "sent" for name in names])
    if "folder_role" in messages.columns:
        role = messages["folder_role"]
        known = per_value(role, lambda r: r.str.strip() != "")
        sent = np.where(known, per_value(role, lambda r: r.str.strip().str.lower() == "sent"), sent)
    if "labels" in messages.columns:
        pos, labels = explode_lists(messages["labels"])
        sent[pos[per_value(labels, lambda x: x.str.strip().str.lower().isin(SENT_LABELS))]] = True
    return pd.Series(sent, index=messages.index)


def own_addresses(
    messages: pd.DataFrame,
    *,
    login: str | Iterable[str] | None = None,
    extra: Iterable[str] = (),
    exclude: Iterable[str] = (),
) -> pd.DataFrame:
    """Return the account's own addresses ("self"), each with why it is self.

    This is the one definition of self (``DESIGN.md``: self is never a
    contact). The store's reader sets each row's ``direction`` from it
    (:func:`self_addresses`), and the contacts count against it, so a
    message a frame calls ``sent`` is always one whose sender the contacts
    treat as self. An address is self when it is:

    * the **login**, when the login is an address;
    * the **From of sent mail**: rows :func:`is_sent_folder` finds, i.e. a
      Sent folder by role or by name, or a message with Gmail's ``Sent`` label;
    * a **Delivered-To** address: the server stamped it on delivery into
      this mailbox, so it is an address of the account (an alias, a
      forwarding address) — unless it also wrote to the account from outside
      its sent mail: then it is a correspondent whose own mailbox forwarded
      the message (an auto-forward stamps both); Gmail's "mailing list x@y"
      lines are not read as addresses at all;
    * an address the **user** gives.

    Parameters
    ----------
    messages
        A ``messages`` frame.
    login
        The login address(es). Default: the frame's ``account`` values. A
        value that is not an address (a login such as ``jdoe``, an import
        named after its file) is not self.
    extra
        Addresses the user says are theirs (old addresses, aliases).
    exclude
        Addresses to drop even though a rule found them (an assistant who
        sends from the boss's Sent folder, a shared mailbox).

    Returns
    -------
    pandas.DataFrame
        ``address, sources, messages, sent_folder_rows``: ``sources`` names
        the rules that found the address (``login``, ``sent folder``,
        ``delivered-to``, ``user``); ``messages`` counts rows From it;
        ``sent_folder_rows`` how many of the sent-mail rows it sent, so
        a stranger in a Sent folder stands out. Pass the table (or its
        ``address`` column) to the metrics as ``self_addrs``.

    A frame of several accounts (a team's store) with no ``login`` gets each
    account's own addresses by this rule applied to that account's rows
    alone: :func:`team_identity`, with its ``account`` column.

    Raises
    ------
    UsageError
        When a value of ``extra`` or ``exclude`` is not an email address: a
        typo there would silently change every count. On a frame of several
        accounts, when ``extra`` is given: whose addresses they are is for
        :func:`team_identity` to be told.
    """
    if login is None and len(_accounts(messages)) > 1:
        if list(extra):
            raise UsageError("the messages hold several accounts: say whose the extra "
                             "addresses are, with team_identity(messages, extra={account: "
                             "[addresses]})")
        return team_identity(messages, exclude=exclude)
    user_given = check_addresses(extra, "self address")
    logins = (_accounts(messages) if login is None
              else [login] if isinstance(login, str) else list(login))
    # Count on integer codes: a million From values, a few thousand addresses.
    if "from_addr" in messages.columns:
        codes, senders = factorize_addresses(messages["from_addr"])
    else:
        codes, senders = np.full(len(messages), -1, dtype=np.int64), pd.Index([], dtype="str")
    sent_rows = is_sent_folder(messages).to_numpy(dtype=bool)
    ok = codes >= 0
    counts = pd.DataFrame({
        "sender": senders, "messages": np.bincount(codes[ok], minlength=len(senders)),
        "sent_rows": np.bincount(codes[ok & sent_rows], minlength=len(senders))})
    delivered: set[str] = set()
    wrote: set[str] = set()
    if "delivered_to" in messages.columns:
        core = core_addresses(logins, counts, user_given)
        wrote = set(senders[_senders_to(messages, codes, ok & ~sent_rows, core)])
        delivered = set(normalise(explode_lists(messages["delivered_to"])[1]).unique())
    return own_table(logins=logins, senders=counts, delivered=delivered, wrote=wrote,
                     extra=user_given, exclude=check_addresses(exclude, "excluded address"))


def core_addresses(logins: Iterable[str], senders: pd.DataFrame,
                   extra: Iterable[str]) -> frozenset[str]:
    """Self before Delivered-To is read: the login addresses, the From of sent mail, the user's.

    ``senders``: per sender address, ``sent_rows``, its rows that are sent
    mail. A Delivered-To address that wrote to these from outside the sent
    mail is a correspondent (see :func:`own_table`).
    """
    return (as_address_set([a for a in logins if is_address(a)])
            | as_address_set(senders.loc[senders["sent_rows"] > 0, "sender"])
            | as_address_set(list(extra)))


def own_table(*, logins: Iterable[str], senders: pd.DataFrame, delivered: Iterable[str],
              wrote: set[str], extra: Iterable[str], exclude: Iterable[str]) -> pd.DataFrame:
    """One account's self table from what its rows say: the rule of :func:`own_addresses`.

    The pandas path and the SQL engines both end here, so the rule is
    written once. ``senders``: per sender address, ``messages`` (its rows)
    and ``sent_rows`` (those that are sent mail); ``delivered``: the
    account's Delivered-To addresses; ``wrote``: the senders that wrote to
    its :func:`core_addresses` from outside its sent mail. A Delivered-To
    that also wrote *to* the account is a correspondent whose mailbox
    forwarded the message (an auto-forward leaves both addresses); an old
    address of the owner's writes to others, and stays self.
    """
    user = as_address_set(list(extra))
    found = {"login": as_address_set([a for a in logins if is_address(a)]),
             "sent folder": as_address_set(senders.loc[senders["sent_rows"] > 0, "sender"]),
             "user": user}
    core = found["login"] | found["sent folder"] | user   # core_addresses, from the sets above
    found["delivered-to"] = frozenset(a for a in as_address_set(list(delivered))
                                      if a in core or a not in wrote)
    order = ("login", "sent folder", "delivered-to", "user")
    addresses = sorted(set().union(*found.values()) - set(exclude))
    counts = senders.set_index("sender")
    table = pd.DataFrame({
        "address": pd.Series(addresses, dtype="str"),
        "sources": pd.Series([", ".join(s for s in order if a in found[s]) for a in addresses],
                             dtype="str"),
    })
    table["messages"] = table["address"].map(counts["messages"]).fillna(0).astype("int64")
    table["sent_folder_rows"] = (table["address"].map(counts["sent_rows"])
                                 .fillna(0).astype("int64"))
    table = table.sort_values(["sent_folder_rows", "messages", "address"],
                              ascending=[False, False, True], ignore_index=True)
    return table[OWN_COLUMNS]


def _accounts(messages: pd.DataFrame) -> list[str]:
    """The frame's distinct account names, sorted."""
    if "account" not in messages.columns:
        return []
    return sorted(str(a) for a in messages["account"].dropna().unique())


def team_identity(
    messages: pd.DataFrame,
    *,
    extra: Mapping[str, Iterable[str]] | None = None,
    exclude: Iterable[str] = (),
) -> pd.DataFrame:
    """Return each account's own addresses: :func:`own_addresses` per account, on its own rows.

    Each account's own addresses are its own (its login, the From of *its*
    sent mail, *its* Delivered-To, what the user adds for it): computed on
    that account's rows only, so a teammate's login or Sent folder never
    makes an address "self" for another account. The team is the union of
    the ``address`` column; ``docs/team.md`` says how the team view uses it.

    Parameters
    ----------
    messages
        A ``messages`` frame of one or more accounts.
    extra
        Per account (its name in the store, case-insensitive), addresses the
        user says are that account's.
    exclude
        Addresses to drop from every account (an assistant, a shared mailbox
        that should count as a contact).

    Returns
    -------
    pandas.DataFrame
        ``account, address, sources, messages, sent_folder_rows``: one row
        per account and address, accounts in sorted order, each account's
        rows ordered as :func:`own_addresses` orders them. An address two
        accounts share (a shared sending address) has a row for each.

    Raises
    ------
    UsageError
        An ``extra`` key that is not an account of the frame, or a value
        that is not an address.
    """
    names = _accounts(messages)
    given = {str(k).casefold(): list(v) for k, v in (extra or {}).items()}
    unknown = sorted(set(given) - {a.casefold() for a in names})
    if unknown:
        raise UsageError(f"no account {unknown[0]!r} in the messages; they hold: "
                         + (", ".join(names) or "none"))
    tables = []
    for name in names:
        rows = messages[(messages["account"] == name).to_numpy(dtype=bool)]
        own = own_addresses(rows, login=name, extra=given.get(name.casefold(), ()), exclude=exclude)
        tables.append(own.assign(account=name))
    # No account: the empty table, with the columns and dtypes of a full one.
    table = pd.concat(tables or [own_addresses(messages.iloc[:0], login=[]).assign(account="")],
                      ignore_index=True)
    table["account"] = table["account"].astype("str")
    return table[TEAM_OWN_COLUMNS]


def _senders_to(messages: pd.DataFrame, codes: npt.NDArray[np.int64],
                rows: npt.NDArray[np.bool_], addresses: frozenset[str]) -> npt.NDArray[np.int64]:
    """Sender codes of the ``rows`` whose To or Cc holds one of ``addresses``."""
    hit = np.zeros(len(messages), dtype=bool)
    for col in ("to_addrs", "cc_addrs"):
        if col in messages.columns:
            pos, vals = explode_lists(messages[col])
            hit[pos[normalise(vals).isin(list(addresses)).to_numpy(dtype=bool)]] = True
    return np.unique(codes[rows & hit])


def self_addresses(
    messages: pd.DataFrame,
    *,
    login: str | Iterable[str] | None = None,
    extra: Iterable[str] = (),
    exclude: Iterable[str] = (),
) -> frozenset[str]:
    """Return the account's own addresses as a set: :func:`own_addresses` without the why.

    What :func:`mailhat_nb.analysis.frames.add_direction` takes. Same parameters and
    rule as :func:`own_addresses` (it *is* that function), so ``direction``
    and the contacts can never disagree about who is self.
    """
    table = own_addresses(messages, login=login, extra=extra, exclude=exclude)
    return frozenset(table["address"].astype("str"))


# --------------------------------------------------------------------------- domains


def by_domain(contacts_frame: pd.DataFrame) -> pd.DataFrame:
    """Roll a contacts frame up per domain.

    Returns
    -------
    pandas.DataFrame
        ``domain, contacts, sent, received, total, first, last``, busiest
        first. ``sent`` is the sum over the domain's contacts, i.e. one count
        per (message, recipient): a message to three colleagues at one domain
        counts three, which is the domain's share of your attention.
    """
    c = contacts_frame.assign(domain=domain_of(contacts_frame["contact"]).fillna("(none)"))
    out = c.groupby("domain", as_index=False).agg(
        contacts=("contact", "nunique"), sent=("sent", "sum"), received=("received", "sum"),
        total=("total", "sum"), first=("first", "min"), last=("last", "max"),
    )
    return out.sort_values(["total", "domain"], ascending=[False, True], ignore_index=True)
