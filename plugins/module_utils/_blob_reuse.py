# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where blobs are known to be: the in-task ledger and the optional cache that carries it across runs.

A place is ``(domain, name)`` as a transport's ``blob_scope()`` gives it: within one domain (a
registry) a blob known in one place (a repository) can be mounted into another without moving
bytes. ``BlobLedger`` is shared by every copy of a task: the first copy that needs a blob in a
domain transfers it, the others wait and then mount it from where it landed, so a blob is read from
the source once per destination domain. ``BlobInfoCache`` remembers the places in a small SQLite
file between runs (as containers/image's blob-info cache does); it holds registry names,
repository names and digests, never a credential or a token.
"""

from __future__ import annotations

import os
import threading
import time
from urllib.parse import quote

#: How many known places are tried for one blob before it is uploaded (each try is one request).
MOUNT_CANDIDATES = 3
#: Places not confirmed for this long are dropped from the cache file.
_STALE_SECONDS = 90 * 24 * 3600
_SCHEMA_VERSION = 1


def default_cache_path() -> str:
    """``$XDG_CACHE_HOME/oci.images/blob-info-cache.sqlite`` (``~/.cache`` when XDG_CACHE_HOME is unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "oci.images", "blob-info-cache.sqlite")


class BlobInfoCache:
    """The places of blobs, kept in a SQLite file between runs; safe for several processes at once.

    Read on demand; what a run learns is written in one short transaction by ``flush`` at the end
    of the task (never in check mode). A file that cannot be used turns the cache off for the task
    and ``problem`` says why: the copy goes on without it.
    """

    def __init__(self, path: str, read_only: bool = False):
        self.path = path
        #: Check mode: the file is read when it exists, never created or written.
        self.read_only = read_only
        self.problem: str | None = None
        self._lock = threading.Lock()
        self._db = None
        self._opened = False
        self._learned: dict[tuple[str, str, str], float] = {}
        self._forgotten: set[tuple[str, str, str]] = set()

    def _open(self):
        if self._opened:
            return self._db
        self._opened = True
        import sqlite3  # only when a task asks for the cache

        try:
            if self.read_only:
                if not os.path.isfile(self.path):
                    return None
                db = sqlite3.connect("file:%s?mode=ro" % quote(os.path.abspath(self.path)), uri=True, timeout=30, check_same_thread=False)
            else:
                directory = os.path.dirname(self.path)
                if directory:
                    os.makedirs(directory, mode=0o700, exist_ok=True)
                # Created private before SQLite opens it (SQLite would create it with the umask's mode).
                os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
                db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, _SCHEMA_VERSION):
                db.close()
                self._disable("it was written by another version of the collection (format %d); remove it to start a new one" % version)
                return None
            if version == 0 and self.read_only:
                db.close()
                return None
            if version == 0:
                db.execute("BEGIN IMMEDIATE")
                db.execute(
                    "CREATE TABLE IF NOT EXISTS places"
                    " (domain TEXT NOT NULL, place TEXT NOT NULL, digest TEXT NOT NULL, seen REAL NOT NULL, PRIMARY KEY (domain, digest, place))"
                )
                db.execute("PRAGMA user_version = %d" % _SCHEMA_VERSION)
                db.execute("COMMIT")
        except (sqlite3.Error, OSError) as exc:
            self._disable(str(exc))
            return None
        self._db = db
        return db

    def _disable(self, why: str) -> None:
        self.problem = "blob cache %s not used (%s): blobs were reused within the task only" % (self.path, why)
        if self._db is not None:
            self._db.close()
        self._db = None

    def places(self, domain: str, digest: str) -> list[str]:
        """Places of ``domain`` the file says hold ``digest``, most recently confirmed first."""
        import sqlite3

        with self._lock:
            db = self._open()
            if db is None:
                return []
            try:
                query = "SELECT place FROM places WHERE domain = ? AND digest = ? ORDER BY seen DESC LIMIT ?"
                rows = db.execute(query, (domain, digest, MOUNT_CANDIDATES + 1)).fetchall()
            except sqlite3.Error as exc:
                self._disable(str(exc))
                return []
        return [row[0] for row in rows]

    def learn(self, domain: str, place: str, digest: str) -> None:
        with self._lock:
            self._learned[(domain, place, digest)] = time.time()
            self._forgotten.discard((domain, place, digest))

    def forget(self, domain: str, place: str, digest: str) -> None:
        with self._lock:
            self._learned.pop((domain, place, digest), None)
            self._forgotten.add((domain, place, digest))

    def flush(self) -> None:
        """Write what this task learned and forgot, in one transaction (other processes wait for it, up to 30 s)."""
        import sqlite3

        with self._lock:
            if self.read_only or (not self._learned and not self._forgotten):
                return
            db = self._open()
            if db is None:
                return
            try:
                db.execute("BEGIN IMMEDIATE")
                db.executemany("INSERT OR REPLACE INTO places (domain, place, digest, seen) VALUES (?, ?, ?, ?)", [(*k, v) for k, v in self._learned.items()])
                db.executemany("DELETE FROM places WHERE domain = ? AND place = ? AND digest = ?", list(self._forgotten))
                db.execute("DELETE FROM places WHERE seen < ?", (time.time() - _STALE_SECONDS,))
                db.execute("COMMIT")
            except sqlite3.Error as exc:
                try:
                    db.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
                self._disable(str(exc))
                return
            self._learned.clear()
            self._forgotten.clear()

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


