"""Persistent crawl state: what is known, written or owed, in ``<THEORY_DATA_DIR>/state.sqlite3``.

The JSON Lines output is the record of what was written; this database is its index, plus the
articles still owed (discovered but not written: new, failed, rejected) and the sections whose
listing has been walked to the end once. Changes are committed only at the storage pipeline's
sync points, right after ``articles.jsonl`` is fsynced, together with the file size at that point;
whatever a crash loses here is recovered from the file's tail on the next run.

Opening the state takes an exclusive lock on the data directory: one run at a time.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path

from crawler.revisions import correctable_fields

SCHEMA = """
-- written_from: where the line of a written article was read, live (its host) or archive (a capture of a web
-- archive, which a revisit of the live host in THEORY_LEGACY_SOURCE=live may not judge).
CREATE TABLE IF NOT EXISTS articles (
    article_id   TEXT PRIMARY KEY,
    url          TEXT NOT NULL,
    section_id   TEXT,
    -- pending: owed; claimed: passed dedupe, line being written; written: in articles.jsonl;
    -- duplicate: same content as an article already written; failed: gave up after too many attempts;
    -- other_channel: listed by the channel, but its page names another channel (last_error names it)
    status       TEXT NOT NULL,
    content_hash TEXT,
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT,
    updated_at   TEXT NOT NULL,
    written_from TEXT
);
CREATE INDEX IF NOT EXISTS articles_by_status ON articles (status);
CREATE INDEX IF NOT EXISTS articles_by_content ON articles (content_hash);
CREATE TABLE IF NOT EXISTS sections (
    section_id TEXT PRIMARY KEY,
    walked_at  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS images (
    url         TEXT PRIMARY KEY,
    captured_at TEXT NOT NULL
);
-- The validators of every article page fetched, keyed by its path (see crawler.revisions.page_key),
-- for the conditional requests of revisits.
CREATE TABLE IF NOT EXISTS pages (
    page_key      TEXT PRIMARY KEY,
    etag          TEXT,
    last_modified TEXT,
    fetched_at    TEXT NOT NULL
);
-- What revisits know of a written article: its current version (the last event of changes.jsonl, or
-- its articles.jsonl line as version 1), and the runs in a row in which it looked removed.
CREATE TABLE IF NOT EXISTS revisions (
    article_id     TEXT PRIMARY KEY,
    published_date TEXT,
    page_count     INTEGER,
    version        INTEGER NOT NULL DEFAULT 1,
    content_hash   TEXT,
    checked_at     TEXT,
    failing_runs   INTEGER NOT NULL DEFAULT 0,
    failing_since  TEXT,
    removed        INTEGER NOT NULL DEFAULT 0,
    -- the correctable fields of the current version, as JSON (crawler.revisions.CORRECTABLE_FIELDS)
    fields         TEXT
);
CREATE INDEX IF NOT EXISTS revisions_by_check ON revisions (checked_at);
-- The last THEORY_FIELD_WINDOW articles written on each site (crawler/drift.py): which optional fields
-- each carried, its authors and images. learned: 0 not yet, 1 taught the site's baseline, -1 was in a
-- window that raised an alarm (never teaches it).
CREATE TABLE IF NOT EXISTS field_window (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    site    TEXT NOT NULL,
    url     TEXT NOT NULL,
    fields  TEXT NOT NULL,
    learned INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS field_window_by_site ON field_window (site, seq);
-- What the articles learned from windows without alarm showed: per site and field, how many carried it.
CREATE TABLE IF NOT EXISTS field_learned (
    site    TEXT NOT NULL,
    field   TEXT NOT NULL,
    present INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (site, field)
);
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""

# Statuses of an article that needs no more fetching, as an SQL list.
DONE = "('claimed', 'written', 'duplicate', 'other_channel')"


class CrawlLocked(RuntimeError):
    """Another run holds the data directory."""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def written_from(record: dict) -> str:
    """Where an article line was read: ``archive`` when its pages came from a web archive's captures
    (the line names them in ``archived_from``), else ``live``."""
    return "archive" if record.get("archived_from") else "live"


class CrawlState:
    def __init__(self, data_dir: str | os.PathLike[str]):
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._lock = self._take_lock(self.data_dir / ".lock")
        self.path = self.data_dir / "state.sqlite3"
        self.damaged_copy: Path | None = None  # where a damaged state was moved aside, if it was
        try:
            self.db = self._open(self.path)
        except sqlite3.DatabaseError as error:
            # The state is an index of the output: keep the damaged file for inspection and rebuild it
            # from articles.jsonl (the storage pipeline does, finding a synced size of 0).
            self.damaged_copy = self.path.with_name(f"state.sqlite3.damaged-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}")
            self.damage = str(error)
            for suffix in ("", "-wal", "-shm"):
                companion = Path(f"{self.path}{suffix}")
                if companion.exists():
                    companion.rename(f"{self.damaged_copy}{suffix}")
            self.db = self._open(self.path)

    @staticmethod
    def _take_lock(path: Path):
        lock = open(path, "a+")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "a process that did not say which"
            lock.close()
            raise CrawlLocked(f"another crawl is running on {path.parent.resolve()}: {holder}") from None
        lock.seek(0)
        lock.truncate()
        lock.write(f"pid {os.getpid()}, started {_now()}\n")
        lock.flush()
        return lock

    @staticmethod
    def _open(path: Path) -> sqlite3.Connection:
        db = sqlite3.connect(path)
        try:
            db.execute("PRAGMA journal_mode = WAL")
            (verdict,) = db.execute("PRAGMA quick_check").fetchone()
            if verdict != "ok":
                raise sqlite3.DatabaseError(f"quick_check: {verdict}")
            db.executescript(SCHEMA)
            columns = {row[1] for row in db.execute("PRAGMA table_info(revisions)")}
            if "fields" not in columns:  # a state written before corrections were kept
                db.execute("ALTER TABLE revisions ADD COLUMN fields TEXT")
            if "written_from" not in {row[1] for row in db.execute("PRAGMA table_info(articles)")}:
                # A state written before sources were kept: the storage pipeline fills it in from the lines.
                db.execute("ALTER TABLE articles ADD COLUMN written_from TEXT")
            # A line that was being written when the last run died is either in the file (the storage
            # pipeline finds it in the tail) or not (then the article is owed again).
            db.execute("UPDATE articles SET status = 'pending' WHERE status = 'claimed'")
            db.commit()
        except sqlite3.DatabaseError:
            db.close()
            raise
        return db

    def close(self) -> None:
        self.db.commit()
        self.db.close()
        self._lock.close()

    def commit(self) -> None:
        self.db.commit()

    # --- articles ---

    def known(self, article_ids: Iterable[str]) -> set[str]:
        ids = list(article_ids)
        if not ids:
            return set()
        marks = ",".join("?" * len(ids))
        rows = self.db.execute(f"SELECT article_id FROM articles WHERE article_id IN ({marks})", ids)
        return {row[0] for row in rows}

    def add_pending(self, articles: Iterable[tuple[str, str, str | None]]) -> None:
        """Record newly discovered (article_id, url, section_id); already known ones are left alone."""
        now = _now()
        self.db.executemany(
            "INSERT OR IGNORE INTO articles (article_id, url, section_id, status, updated_at)"
            " VALUES (?, ?, ?, 'pending', ?)",
            [(*article, now) for article in articles],
        )

    def pending(self, sections: Iterable[str] | None = None) -> list[str]:
        """URLs of the articles still owed, oldest discovery first."""
        rows = self.db.execute("SELECT url, section_id FROM articles WHERE status = 'pending' ORDER BY rowid")
        wanted = set(sections) if sections else None
        return [url for url, section in rows if wanted is None or section in wanted]

    def record_failure(self, article_id: str, url: str, error: str, max_attempts: int) -> bool:
        """Count a failed attempt; return True when the article is given up (marked failed)."""
        self.add_pending([(article_id, url, None)])
        self.db.execute(
            "UPDATE articles SET attempts = attempts + 1, last_error = ?, updated_at = ?,"
            " status = CASE WHEN attempts + 1 >= ? THEN 'failed' ELSE status END"
            " WHERE article_id = ? AND status IN ('pending', 'failed')",
            (error, _now(), max_attempts, article_id),
        )
        row = self.db.execute("SELECT status FROM articles WHERE article_id = ?", (article_id,)).fetchone()
        return row is not None and row[0] == "failed"

    def claim(self, article_id: str, url: str, section_id: str, content_hash: str) -> tuple[str, str] | None:
        """Reserve an article for writing, unless it or its content is done: then (why, which article)."""
        row = self.db.execute(
            f"SELECT status FROM articles WHERE article_id = ? AND status IN {DONE}", (article_id,)
        ).fetchone()
        if row:
            return "url", article_id
        row = self.db.execute(
            "SELECT article_id FROM articles WHERE content_hash = ? AND status IN ('claimed', 'written')"
            " AND article_id != ? ORDER BY rowid LIMIT 1",
            (content_hash, article_id),
        ).fetchone()
        if row:
            # Not marked here: a content duplicate is done once its line is in duplicates.jsonl (mark_duplicate).
            return "content", row[0]
        self.db.execute(
            "INSERT INTO articles (article_id, url, section_id, status, content_hash, updated_at)"
            " VALUES (?, ?, ?, 'claimed', ?, ?)"
            " ON CONFLICT (article_id) DO UPDATE SET status = excluded.status,"
            " content_hash = excluded.content_hash, updated_at = excluded.updated_at",
            (article_id, url, section_id, content_hash, _now()),
        )
        return None

    def is_written(self, article_id: str) -> bool:
        row = self.db.execute("SELECT 1 FROM articles WHERE article_id = ? AND status = 'written'", (article_id,)).fetchone()
        return row is not None

    def mark_other_channel(self, articles: Iterable[tuple[str, str]]) -> None:
        """(article_id, channel name) of owed articles whose page names another channel: not owed any more."""
        self.db.executemany(
            "UPDATE articles SET status = 'other_channel', last_error = ?, updated_at = ? WHERE article_id = ? AND status = 'pending'",
            [(f"of the channel {name}", _now(), id_) for id_, name in articles],
        )

    def mark_written(
        self, article_id: str, url: str, section_id: str | None, content_hash: str | None, source: str = "live",
    ) -> None:
        """``source``: where its line was read, ``live`` or ``archive`` (see ``written_from``)."""
        self.db.execute(
            "INSERT INTO articles (article_id, url, section_id, status, content_hash, updated_at, written_from)"
            " VALUES (?, ?, ?, 'written', ?, ?, ?)"
            " ON CONFLICT (article_id) DO UPDATE SET status = 'written',"
            " content_hash = excluded.content_hash, updated_at = excluded.updated_at, written_from = excluded.written_from",
            (article_id, url, section_id, content_hash, _now(), source),
        )

    def written_without_source(self) -> int:
        """Written articles whose source is not known: written by a release before sources were kept."""
        (count,) = self.db.execute("SELECT COUNT(*) FROM articles WHERE status = 'written' AND written_from IS NULL").fetchone()
        return count

    def record_source(self, article_id: str, source: str) -> bool:
        """The source of a written article whose source is not known yet; returns whether it was not."""
        return self.db.execute(
            "UPDATE articles SET written_from = ? WHERE article_id = ? AND status = 'written' AND written_from IS NULL",
            (source, article_id),
        ).rowcount > 0

    def record_unknown_sources_live(self) -> int:
        """The written articles still without a source (their line is not in the file) are taken as read from
        the live host, as every release before sources were kept revisited them; returns how many."""
        return self.db.execute(
            "UPDATE articles SET written_from = 'live' WHERE status = 'written' AND written_from IS NULL"
        ).rowcount

    def written_from_archive(self, sections: Iterable[str] | None = None) -> list[str]:
        """URLs of the written articles read from a web archive's captures."""
        wanted = set(sections) if sections else None
        rows = self.db.execute("SELECT url, section_id FROM articles WHERE status = 'written' AND written_from = 'archive'")
        return [url for url, section in rows if wanted is None or section in wanted]

    def mark_duplicate(self, article_id: str, url: str, section_id: str | None, content_hash: str | None) -> None:
        """A content duplicate recorded in duplicates.jsonl: done, never fetched or recorded again."""
        self.db.execute(
            "INSERT INTO articles (article_id, url, section_id, status, content_hash, updated_at)"
            " VALUES (?, ?, ?, 'duplicate', ?, ?)"
            " ON CONFLICT (article_id) DO UPDATE SET status = 'duplicate',"
            " content_hash = excluded.content_hash, updated_at = excluded.updated_at"
            " WHERE articles.status != 'written'",
            (article_id, url, section_id, content_hash, _now()),
        )

    def reset_duplicates(self, present: set[str]) -> int:
        """Duplicates not ``present`` in duplicates.jsonl (an earlier version did not record them, or the file
        was truncated) are owed again, to be fetched and recorded; returns how many."""
        rows = self.db.execute("SELECT article_id FROM articles WHERE status = 'duplicate'")
        missing = [article_id for (article_id,) in rows if article_id not in present]
        now = _now()
        self.db.executemany(
            "UPDATE articles SET status = 'pending', attempts = 0, last_error = 'missing from duplicates.jsonl',"
            " updated_at = ? WHERE article_id = ?",
            [(now, article_id) for article_id in missing],
        )
        return len(missing)

    def reset_written(self, present: set[str]) -> int:
        """Articles recorded as written but not ``present`` in the output are owed again; returns how many."""
        rows = self.db.execute("SELECT article_id FROM articles WHERE status IN ('claimed', 'written')")
        missing = [(article_id,) for (article_id,) in rows if article_id not in present]
        now = _now()
        self.db.executemany(
            "UPDATE articles SET status = 'pending', attempts = 0, last_error = 'missing from the output',"
            " updated_at = ? WHERE article_id = ?",
            [(now, article_id) for (article_id,) in missing],
        )
        return len(missing)

    # --- sections ---

    def section_walked(self, section_id: str) -> bool:
        row = self.db.execute("SELECT 1 FROM sections WHERE section_id = ?", (section_id,)).fetchone()
        return row is not None

    def mark_section_walked(self, section_id: str) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO sections (section_id, walked_at) VALUES (?, ?)", (section_id, _now())
        )

    def mark_section_unwalked(self, section_id: str) -> None:
        """The section's walk did not reach its end: its next walk goes past pages of known articles."""
        self.db.execute("DELETE FROM sections WHERE section_id = ?", (section_id,))

    # --- output bookkeeping ---

    def synced_size(self, name: str) -> int:
        return int(self.get_meta(f"synced_size:{name}") or 0)

    def set_synced_size(self, name: str, size: int) -> None:
        self.set_meta(f"synced_size:{name}", str(size))

    # --- revisits ---

    def record_first_version(
        self, article_id: str, published_date: str | None, page_count: int | None, content_hash: str | None,
        fields: dict | None = None,
    ) -> None:
        """An article just written (or found written by recovery) is version 1, unless revisions know more."""
        self.db.execute(
            "INSERT OR IGNORE INTO revisions (article_id, published_date, page_count, version, content_hash, fields)"
            " VALUES (?, ?, ?, 1, ?, ?)",
            (article_id, published_date, page_count, content_hash, json.dumps(fields, ensure_ascii=False) if fields else None),
        )

    def written_without_first_version(self) -> int:
        """Written articles that revisions know nothing of: written by a release before revisits."""
        (count,) = self.db.execute(
            "SELECT COUNT(*) FROM articles a LEFT JOIN revisions r USING (article_id)"
            " WHERE a.status = 'written' AND r.article_id IS NULL"
        ).fetchone()
        return count

    def record_undated_first_versions(self) -> int:
        """Version 1, without a published date, for every written article revisions know nothing of."""
        return self.db.execute(
            "INSERT OR IGNORE INTO revisions (article_id, version) SELECT a.article_id, 1 FROM articles a"
            " LEFT JOIN revisions r USING (article_id) WHERE a.status = 'written' AND r.article_id IS NULL"
        ).rowcount

    def revisit_targets(
        self, recent_since: str, budget: int, sections: Iterable[str] | None = None, seen_before: str | None = None,
        archived: bool = True,
    ) -> list[tuple[str, str, int]]:
        """(article_id, url, page_count) of the written articles to revisit this run: every one published
        on or after ``recent_since``, every one on its way to a removal (so that its runs stay consecutive),
        and the ``budget`` least recently checked others (never checked first).

        With ``seen_before`` (a time), an article written or checked after it is left for a later run, unless
        it is on its way to a removal: what was just fetched is what the site serves now. Without
        ``archived``, the articles read from a web archive are left out (and take no part of the budget)."""
        wanted = set(sections) if sections else None
        pending_removal = "(COALESCE(r.failing_runs, 0) > 0 AND COALESCE(r.removed, 0) = 0)"
        rested = "1" if seen_before is None else f"((a.updated_at <= :seen AND COALESCE(r.checked_at, '') <= :seen) OR {pending_removal})"
        source = "1" if archived else "COALESCE(a.written_from, 'live') != 'archive'"
        query = (
            "SELECT a.article_id, a.url, COALESCE(r.page_count, 1), a.section_id FROM articles a"
            f" LEFT JOIN revisions r USING (article_id) WHERE a.status = 'written' AND {rested} AND {source} AND {{}}"
        )
        values = {"since": recent_since, "budget": budget, "seen": seen_before}
        rows = list(self.db.execute(query.format(f"(r.published_date >= :since OR {pending_removal})"), values))
        rows += self.db.execute(
            query.format(f"(r.published_date IS NULL OR r.published_date < :since) AND NOT {pending_removal}")
            + " ORDER BY r.checked_at IS NOT NULL, r.checked_at, a.rowid LIMIT :budget",
            values,
        )
        return [(id_, url, pages) for id_, url, pages, section in rows if wanted is None or section in wanted]

    def revision(self, article_id: str) -> dict:
        row = self.db.execute(
            "SELECT COALESCE(r.version, 1), COALESCE(r.content_hash, a.content_hash), COALESCE(r.failing_runs, 0),"
            " r.failing_since, COALESCE(r.removed, 0), r.fields FROM articles a LEFT JOIN revisions r USING (article_id)"
            " WHERE a.article_id = ?",
            (article_id,),
        ).fetchone() or (1, None, 0, None, 0, None)
        keys = ("version", "content_hash", "failing_runs", "failing_since", "removed", "fields")
        known = dict(zip(keys, row))
        known["fields"] = json.loads(known["fields"]) if known["fields"] else None
        return known

    def update_revision(self, article_id: str, **values) -> None:
        self.db.execute("INSERT OR IGNORE INTO revisions (article_id) VALUES (?)", (article_id,))
        columns = ", ".join(f"{name} = ?" for name in values)
        self.db.execute(f"UPDATE revisions SET {columns} WHERE article_id = ?", (*values.values(), article_id))

    def apply_event(self, event: dict) -> None:
        """The state change an event of changes.jsonl records (also how recovery replays a lost commit)."""
        kind, article = event["event"], event["article_id"]
        if kind == "revised":
            item = event["item"]
            self.update_revision(
                article, version=event["version"], content_hash=item["content_hash"],
                page_count=item.get("page_count"), published_date=item.get("published_date"),
                fields=json.dumps(correctable_fields(item), ensure_ascii=False),
            )
        elif kind == "corrected":
            fields = self.revision(article)["fields"] or {}
            fields.update((name, change["new"]) for name, change in event["fields"].items())
            self.update_revision(article, fields=json.dumps(fields, ensure_ascii=False))
        elif kind == "removed":
            self.update_revision(article, removed=1)
        elif kind == "restored":
            self.update_revision(article, removed=0, failing_runs=0, failing_since=None)

    def validators(self, key: str) -> tuple[str | None, str | None]:
        row = self.db.execute("SELECT etag, last_modified FROM pages WHERE page_key = ?", (key,)).fetchone()
        return row if row else (None, None)

    def set_validators(self, key: str, etag: str | None, last_modified: str | None) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO pages (page_key, etag, last_modified, fetched_at) VALUES (?, ?, ?, ?)",
            (key, etag, last_modified, _now()),
        )

    # --- images captured in the WARC files ---

    def uncaptured_images(self, urls: Iterable[str]) -> list[str]:
        urls = list(dict.fromkeys(urls))
        if not urls:
            return []
        marks = ",".join("?" * len(urls))
        captured = {row[0] for row in self.db.execute(f"SELECT url FROM images WHERE url IN ({marks})", urls)}
        return [url for url in urls if url not in captured]

    def mark_image_captured(self, url: str) -> None:
        self.db.execute("INSERT OR IGNORE INTO images (url, captured_at) VALUES (?, ?)", (url, _now()))

    # --- the window of optional fields (crawler/drift.py) ---

    def add_field_row(self, site: str, url: str, fields: str, window: int) -> None:
        """Add a written article to its site's window, keeping the last ``window`` rows."""
        self.db.execute("INSERT INTO field_window (site, url, fields) VALUES (?, ?, ?)", (site, url, fields))
        self.db.execute(
            "DELETE FROM field_window WHERE site = ? AND seq <= ("
            " SELECT seq FROM field_window WHERE site = ? ORDER BY seq DESC LIMIT 1 OFFSET ?)",
            (site, site, window),
        )

    def field_sites(self) -> list[str]:
        return [site for (site,) in self.db.execute("SELECT DISTINCT site FROM field_window ORDER BY site")]

    def field_window(self, site: str) -> list[tuple[str, str]]:
        """(url, fields JSON) of the site's window, oldest first."""
        return list(self.db.execute("SELECT url, fields FROM field_window WHERE site = ? ORDER BY seq", (site,)))

    def field_learned(self, site: str) -> tuple[dict[str, int], int]:
        """Per field, how many learned articles carried it; and how many articles were learned."""
        present = dict(self.db.execute("SELECT field, present FROM field_learned WHERE site = ? AND field != ''", (site,)))
        row = self.db.execute("SELECT present FROM field_learned WHERE site = ? AND field = ''", (site,)).fetchone()
        return present, row[0] if row else 0

    def learn_field_window(self, site: str, fields: Iterable[str]) -> None:
        """The rows of the site's window not learned yet teach its baseline (a window that raised no alarm)."""
        rows = list(self.db.execute("SELECT seq, fields FROM field_window WHERE site = ? AND learned = 0", (site,)))
        if not rows:
            return
        counts = {field: 0 for field in fields}
        for _, data in rows:
            present = json.loads(data)["present"]
            for field in counts:
                counts[field] += bool(present.get(field))
        counts[""] = len(rows)  # the field '' counts the articles learned
        self.db.executemany(
            "INSERT INTO field_learned (site, field, present) VALUES (?, ?, ?)"
            " ON CONFLICT (site, field) DO UPDATE SET present = present + excluded.present",
            [(site, field, count) for field, count in counts.items()],
        )
        self.db.executemany("UPDATE field_window SET learned = 1 WHERE seq = ?", [(seq,) for seq, _ in rows])

    def taint_field_window(self, site: str) -> None:
        """The rows of a window that raised an alarm never teach the baseline, even once it is clean again."""
        self.db.execute("UPDATE field_window SET learned = -1 WHERE site = ? AND learned = 0", (site,))

    # --- full walks ---

    def last_full_walk(self) -> datetime | None:
        value = self.get_meta("last_full_walk")
        return datetime.fromisoformat(value) if value else None

    def mark_full_walk(self) -> None:
        self.set_meta("last_full_walk", _now())

    # --- times written under a clock that ran ahead ---

    def distrust_future_times(self, now: datetime) -> dict[str, str | int]:
        """Set the times of the state later than ``now`` to ``now``; returns what was found: the last full
        walk's time, and how many articles' updated_at (their written_at, for written ones) and revisions'
        checked_at were ahead. A time ahead would otherwise stop what it gates (full walks, revisits) until
        the clock catches up, which for a clock once a year ahead is a year."""
        stamp = now.astimezone(timezone.utc).isoformat(timespec="seconds")
        found: dict[str, str | int] = {}
        last = self.last_full_walk()
        if last is not None and last > now:
            found["last_full_walk"] = last.isoformat(timespec="seconds")
            self.set_meta("last_full_walk", stamp)
        # Every time here is written by _now() or utc_now_iso(), in one format: as strings they sort as times.
        for name, table, column in (("updated_at", "articles", "updated_at"), ("checked_at", "revisions", "checked_at")):
            count = self.db.execute(f"UPDATE {table} SET {column} = ? WHERE {column} > ?", (stamp, stamp)).rowcount
            if count:
                found[name] = count
        return found

    def get_meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))
