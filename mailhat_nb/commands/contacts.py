"""``mailhat contacts``: volume per contact from the store (``--self``, ``--exclude``)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from mailhat_nb.checks import check_store_arg
from mailhat_nb.errors import UsageError

if TYPE_CHECKING:  # every `mailhat` command registers this one: pandas only when it runs
    import pandas as pd

TABLE_TOP = 20


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``mailhat contacts``."""
    parser = sub.add_parser(
        "contacts", help="volume per contact (sent vs received) from a synced store",
        description="Count, per contact, the messages you sent them (To or Cc) and the "
        "messages they sent, from the local store that `mailhat sync` or `mailhat import` "
        "filled. A message filed in several folders counts once. Your own addresses "
        "(the login, the From of your Sent folders, Delivered-To, and any --self) are "
        "never contacts.",
    )
    parser.add_argument("--store", required=True, metavar="DIR", help="the store directory")
    parser.add_argument("--self", dest="self_addrs", nargs="+", default=[], metavar="ADDR",
                        help="more addresses of yours (old addresses, aliases)")
    parser.add_argument("--exclude", nargs="+", default=[], metavar="ADDR",
                        help="addresses found as yours that are not (an assistant who sends "
                        "from your Sent folder, a shared mailbox): counted as contacts")
    parser.add_argument("--account", default=None,
                        help="only this account of the store (default: all of them)")
    parser.add_argument("--top", type=int, default=None, metavar="N",
                        help=f"only the N busiest contacts (default: all for --json/--csv, "
                        f"{TABLE_TOP} for the table)")
    fmt = parser.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true",
                     help="print a JSON list of {contact, name, sent, received, total, "
                     "first, last} (dates ISO-8601)")
    fmt.add_argument("--csv", action="store_true", help="print CSV with the same columns")
    parser.set_defaults(func=_run)


def _read(given: str, account: str | None) -> pd.DataFrame:
    """The store's messages, or a usage error that says why there are none.

    "no contacts" is an answer about the mail; a directory that is not a
    store, or an account it does not hold, is a mistake in the command and
    must not look like an empty mailbox.
    """
    from mailhat_nb.analysis.load import read_messages
    from mailhat_nb.sync.store import Store

    store = check_store_arg(given)
    if not store.is_dir():
        raise UsageError(f"no store at {store} (run `mailhat sync` or `mailhat import` first)")
    held = Store(store).accounts()
    if not held:
        raise UsageError(f"{store} holds no synced or imported account (is it the directory "
                         "given to `mailhat sync --store`?)")
    if account is not None and account.casefold() not in {a.casefold() for a in held}:
        raise UsageError(f"{store} holds no account {account!r}; it holds: {', '.join(held)}")
    frame: pd.DataFrame = read_messages(store, account=account)
    return frame


def _table(people: pd.DataFrame, me: pd.DataFrame) -> str:
    lines = ["self: " + (", ".join(
        f"{a} ({s})" for a, s in zip(me["address"], me["sources"], strict=True)) or "(none)")]
    if people.empty:
        return "\n".join([*lines, "no contacts"])
    shown = people.assign(
        name=people["name"].fillna(""),
        first=people["first"].dt.strftime("%Y-%m-%d").fillna(""),
        last=people["last"].dt.strftime("%Y-%m-%d").fillna(""),
    )
    width = min(max(int(shown["contact"].str.len().max()), 7), 40)
    name_w = min(max(int(shown["name"].str.len().max()), 4), 24)
    lines.append(f"{'contact':<{width}} {'name':<{name_w}} {'sent':>6} {'recv':>6} "
                 f"{'total':>6}  {'first':<10} {'last':<10}")
    for row in shown.itertuples(index=False):
        lines.append(
            f"{str(row.contact)[:width]:<{width}} {str(row.name)[:name_w]:<{name_w}} "
            f"{row.sent:>6} {row.received:>6} {row.total:>6}  {row.first:<10} {row.last:<10}"
        )
    return "\n".join(lines)


def _run(args: argparse.Namespace) -> int:
    from mailhat_nb.analysis.addresses import check_addresses
    from mailhat_nb.contacts import contacts, own_addresses, to_csv, to_records

    if args.top is not None and args.top < 1:
        raise UsageError("--top must be at least 1")
    # Checked before reading the store: a typo in --self would change every count.
    mine = check_addresses(args.self_addrs, "--self")
    not_mine = check_addresses(args.exclude, "--exclude")
    frame = _read(args.store, args.account)
    me = own_addresses(frame, extra=mine, exclude=not_mine)
    people = contacts(frame, me)
    top = args.top if args.top is not None else (None if args.json or args.csv else TABLE_TOP)
    if top is not None:
        people = people.head(top)
    if args.json:
        print(json.dumps(to_records(people), indent=2, ensure_ascii=False))
    elif args.csv:
        sys.stdout.write(to_csv(people) or "")
    else:
        print(_table(people, me))
    return 0
