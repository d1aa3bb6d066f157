"""DuckDB and Spark give the pandas path's numbers, row by row.

The pandas functions (:mod:`mailhat_nb.contacts`) are the reference. Each
engine analyses the same store (real Enron mailboxes imported with
``mailhat import``, and a synthetic team store from
``benchmarks/synthetic_store.py``) and every frame must be equal: the self
table, contacts, volume, activity, response times and data health.
Spark starts once per session (it takes tens of seconds).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest

from mailhat_nb import contacts as ca
from mailhat_nb.analysis.engines import AUTO_DUCKDB_ROWS, choose_engine, stored_rows
from mailhat_nb.analysis.engines.duck import DuckBackend, memory_for
from mailhat_nb.analysis.engines.run import Analysis, Backend
from mailhat_nb.analysis.load import read_messages
from mailhat_nb.errors import UsageError
from mailhat_nb.sync.importer import import_source
from mailhat_nb.sync.schema import DERIVED_COLUMNS, REPEATS_COLUMN
from mailhat_nb.sync.store import uidvalidity_events

ROOT = Path(__file__).resolve().parents[1]
ENRON = ["cuilla-m", "dean-c", "delainey-d"]
RESPONSE_ORDER = ["answered", "asked", "contact", "replier"]


@pytest.fixture(scope="session")
def enron_store(tmp_path_factory: pytest.TempPathFactory, corpus: Path) -> Path:
    """Three Enron mailboxes imported into one store, as `mailhat import` does."""
    store = tmp_path_factory.mktemp("enron") / "store"
    for person in ENRON:
        import_source("maildir", corpus / "enron" / person, store, account=person)
    return store


@pytest.fixture(scope="session")
def synthetic_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 150,000-row team store of four accounts (copies, threads, internal mail)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from synthetic_store import generate  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    store = tmp_path_factory.mktemp("synthetic") / "store"
    generate(store, 150_000, accounts=4, seed=11, chunk_rows=60_000)
    return store


def pandas_results(store: Path, account: str | None) -> dict[str, Any]:
    """Every metric the reference way: the store as one frame, then the pandas functions.

    On a store of several accounts (no ``account``) that is the team view.
    """
    frame = read_messages(store, account=account)
    me = ca.own_addresses(frame)
    people = ca.contacts(frame, me)
    chosen = list(people["contact"].head(6))
    team: dict[str, Any] = {}
    if "account" in me.columns:
        msgs = ca.team_messages(frame)
        per = ca.contacts_by_account(msgs, me)
        team = {"team_contacts": ca.team_contacts(msgs, me, by_account=per),
                "by_account": per, "internal": ca.internal_mail(msgs, me)}
    return {
        **team,
        "me": me,
        "contacts": people,
        "volume": ca.volume(frame, me, "M", contacts=chosen),
        "volume_weeks": ca.volume(frame, me, "W", contacts=chosen),
        "activity": ca.activity(frame),
        "activity_sent": ca.activity(frame, me, direction="sent"),
        "responses": ca.response_times(frame, me),
        "response_histogram": ca.response_histogram(ca.response_times(frame, me)),
        "health": ca.data_health(frame, uidvalidity_events=uidvalidity_events(store)),
    }


def engine_results(backend: Backend, store: Path, account: str | None) -> dict[str, Any]:
    with Analysis(backend, store, accounts=None if account is None else [account]) as an:
        people = an.contacts()
        chosen = list(people["contact"].head(6))
        team: dict[str, Any] = {}
        if an.team:
            team = {"team_contacts": an.team_contacts(), "by_account": an.contacts_by_account(),
                    "internal": an.internal_mail()}
        return {
            **team,
            "me": an.own_addresses(),
            "contacts": people,
            "volume": an.volume(chosen, "M"),
            "volume_weeks": an.volume(chosen, "W"),
            "activity": an.activity(),
            "activity_sent": an.activity("sent"),
            "responses": an.response_times(),
            "response_histogram": an.response_histogram(),
            "health": an.data_health(uidvalidity_events=uidvalidity_events(store)),
        }


def assert_same(want: dict[str, Any], got: dict[str, Any]) -> None:
    """Every frame equal (values, dtypes, order; volume and replies compared sorted)."""
    for name in ("volume", "volume_weeks"):
        for res in (want, got):
            attrs = res[name].attrs
            res[name] = res[name].sort_values(["period", "contact"], ignore_index=True)
            res[name].attrs = attrs
    for res in (want, got):
        res["responses"] = res["responses"].sort_values(RESPONSE_ORDER, ignore_index=True)
    assert set(want) == set(got)
    for name, frame in want.items():
        pd.testing.assert_frame_equal(got[name], frame, obj=name)
        assert got[name].attrs == frame.attrs, name
    assert len(want["contacts"]) > 20


@pytest.mark.parametrize("account", [*ENRON, None])
def test_duckdb_equals_pandas_on_enron(enron_store: Path, account: str | None) -> None:
    assert_same(pandas_results(enron_store, account), engine_results(
        DuckBackend(memory_limit="256MB", threads=2), enron_store, account))


@pytest.mark.slow
def test_duckdb_equals_pandas_on_a_synthetic_team_store(synthetic_store: Path) -> None:
    want = pandas_results(synthetic_store, None)
    # A small memory limit: the work spills to disk rather than failing.
    got = engine_results(DuckBackend(memory_limit="128MB", threads=2), synthetic_store, None)
    assert_same(want, got)
    assert want["health"]["duplicates"].sum() > 0      # copies across folders were found
    assert len(want["responses"]) > 1000               # threads were followed
    assert (want["contacts"]["sent"] > 0).any()


@pytest.mark.slow
def test_duckdb_equals_pandas_for_one_account_of_the_team(synthetic_store: Path) -> None:
    account = sorted(ca.own_addresses(read_messages(synthetic_store))["address"])[0]
    assert_same(pandas_results(synthetic_store, account), engine_results(
        DuckBackend(threads=2), synthetic_store, account))


def test_a_team_too_big_for_masks_gives_the_same_frames(enron_store: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Above MASK_ACCOUNTS accounts, who holds a message is a table (``held``), not a mask."""
    from mailhat_nb.analysis.engines import run

    monkeypatch.setattr(run, "MASK_ACCOUNTS", len(ENRON) - 1)
    backend = DuckBackend()
    got = engine_results(backend, enron_store, None)
    assert_same(pandas_results(enron_store, None), got)


