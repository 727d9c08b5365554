"""The record of a labeling project: one SQLite database in the project folder.

Everything a person gives or the library decides is kept here (images,
classes, rounds, queries, answers, settings); feature files beside it are a
cache that can be deleted at any time. The database runs in WAL mode and
every change (one answer, one import, one round of queries) is one
transaction, so a crash or ``kill -9`` at any moment loses no committed
answer and leaves no half-written round.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

#: Database file inside a project folder.
DB_NAME = "project.sqlite"

#: Label name of an answer that gives no class ("void / unsure"): stored as ``class_id`` NULL.
VOID = "void"

SCHEMA = """
CREATE TABLE IF NOT EXISTS settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL                 -- JSON
);
CREATE TABLE IF NOT EXISTS images (
    id      INTEGER PRIMARY KEY,
    path    TEXT NOT NULL UNIQUE,       -- relative to the images folder (settings.images_root)
    sha256  TEXT NOT NULL,              -- content hash of the file
    width   INTEGER NOT NULL,           -- original size in pixels
    height  INTEGER NOT NULL,
    added_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS classes (
    id     INTEGER PRIMARY KEY,         -- class id, 0-based, as in the masks
    name   TEXT NOT NULL UNIQUE,
    colour TEXT NOT NULL                -- '#rrggbb'
);
CREATE TABLE IF NOT EXISTS rounds (
    id         INTEGER PRIMARY KEY,     -- 0-based, in order (never deleted, so never reused)
    created_at TEXT NOT NULL,
    strategy   TEXT NOT NULL,
    budget     INTEGER NOT NULL,        -- pixels asked for
    trained_on INTEGER NOT NULL,        -- answers with a class the query's classifier saw
    seconds    REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS queries (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused (see _upgrade)
    image_id INTEGER NOT NULL REFERENCES images(id),
    y        INTEGER NOT NULL,          -- original-resolution row
    x        INTEGER NOT NULL,          -- original-resolution column
    round_id INTEGER NOT NULL REFERENCES rounds(id),
    strategy TEXT NOT NULL,
    score    REAL,                      -- eDALD score, NULL in round 0 (MaxHerding order)
    rank     INTEGER NOT NULL,          -- order within the round (0 = asked first)
    UNIQUE (image_id, y, x)
);
CREATE TABLE IF NOT EXISTS answers (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: an undo names an id (see _upgrade)
    image_id  INTEGER NOT NULL REFERENCES images(id),
    y         INTEGER NOT NULL,
    x         INTEGER NOT NULL,
    query_id  INTEGER REFERENCES queries(id),   -- NULL: an 'extra' pixel nobody asked for
    class_id  INTEGER REFERENCES classes(id),   -- NULL: void / unsure
    source    TEXT NOT NULL,            -- 'web', 'api', 'csv:<file>', 'labelstudio:<file>', ...
    answered_at TEXT NOT NULL,
    UNIQUE (image_id, y, x)
);
CREATE INDEX IF NOT EXISTS answers_query ON answers(query_id);
"""


#: Tables whose ids are handed out and must never be reused (``AUTOINCREMENT``): a stale
#: reference (an undo sent twice, a second browser tab) must not reach a newer row.
#: Databases made before get their tables rebuilt by :meth:`ProjectStore.transaction`.
NEVER_REUSED = ("queries", "answers")


class UnknownRecordError(ValueError):
    """A query or answer id that names no row (the web page answers 404)."""


class RecordConflictError(ValueError):
    """A change the record refuses as it stands (the web page answers 409).

    A query already answered, or an undo whose answer does not answer the
    query it names.
    """


def now() -> str:
    """The current UTC time as ISO 8601 text (what the tables store)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def pause_point(point: str) -> None:
    """Hold here when the environment asks to (lets tests ``kill -9`` at a known point).

    With ``SKAL_SEG_LABELING_PAUSE=<point>`` the process creates the file
    named by ``SKAL_SEG_LABELING_PAUSE_FILE`` and sleeps for a minute: the
    test kills it meanwhile. Without those variables this does nothing.
    """
    if os.environ.get("SKAL_SEG_LABELING_PAUSE") == point:
        Path(os.environ["SKAL_SEG_LABELING_PAUSE_FILE"]).touch()
        time.sleep(60)


class ProjectStore:
    """The SQLite database of one project folder.

    Parameters
    ----------
    folder : path
        The project folder; the database is ``folder/project.sqlite``.

    Notes
    -----
    Every method opens its own short-lived connection, so one store can serve
    the threads of the labeling web server.
    """

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.path = self.folder / DB_NAME
        self._held: sqlite3.Connection | None = None
        self._upgraded = False  # this process has seen the current schema (see _upgrade)

    def hold(self) -> None:
        """Keep one idle connection open until :meth:`release` (for many small transactions in a row).

        SQLite copies the write-ahead log into the database and deletes it
        whenever the last connection closes; every method here opens and
        closes its own connection, so without a held one each of them pays
        for that (a benchmark run makes two transactions per round). With it,
        SQLite checkpoints every 1000 pages instead. Nothing is less durable:
        a committed transaction is in the log, synced, either way.
        """
        if self._held is None:
            self._held = self._connect()
            self._held.execute("SELECT 1 FROM settings LIMIT 1").fetchall()  # opens the log, holds no lock

    def release(self) -> None:
        """Close the connection :meth:`hold` keeps (no-op without one)."""
        if self._held is not None:
            self._held.close()
            self._held = None

    def exists(self) -> bool:
        """Whether the database exists and was fully created (an interrupted ``init`` leaves none)."""
        if not self.path.exists():
            return False
        return bool(self.rows("SELECT name FROM sqlite_master WHERE name = 'settings'")) and bool(
            self.scalar("SELECT COUNT(*) FROM settings"))

    @staticmethod
    def create_tables(con: sqlite3.Connection) -> None:
        """Create the tables inside the caller's transaction (``executescript`` would commit it)."""
        for statement in SCHEMA.split(";"):
            if statement.strip():
                con.execute(statement)

    @staticmethod
    def _upgrade(con: sqlite3.Connection) -> None:
        """Rebuild the tables of :data:`NEVER_REUSED` made without ``AUTOINCREMENT`` (inside the caller's transaction).

        Before ``AUTOINCREMENT``, SQLite handed out the largest id plus one,
        so an undone answer's id went to the next answer. Each table is
        copied, dropped, created anew and filled with its rows, ids
        unchanged; ``sqlite_sequence`` then starts at the largest id kept.
        Foreign keys are checked at the commit (``defer_foreign_keys``):
        between the drop and the refill of ``queries`` the answers point
        nowhere. All in one transaction: a crash leaves the old tables.
        """
        marks = ",".join("?" * len(NEVER_REUSED))
        found = dict(con.execute(f"SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name IN ({marks})",
                                 NEVER_REUSED).fetchall())
        stale = [t for t in NEVER_REUSED if t in found and "AUTOINCREMENT" not in found[t].upper()]
        if not stale:
            return
        con.execute("PRAGMA defer_foreign_keys = ON")  # switches itself off at the commit
        statements = {t: s for t in stale for s in SCHEMA.split(";") if f"CREATE TABLE IF NOT EXISTS {t} (" in s}
        for table in stale:
            con.execute(f"CREATE TABLE _old_{table} AS SELECT * FROM {table}")
            con.execute(f"DROP TABLE {table}")  # drops its indexes too
            con.execute(statements[table])
            con.execute(f"INSERT INTO {table} SELECT * FROM _old_{table} ORDER BY id")
            con.execute(f"DROP TABLE _old_{table}")
        ProjectStore.create_tables(con)  # the indexes dropped with their tables

    def _connect(self) -> sqlite3.Connection:
        self.folder.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        con.row_factory = sqlite3.Row
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=FULL")  # a committed answer survives a power cut, not just a kill
        con.execute("PRAGMA foreign_keys=ON")
        return con

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A connection inside ``BEGIN IMMEDIATE ... COMMIT`` (rolled back on any error).

        The first transaction of a store brings a database made by an older
        version up to date (see :meth:`_upgrade`), in the same transaction.

        Yields
        ------
        sqlite3.Connection
        """
        con = self._connect()
        try:
            con.execute("BEGIN IMMEDIATE")
            try:
                if not self._upgraded:  # once per store: a database made before AUTOINCREMENT
                    self._upgrade(con)
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")
            self._upgraded = True  # only once committed: a rolled-back upgrade is tried again
        finally:
            con.close()

    def rows(self, sql: str, params: tuple = ()) -> list[sqlite3.Row]:
        """Rows of one read-only statement."""
        con = self._connect()
        try:
            return con.execute(sql, params).fetchall()
        finally:
            con.close()

    def scalar(self, sql: str, params: tuple = ()) -> Any:
        """First column of the first row of one statement (None when no row)."""
        found = self.rows(sql, params)
        return found[0][0] if found else None

    def settings(self) -> dict:
        """All settings, JSON-decoded."""
        return {r["key"]: json.loads(r["value"]) for r in self.rows("SELECT key, value FROM settings")}


@dataclass
class Answer:
    """One answer to import: where, what, and where it came from (for error messages)."""

    where: str  # e.g. "line 4" or "task 2, result 1"
    image: str
    y: float  # pixel row, or percent of the height when ``percent``
    x: float
    label: str
    percent: bool = False  # Label Studio: coordinates in percent of the original size
