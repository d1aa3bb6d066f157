"""The team view: a store of several accounts read as one team's correspondence.

A business's CRM records its correspondence across everyone on the team, so
the questions are the team's: which clients write to us most, who on the
team handles each, who writes to whom inside the team. The definitions are
written out in ``docs/team.md`` (the contract every engine follows); in
short:

* **Identity per account.** Each account's own addresses are found on its
  own rows (:func:`~mailhat_nb.analysis.identity.team_identity`); the team's
  addresses are their union, and an address outside it is a contact.
* **One message, one count.** The duplicate rule spans the team: the same
  message in two teammates' mailboxes is one message
  (:func:`team_messages`, which also records ``held_by``: whose mailboxes
  hold a copy).
* **Per account**: a message *received* from a contact counts for every
  account holding a copy; a message *sent* to a contact counts for the
  account(s) that sent it: the owners of its From address that hold a copy,
  else all of that address's owners. The ``owner`` of a contact is the
  account with the most messages with them.
* **Internal mail** (a teammate writing to a teammate) is nobody's contact:
  :func:`internal_mail` counts it per (sender account, recipient account).

The team's totals are :func:`~mailhat_nb.analysis.metrics.contacts` with the
team's addresses as self, on the team's distinct messages; so are the
team's charts (volume, activity, reply times): pass :func:`team_messages`
and the identity table to the single-account functions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from mailhat_nb.analysis.addresses import IntArray, explode_codes_raw
from mailhat_nb.analysis.dedupe import (
    dedupe_positions,
    first_last,
    require_columns,
    sorted_codes,
    take_rows,
)
from mailhat_nb.analysis.frames import LIST_DTYPE
from mailhat_nb.analysis.metrics import CONTACT_COLUMNS, Prepared, contacts_from, prepare
from mailhat_nb.errors import UsageError

TEAM_COLUMNS = [*CONTACT_COLUMNS, "owner"]
ACCOUNT_COLUMNS = ["contact", "account", "sent", "received", "total"]
INTERNAL_COLUMNS = ["from_account", "to_account", "messages", "first", "last"]


def team_messages(messages: pd.DataFrame) -> pd.DataFrame:
    """One row per distinct message of the team, with ``copies`` and ``held_by``.

    The duplicate rule across every account of the frame
    (:func:`~mailhat_nb.analysis.dedupe.unique_messages`), plus ``held_by``:
    the accounts whose mailboxes hold a copy, sorted. Every function of this
    module, and the single-account metrics, accept the result in place of the
    raw frame (and then do not de-duplicate again).

    Raises
    ------
    UsageError
        A frame of several accounts already de-duplicated without
        ``held_by``: whose mailboxes held each message is lost; pass the raw
        frame.
    """
    require_columns(messages, "account", "from_addr", "date")
    if "held_by" in messages.columns:
        return messages
    if "copies" in messages.columns:
        if messages["account"].nunique() > 1:
            raise UsageError("this frame is de-duplicated already, without held_by: pass the "
                             "raw messages (read_messages) to the team view")
        held = [[str(a)] for a in messages["account"]]
        return messages.assign(held_by=pd.Series(pa.array(held, LIST_DTYPE.pyarrow_dtype),
                                                 dtype=LIST_DTYPE, index=messages.index))
    labels, keep, counts = dedupe_positions(messages)
    out = take_rows(messages, keep)
    out["copies"] = counts
    out["held_by"] = pd.Series(_holders(messages, labels, keep), dtype=LIST_DTYPE,
                               index=out.index)
    return out


def _holders(messages: pd.DataFrame, labels: IntArray, keep: IntArray) -> pa.ListArray:
    """Per kept row, the sorted distinct accounts of its message's rows."""
    acct, names = sorted_codes(messages["account"].astype("str"))
    message_of_label = np.full(len(labels), -1, dtype=np.int64)
    message_of_label[labels[keep]] = np.arange(len(keep), dtype=np.int64)
    width = max(len(names), 1)
    pairs = np.unique(message_of_label[labels] * width + acct)  # sorted: message, account
    msg, acc = pairs // width, pairs % width
    offsets = np.searchsorted(msg, np.arange(len(keep) + 1))
    values = pa.array(names.to_numpy(dtype=object), pa.string()).take(pa.array(acc))
    return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), values)


# --------------------------------------------------------------------------- shared arrays