class BlobLedger:
    """Which blobs are landing, or have landed, in which places — across the images of one task.

    Only for destinations whose blobs become visible on upload (``dest.blob_scope()`` not None).
    Claims are per domain: the first copy that needs a blob in a domain transfers it; others
    needing it in the same domain wait, then count it as skipped (same place) or mount it from
    where it landed. ``cache`` (a ``BlobInfoCache``) adds what earlier runs learned; ``read_only``
    (check mode) keeps the ledger from writing it.
    """

    def __init__(self, cache: BlobInfoCache | None = None, read_only: bool = False) -> None:
        self.cache = cache
        self.read_only = read_only
        self._lock = threading.Lock()
        self._events: dict = {}
        self._places: dict[tuple[str, str], list[str]] = {}
        self._reserved: dict[tuple[str, str], list[str]] = {}

    def claim(self, key: tuple) -> threading.Event | None:
        """None when the caller must do the work for ``key`` (and then call ``done``); else an event to wait on.

        Keys are ``(domain, digest)`` (one transfer per domain) and ``(domain, digest, place)`` (one mount per place).
        """
        with self._lock:
            event = self._events.get(key)
            if event is None:
                self._events[key] = threading.Event()
                return None
            return event

    def done(self, key: tuple, landed: bool) -> None:
        """The claimed work ended: the blob landed (the event stays set), or not (the next claimant tries)."""
        with self._lock:
            event = self._events[key] if landed else self._events.pop(key)
        event.set()

    def record(self, domain: str, place: str, digests) -> None:
        """These blobs are in ``place`` now (a copy put or found them there, or a source holds them)."""
        with self._lock:
            for digest in digests:
                known = self._places.setdefault((domain, digest), [])
                if place in known:
                    known.remove(place)
                known.insert(0, place)
        if self.cache is not None and not self.read_only:
            for digest in digests:
                self.cache.learn(domain, place, digest)

    def known_here(self, domain: str, place: str, digest: str) -> bool:
        """Whether a copy of this task put or found the blob in ``place``."""
        with self._lock:
            return place in self._places.get((domain, digest), ())

    def candidates(self, domain: str, place: str, digest: str) -> list[str]:
        """Other places of the domain to mount the blob from: this task's first, then the cache's."""
        with self._lock:
            found = [p for p in self._places.get((domain, digest), ()) if p != place]
        if self.cache is not None:
            found += [p for p in self.cache.places(domain, digest) if p != place and p not in found]
        return found[:MOUNT_CANDIDATES]

    def forget(self, domain: str, place: str, digest: str) -> None:
        """A mount from ``place`` failed: it is no candidate any more."""
        with self._lock:
            known = self._places.get((domain, digest))
            if known and place in known:
                known.remove(place)
        if self.cache is not None and not self.read_only:
            self.cache.forget(domain, place, digest)

    def reserve(self, domain: str, place: str, digest: str) -> str | None:
        """Check mode's claim: None for the first caller of the domain (it would transfer the blob); after that,
        "skipped" for a place already reserved, "mounted" for another place."""
        with self._lock:
            reserved = self._reserved.setdefault((domain, digest), [])
            first = not reserved
            answer = None if first else ("skipped" if place in reserved else "mounted")
            if place not in reserved:
                reserved.append(place)
            return answer

    def flush(self) -> None:
        """Write what the task learned into the cache (nothing in check mode)."""
        if self.cache is not None and not self.read_only:
            self.cache.flush()

    @property
    def problem(self) -> str | None:
        return self.cache.problem if self.cache is not None else None
