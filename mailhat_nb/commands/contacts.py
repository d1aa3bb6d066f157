"""``mailhat contacts``: volume per contact from the store (``--self``, ``--exclude``).

A store of one account (or ``--account``) gives that account's view; a store
of several accounts gives the team view (``docs/team.md``): each external
contact once, with ``owner`` and per-account counts, and ``--internal`` for
the mail between teammates.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from mailhat_nb.checks import check_store_arg
from mailhat_nb.errors import UsageError

if TYPE_CHECKING:  # every `mailhat` command registers this one: pandas only when it runs
    import pandas as pd

    from mailhat_nb.analysis.engines import Engine

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
    parser.add_argument("--self", dest="self_addrs", nargs="+", default=[],
                        metavar="[ACCOUNT:]ADDR",
                        help="more addresses of yours (old addresses, aliases); in the team "
                        "view say whose: ACCOUNT:ADDR")
    parser.add_argument("--exclude", nargs="+", default=[], metavar="ADDR",
                        help="addresses found as yours that are not (an assistant who sends "
                        "from your Sent folder, a shared mailbox): counted as contacts")
    parser.add_argument("--account", default=None,
                        help="only this account of the store (default: all of them: with "
                        "several, the team view, each message once, with each contact's "
                        "owner)")
    parser.add_argument("--internal", action="store_true",
                        help="team view: who writes to whom inside the team (messages per "
                        "sender and recipient account) instead of the contacts")
    parser.add_argument("--top", type=int, default=None, metavar="N",
                        help=f"only the N busiest contacts (default: all for --json/--csv, "
                        f"{TABLE_TOP} for the table)")
    parser.add_argument("--engine", choices=["auto", "pandas", "duckdb", "spark"],
                        default="auto",
                        help="pandas (in memory), duckdb (out of core, bounded memory) or spark "
                        "(a cluster); auto: duckdb from 100,000 stored rows, else pandas")
    parser.add_argument("--spark-master", default=None, metavar="URL",
                        help="with --engine spark: the cluster's master (spark://host:7077); "
                        "default local[*]. The store must be on storage every executor reads")
    fmt = parser.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true",
                     help="print a JSON list of {contact, name, sent, received, total, "
                     "first, last} (dates ISO-8601); the team view adds owner and "
                     "accounts: {ACCOUNT: {sent, received}}")
    fmt.add_argument("--csv", action="store_true", help="print CSV with the same columns")
    parser.set_defaults(func=_run)


def _check_store(given: str, account: str | None) -> Path:
    """The store's path, or a usage error that says why there is nothing to read.

    "no contacts" is an answer about the mail; a directory that is not a
    store, or an account it does not hold, is a mistake in the command and
    must not look like an empty mailbox.
    """
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
    return store


def _self_args(given: list[str], team: bool, accounts: list[str],
               account: str | None) -> dict[str, list[str]]:
    """``--self`` values per account: ``ACCOUNT:ADDR``, or a bare address in one account's view.

    An address cannot hold an unquoted ``:``, so the last one splits. In the
    team view a bare address is refused: whose it is changes who sent what.
    """
    from mailhat_nb.analysis.addresses import check_addresses

    out: dict[str, list[str]] = {}
    for value in given:
        whose, colon, address = value.rpartition(":")
        if not colon:
            if team:
                raise UsageError(f"--self {value!r}: the store holds several accounts; say "
                                 "whose address it is with ACCOUNT:ADDR (e.g. "
                                 f"{accounts[0]}:{value.strip()}), or use --account")
            out.setdefault(account or "", []).extend(check_addresses([value], "--self"))
            continue
        known = {a.casefold(): a for a in accounts}
        if whose.strip().casefold() not in known:
            raise UsageError(f"--self {value!r}: no account {whose.strip()!r} in the store; "
                             f"it holds: {', '.join(accounts)}")
        owner = known[whose.strip().casefold()]
        if account is not None and owner.casefold() != account.casefold():
            raise UsageError(f"--self {value!r} names another account than --account {account}")
        out.setdefault(owner, []).extend(check_addresses([address], "--self"))
    return out


def _day(values: pd.Series) -> pd.Series:
    days: pd.Series = values.dt.strftime("%Y-%m-%d").fillna("")
    return days


def _columns(rows: list[list[str]], header: list[str], limits: list[int],
             right: set[int]) -> list[str]:
    """Rows as aligned text columns, each at most its limit wide."""
    widths = [min(max([len(header[i]), *(len(r[i]) for r in rows)]), limits[i])
              for i in range(len(header))]
    return [" ".join(f"{c[:w]:>{w}}" if i in right else f"{c[:w]:<{w}}"
                     for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()
            for cells in [header, *rows]]


def _table(people: pd.DataFrame) -> list[str]:
    if people.empty:
        return ["no contacts"]
    header = ["contact", "name", "sent", "recv", "total", "first", "last"]
    cols = [people["contact"].astype("str"), people["name"].astype("str").fillna(""),
            people["sent"].astype("str"), people["received"].astype("str"),
            people["total"].astype("str"), _day(people["first"]), _day(people["last"])]
    if "owner" in people.columns:
        header.append("owner")
        cols.append(people["owner"].astype("str"))
    rows = [list(cells) for cells in zip(*(c.tolist() for c in cols), strict=True)]
    return _columns(rows, header, [40, 24, 6, 6, 6, 10, 10, 40], right={2, 3, 4})


def _internal_table(inside: pd.DataFrame) -> list[str]:
    if inside.empty:
        return ["no mail between teammates"]
    rows = [[str(f), str(t), str(n), a, b] for f, t, n, a, b in zip(
        inside["from_account"], inside["to_account"], inside["messages"],
        _day(inside["first"]), _day(inside["last"]), strict=True)]
    return _columns(rows, ["from", "to", "messages", "first", "last"], [40, 40, 8, 10, 10],
                    right={2})


def _identity_line(me: pd.DataFrame, team: bool) -> str:
    def listed(table: pd.DataFrame) -> str:
        return ", ".join(f"{a} ({s})" for a, s in zip(table["address"], table["sources"],
                                                      strict=True)) or "(none)"

    if not team:
        return "self: " + listed(me)
    parts = [f"{acct}: {listed(rows)}" for acct, rows in me.groupby("account", sort=True)]
    return f"team of {len(parts)} accounts: " + "; ".join(parts)


def _run(args: argparse.Namespace) -> int:
    from mailhat_nb.analysis.addresses import check_addresses
    from mailhat_nb.analysis.engines import choose_engine
    from mailhat_nb.contacts import team_records, to_csv, to_records
    from mailhat_nb.sync.store import Store

    if args.top is not None and args.top < 1:
        raise UsageError("--top must be at least 1")
    if args.spark_master and args.engine != "spark":
        raise UsageError("--spark-master goes with --engine spark")
    # Checked before reading the store: a typo in --self would change every count.
    not_mine = check_addresses(args.exclude, "--exclude")
    store = _check_store(args.store, args.account)
    held = Store(store).accounts()
    team = args.account is None and len(held) > 1
    if args.internal and not team:
        raise UsageError("--internal is the mail between teammates: it needs a store of "
                         "several accounts, without --account")
    mine = _self_args(args.self_addrs, team, held, args.account)
    top = args.top if args.top is not None else (None if args.json or args.csv else TABLE_TOP)
    engine = choose_engine(store, args.engine, None if args.account is None else [args.account])
    if engine == "pandas":
        me, result, per = _pandas(store, args, team, mine, not_mine)
    else:
        me, result, per = _sql(store, engine, args, team, mine, not_mine)
    result = result if top is None else result.head(top)
    lines = _internal_table(result) if args.internal else _table(result)
    if args.json:
        records = to_records(result) if per is None else team_records(result, per)
        print(json.dumps(records, indent=2, ensure_ascii=False))
    elif args.csv:
        sys.stdout.write(to_csv(result) or "")
    else:
        print("\n".join([_identity_line(me, team=team), *lines]))
    return 0


Tables = tuple["pd.DataFrame", "pd.DataFrame", "pd.DataFrame | None"]


def _pandas(store: Path, args: argparse.Namespace, team: bool, mine: dict[str, list[str]],
            not_mine: list[str]) -> Tables:
    """(self table, contacts or internal mail, per-account counts) from the pandas frame."""
    from mailhat_nb.analysis.load import read_messages
    from mailhat_nb.contacts import (
        contacts,
        contacts_by_account,
        internal_mail,
        own_addresses,
        team_contacts,
        team_identity,
        team_messages,
    )

    frame = read_messages(store, account=args.account)
    if not team:
        me = own_addresses(frame, extra=[a for v in mine.values() for a in v],
                           exclude=not_mine)
        return me, contacts(frame, me), None
    me = team_identity(frame, extra=mine, exclude=not_mine)
    msgs = team_messages(frame)
    if args.internal:
        return me, internal_mail(msgs, me), None
    per = contacts_by_account(msgs, me)
    return me, team_contacts(msgs, me, by_account=per), per


def _sql(store: Path, engine: Engine, args: argparse.Namespace, team: bool,
         mine: dict[str, list[str]], not_mine: list[str]) -> Tables:
    """The same tables from DuckDB or Spark (``mailhat_nb.analysis.engines``)."""
    from mailhat_nb.analysis.engines import open_analysis

    with open_analysis(store, engine, spark_master=args.spark_master,
                       accounts=None if args.account is None else [args.account],
                       extra=mine, exclude=not_mine) as analysis:
        me = analysis.own_addresses()
        if not team:
            return me, analysis.contacts(), None
        if args.internal:
            return me, analysis.internal_mail(), None
        per = analysis.contacts_by_account()
        return me, analysis.team_contacts(), per