@dataclass(frozen=True)
class _Team:
    """The team's distinct messages as integer arrays (what every table here reads)."""

    prep: Prepared
    accounts: pd.Index                   # sorted account names
    held: tuple[IntArray, IntArray]      # (message, account): a copy is in its mailbox
    owners: tuple[IntArray, IntArray]    # (address code, account): an address of the account
    senders: tuple[IntArray, IntArray]   # (message, account): who sent a message of the team


def _identity(identity: pd.DataFrame) -> pd.DataFrame:
    if not isinstance(identity, pd.DataFrame) or not {"account", "address"} <= set(
            identity.columns):
        raise UsageError("the team view needs the identity table of team_identity() (its "
                         "account and address columns): a plain list of addresses cannot "
                         "say whose each one is")
    table = identity[["account", "address"]].dropna().astype("str")
    table = table.assign(address=table["address"].str.strip().str.lower())
    return table[table["address"] != ""].drop_duplicates(ignore_index=True)


def _team(messages: pd.DataFrame, identity: pd.DataFrame) -> _Team:
    ident = _identity(identity)
    uniq = team_messages(messages)
    prep = prepare(uniq, ident["address"])
    h_pos, h_codes, h_names = explode_codes_raw(uniq["held_by"])
    accounts = pd.Index(sorted(set(h_names.astype("str")) | set(ident["account"])), dtype="str")
    h_acct = np.asarray(accounts.get_indexer(h_names), dtype=np.int64)[h_codes]
    addr = np.asarray(prep.uniques.get_indexer(pd.Index(ident["address"])), dtype=np.int64)
    seen = addr >= 0  # an address of the team no message mentions counts for nothing
    o_addr = addr[seen]
    o_acct = np.asarray(accounts.get_indexer(pd.Index(ident["account"])), dtype=np.int64)[seen]

    # Who sent each message from the team: the owners of its From address
    # that hold a copy, else (their copy is gone) every owner of the address.
    msgs = np.flatnonzero(prep.from_self)
    _, c_msg, c_acct = _join((prep.from_codes[msgs], msgs), (o_addr, o_acct))
    width = max(len(accounts), 1)
    holds = np.isin(c_msg * width + c_acct, h_pos * width + h_acct)
    any_holds = np.zeros(len(uniq), dtype=bool)
    any_holds[c_msg[holds]] = True
    credited = holds | ~any_holds[c_msg]
    return _Team(prep=prep, accounts=accounts, held=(h_pos, h_acct), owners=(o_addr, o_acct),
                 senders=(c_msg[credited], c_acct[credited]))


def _join(left: tuple[IntArray, IntArray], right: tuple[IntArray, IntArray],
          ) -> tuple[IntArray, IntArray, IntArray]:
    """Join (key, a) with (key, b) on key: every (key, a, b)."""
    joined = pd.DataFrame({"k": left[0], "a": left[1]}).merge(
        pd.DataFrame({"k": right[0], "b": right[1]}), on="k")
    return (joined["k"].to_numpy(dtype=np.int64), joined["a"].to_numpy(dtype=np.int64),
            joined["b"].to_numpy(dtype=np.int64))


# --------------------------------------------------------------------------- tables


