"""Correspondence analysis: the one module notebooks import.

A thin facade over :mod:`mailhat_nb.analysis`: the identity, alias,
duplicate-rule, metrics, data-health and export functions under one name;
the charts are in :mod:`mailhat_nb.analysis.charts`. Data passes in
and out of functions (no hidden state), so each notebook cell is one call::

    from mailhat_nb import contacts as ca
    from mailhat_nb.analysis import charts
    from mailhat_nb.analysis.load import read_messages

    msgs = read_messages(store)                      # the sync's Parquet store
    me = ca.own_addresses(msgs, extra=["me@old.example"])   # who is "self", and why
    aliases = ca.suggest_aliases(msgs, me)           # the user ticks `accept`
    msgs = ca.apply_aliases(msgs, aliases)           # only accepted rows merge
    uniq = ca.unique_messages(msgs)                  # duplicate copies counted once
    people = ca.contacts(uniq, me)                   # contact, name, sent, received, ...
    charts.top_contacts_chart(people, 15)
    charts.volume_chart(ca.volume(uniq, me, "M"), names=people)
    charts.activity_heatmap(ca.activity(uniq, me, direction="sent"))
    charts.response_time_chart(ca.response_times(uniq, me))
    charts.data_health_chart(ca.data_health(msgs, server_counts, unique=uniq))
    ca.export(people, "contacts.csv")                # or .parquet / .json

A store of several accounts is a team (``docs/team.md``)::

    who = ca.team_identity(msgs)                     # each account's own addresses
    team = ca.team_messages(msgs)                    # one row per message of the team
    people = ca.team_contacts(team, who)             # ... plus owner
    per = ca.contacts_by_account(team, who)          # contact, account, sent, received
    inside = ca.internal_mail(team, who)             # who writes to whom inside the team

The counting rules are stated in :mod:`mailhat_nb.analysis.metrics` (what
``sent``/``received`` count) and :mod:`mailhat_nb.analysis.dedupe` (the
duplicate rule).
"""

from mailhat_nb.analysis.aliases import apply_aliases, suggest_aliases
from mailhat_nb.analysis.dedupe import duplicate_groups, unique_messages
from mailhat_nb.analysis.export import export, team_records, to_csv, to_parquet, to_records
from mailhat_nb.analysis.health import data_health
from mailhat_nb.analysis.identity import by_domain, is_sent_folder, own_addresses, team_identity
from mailhat_nb.analysis.metrics import (
    activity,
    contacts,
    response_histogram,
    response_medians,
    response_times,
    top_contacts,
    volume,
)
from mailhat_nb.analysis.team import (
    contacts_by_account,
    internal_mail,
    team_contacts,
    team_messages,
)

__all__ = [
    "activity",
    "apply_aliases",
    "by_domain",
    "contacts",
    "contacts_by_account",
    "data_health",
    "duplicate_groups",
    "export",
    "internal_mail",
    "is_sent_folder",
    "own_addresses",
    "response_histogram",
    "response_medians",
    "response_times",
    "suggest_aliases",
    "team_contacts",
    "team_identity",
    "team_messages",
    "team_records",
    "to_csv",
    "to_parquet",
    "to_records",
    "top_contacts",
    "unique_messages",
    "volume",
]