def _mbox(messages: list[tuple[str, str, str, str]]) -> str:
    """An mbox of (Message-ID, From, Subject, Date) messages to one address."""
    return "".join(
        f"From {sender} Mon Jan  1 00:00:00 2024\nMessage-ID: <{mid}>\nFrom: {sender}\n"
        f"To: me@team.test\nSubject: {subject}\nDate: {date}\n\nbody\n\n"
        for mid, sender, subject, date in messages)


def test_a_chain_of_copies_needs_a_second_pass_and_is_one_message(tmp_path: Path) -> None:
    """A and B share content, B and C an ID, C and D content: one message, not two.

    The first pass of the labels leaves D apart from A, B and C (D's content
    key still holds two labels), so the engine must propagate again.
    """
    one = "Mon, 1 Jan 2024 10:00:00 +0000"
    two = "Mon, 1 Jan 2024 11:00:00 +0000"
    mbox = tmp_path / "inbox.mbox"
    mbox.write_text(_mbox([("a@x.test", "ann@x.test", "Plan", one),
                           ("b@x.test", "ann@x.test", "Plan", one),
                           ("b@x.test", "bob@y.test", "Re: Plan", two),
                           ("d@x.test", "bob@y.test", "Re: Plan", two),
                           ("e@x.test", "cy@z.test", "Other", two)]))
    store = tmp_path / "store"
    import_source("mbox", mbox, store, account="me@team.test")
    frame = read_messages(store)
    me = ca.own_addresses(frame)
    with Analysis(DuckBackend(), store) as an:
        got, health = an.contacts(), an.data_health()
    want = ca.contacts(frame, me)
    pd.testing.assert_frame_equal(got, want)
    assert int(want["received"].sum()) == 2          # the chain, and the other message
    pd.testing.assert_frame_equal(health, ca.data_health(frame))
    assert int(health["duplicates"].sum()) == 4


def written_before_the_keys(store: Path, copy: Path, every: int = 1,
                            columns: tuple[str, ...] = DERIVED_COLUMNS) -> Path:
    """A copy of ``store`` whose every ``every``-th part lacks ``columns`` (written before them)."""
    shutil.copytree(store, copy)
    for i, part in enumerate(sorted(copy.glob("account=*/folder=*/*.parquet"))):
        if i % every == 0:
            pq.write_table(pq.read_table(part).drop_columns(list(columns)), part)
    return copy