def _by_account(team: _Team) -> pd.DataFrame:
    prep, width = team.prep, max(len(team.accounts), 1)
    _, s_contact, s_acct = _join(prep.sent, team.senders)
    _, r_contact, r_acct = _join(prep.received, team.held)
    keys = np.concatenate([s_contact * width + s_acct, r_contact * width + r_acct])
    uk, inv = np.unique(keys, return_inverse=True)
    sent = np.bincount(inv[:len(s_contact)], minlength=len(uk))  # the sent pairs come first
    total = np.bincount(inv, minlength=len(uk))
    out = pd.DataFrame({
        "contact": pd.Series(prep.uniques.take(uk // width), dtype="str"),
        "account": pd.Series(team.accounts.take(uk % width), dtype="str"),
        "sent": sent, "received": total - sent, "total": total,
    })
    return out.sort_values(["contact", "account"], ignore_index=True)[ACCOUNT_COLUMNS]


def contacts_by_account(messages: pd.DataFrame, identity: pd.DataFrame) -> pd.DataFrame:
    """Each contact's messages with each account: ``contact, account, sent, received, total``.

    ``sent`` counts the contact's messages from the team that this account
    sent (its address is the From, and its mailbox holds a copy, or no
    owner's does); ``received`` the contact's messages to the team that this
    account's mailbox holds. One row per contact and account with at least
    one message, sorted by contact, then account. A message to two
    teammates counts once for the team and once for each of them, so the
    accounts' counts may add up to more than the team's.

    Parameters
    ----------
    messages
        The raw ``messages`` frame of the store (all accounts), or
        :func:`team_messages` of it.
    identity
        :func:`~mailhat_nb.analysis.identity.team_identity` of it.
    """
    return _by_account(_team(messages, identity))


def owners(by_account: pd.DataFrame) -> pd.Series:
    """Contact -> the account with the most messages with them (ties: more sent, then name).

    In contact order. Strings are ranked once (a code per distinct value, in
    order) and the rows ordered by integers: a team's table has a row per
    contact and account, a million at an organisation's scale.
    """
    contact, _ = pd.factorize(by_account["contact"], sort=True)
    account, _ = pd.factorize(by_account["account"], sort=True)
    order = np.lexsort((account, -by_account["sent"].to_numpy(dtype=np.int64),
                        -by_account["total"].to_numpy(dtype=np.int64), contact))
    first = order[np.diff(contact[order], prepend=-1) != 0]
    return pd.Series(by_account["account"].to_numpy()[first],
                     index=by_account["contact"].to_numpy()[first], dtype="str")


def team_contacts(messages: pd.DataFrame, identity: pd.DataFrame,
                  by_account: pd.DataFrame | None = None) -> pd.DataFrame:
    """The team's volume per contact: ``contact, name, sent, received, total, first, last, owner``.

    ``sent`` counts the team's distinct messages to the contact (from any
    teammate, the contact in To or Cc), ``received`` those from the contact,
    each message once however many teammates hold it; ``first``/``last``,
    ``name`` and the order are those of
    :func:`~mailhat_nb.analysis.metrics.contacts`. ``owner`` is the account
    with the most messages with the contact (:func:`contacts_by_account`'s
    ``total``), a tie going to the one that sent more, then to the first by
    name. Teammates are never contacts: their mail to each other is
    :func:`internal_mail`.

    Parameters
    ----------
    messages, identity
        As for :func:`contacts_by_account`.
    by_account
        :func:`contacts_by_account` of the same arguments, when already
        computed (saves computing it again for ``owner``).
    """
    team = _team(messages, identity)
    people = contacts_from(team.prep)
    table = _by_account(team) if by_account is None else by_account
    people["owner"] = people["contact"].map(owners(table)).astype("str")
    return people[TEAM_COLUMNS]


def internal_mail(messages: pd.DataFrame, identity: pd.DataFrame) -> pd.DataFrame:
    """Who writes to whom inside the team: ``from_account, to_account, messages, first, last``.

    A message from a teammate (the accounts that sent it, as for ``sent``)
    to a teammate (every account owning a recipient address in To or Cc)
    counts once for each such pair of different accounts: a note to oneself
    is not team mail. A message that also went to contacts counts there
    too. ``first``/``last`` are the earliest and latest plausible dates;
    most messages first, then by the account names.
    """
    team = _team(messages, identity)
    prep = team.prep
    inside = prep.from_self[prep.rcpt_pos] & prep.is_self[prep.rcpt_codes]
    _, msg, to_acct = _join((prep.rcpt_codes[inside], prep.rcpt_pos[inside]), team.owners)
    m2, from_acct, to2 = _join(team.senders, (msg, to_acct))
    width = max(len(team.accounts), 1)
    distinct = np.unique(np.stack([m2, from_acct * width + to2], axis=1), axis=0)
    msg, pair = distinct[:, 0], distinct[:, 1]
    keep = (pair // width) != (pair % width)
    msg, pair = msg[keep], pair[keep]
    pk, inv = np.unique(pair, return_inverse=True)
    first, last = first_last(inv, prep.dates[msg], len(pk))
    out = pd.DataFrame({
        "from_account": pd.Series(team.accounts.take(pk // width), dtype="str"),
        "to_account": pd.Series(team.accounts.take(pk % width), dtype="str"),
        "messages": np.bincount(inv, minlength=len(pk)).astype(np.int64),
        "first": first,
        "last": last,
    })
    return out.sort_values(["messages", "from_account", "to_account"],
                           ascending=[False, True, True], ignore_index=True)[INTERNAL_COLUMNS]