@pytest.mark.parametrize(("every", "columns", "read"), [
    (1, DERIVED_COLUMNS, (False, False)),      # every part written before the keys
    (2, DERIVED_COLUMNS, (False, False)),      # half of them
    (1, (REPEATS_COLUMN,), (True, False)),     # the keys, but not the flag of repeats
])
def test_a_store_written_before_the_keys_gives_the_same_frames(
        enron_store: Path, tmp_path: Path, every: int, columns: tuple[str, ...],
        read: tuple[bool, bool]) -> None:
    """Parts without the stored keys are hashed by the engine, by the same rule.

    Enron's own mail names an address in To and Cc often enough that the
    flagged lists are made distinct in the stored store, and every list is
    searched in the copies.
    """
    repeated = sum(pq.read_table(p, columns=[REPEATS_COLUMN])[REPEATS_COLUMN].to_numpy().sum()
                   for p in enron_store.glob("account=*/folder=*/*.parquet"))
    assert repeated > 100
    old = written_before_the_keys(enron_store, tmp_path / "store", every, columns)
    with Analysis(DuckBackend(), enron_store) as stored, Analysis(DuckBackend(), old) as hashed:
        assert (stored.q.keyed, stored.q.repeats) == (True, True)
        assert (hashed.q.keyed, hashed.q.repeats) == read
    assert_same(engine_results(DuckBackend(memory_limit="256MB", threads=2), enron_store, None),
                engine_results(DuckBackend(memory_limit="256MB", threads=2), old, None))


def test_retired_rows_and_temporary_files_are_not_read(enron_store: Path,
                                                       tmp_path: Path) -> None:
    """``_retired/`` and ``_tmp-*`` files are not data (DuckDB skips no ``_`` path itself)."""
    store = tmp_path / "store"
    shutil.copytree(enron_store / f"account={ENRON[0]}", store / f"account={ENRON[0]}")
    before = engine_results(DuckBackend(), store, None)["contacts"]
    part = next(store.glob("account=*/folder=*/*.parquet"))
    retired = store / "_retired" / part.parent.parent.name / part.parent.name / "v1-x"
    retired.mkdir(parents=True)
    shutil.copy(part, retired / part.name)
    shutil.copy(part, part.parent / f"_tmp-1-{part.name}.tmp")
    pd.testing.assert_frame_equal(engine_results(DuckBackend(), store, None)["contacts"],
                                  before)


def test_auto_picks_duckdb_for_big_stores_only(enron_store: Path) -> None:
    rows = stored_rows(enron_store)
    assert 0 < rows < AUTO_DUCKDB_ROWS
    assert choose_engine(enron_store, "auto") == "pandas"
    assert choose_engine(enron_store, "spark") == "spark"
    with pytest.raises(UsageError, match="unknown engine"):
        choose_engine(enron_store, "polars")


def test_duckdb_memory_follows_the_store_within_bounds() -> None:
    assert memory_for(0) == "256MB"
    assert memory_for(1_000_000) == "256MB"
    assert memory_for(5_000_000) == "476MB"
    assert memory_for(10_000_000) == "768MB"
    assert memory_for(10**9) == "768MB"
    sizes = [int(memory_for(rows)[:-2]) for rows in range(0, 20_000_000, 250_000)]
    assert sizes == sorted(sizes)


def _contacts_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mailhat_nb.cli", "contacts", *args],
                          capture_output=True, text=True, check=False, timeout=600)


def test_cli_engines_print_the_same_json(enron_store: Path) -> None:
    runs = {engine: _contacts_cli("--store", str(enron_store), "--account", ENRON[1],
                                  "--engine", engine, "--json")
            for engine in ("pandas", "duckdb")}
    for engine, run in runs.items():
        assert run.returncode == 0, (engine, run.stderr)
    assert json.loads(runs["duckdb"].stdout) == json.loads(runs["pandas"].stdout)
    assert len(json.loads(runs["pandas"].stdout)) > 20


def test_cli_spark_master_needs_the_spark_engine(enron_store: Path) -> None:
    run = _contacts_cli("--store", str(enron_store), "--engine", "duckdb",
                        "--spark-master", "spark://example.invalid:7077")
    assert run.returncode == 2
    assert "--engine spark" in run.stderr


# --------------------------------------------------------------------------- Spark


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """One local Spark for the whole session (starting it takes tens of seconds)."""
    pytest.importorskip("pyspark", reason="pyspark is the [spark] extra (make test installs it)")
    if shutil.which("java") is None:
        pytest.skip("no Java runtime (make test installs openjdk-17-jre-headless)")
    from mailhat_nb.analysis.engines.spark import spark_session

    session = spark_session("local[2]")
    yield session
    session.stop()


@pytest.mark.slow
def test_spark_equals_pandas_on_enron(spark: Any, enron_store: Path, tmp_path: Path) -> None:
    """On the store as written (the keys read), and half written before them (hashed)."""
    from mailhat_nb.analysis.engines.spark import SparkBackend

    want = pandas_results(enron_store, None)
    assert_same(dict(want), engine_results(SparkBackend(spark), enron_store, None))
    old = written_before_the_keys(enron_store, tmp_path / "store", 2)
    assert_same(want, engine_results(SparkBackend(spark), old, None))
