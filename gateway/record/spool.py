"""The request log's spool: every row on local disk before its answer leaves.

A request appends its row, one JSON line, to its process's current segment file
(`GATEWAY_REQUEST_SPOOL_DIR`, one subdirectory per database) and only then hands it to the
log writer (gateway/record/log_writer.py). The append is one write() into the page cache,
not an fsync: a killed process loses none of its rows, a machine that loses power loses what
was appended since the last fsync, which the writer makes every GATEWAY_REQUEST_SPOOL_FSYNC_S
(docs/decisions/0070-durable-request-record.md).

Segments:
- *clean*: its rows are written from memory by the writer's COPY; once every row is, the
  segment is closed and deleted. This is the path of every row while the database answers.
- *pending* (named `.pending`): some of its rows could not be written from memory (the
  database was out of reach, the queue was full). It is replayed from disk, in order, with
  INSERT ... ON CONFLICT (request_id) DO NOTHING, so a row written before is not written twice.
- *orphaned*: its owner died (its flock is free). Any process on the same spool adopts it as
  pending, so a killed worker's successor (or sibling) writes what it had answered.

`full()` is the bound on pending bytes (GATEWAY_REQUEST_SPOOL_MAX_BYTES) across the directory;
the middleware refuses billable requests while it holds (gateway/record/middleware.py).
"""

import contextlib
import fcntl
import json
import logging
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import connection

from gateway.models import RequestLog

logger = logging.getLogger(__name__)

FIELDS = [f for f in RequestLog._meta.concrete_fields if not f.primary_key]
# (attribute, is JSON) of each column, in the order of COPY's column list and of a spooled line.
COLUMNS = [(f.attname, f.get_internal_type() == "JSONField") for f in FIELDS]
PENDING = ".pending"
SUFFIX = ".spool"
# A clean segment is closed (and deleted once written) after this long or this size.
ROTATE_AFTER_S = 1.0
ROTATE_BYTES = 4 * 1_048_576
# Segments of other processes are looked at this often, for orphans to adopt.
SCAN_EVERY_S = 2.0


def values(row: RequestLog) -> list:
    return [getattr(row, name) for name, _ in COLUMNS]


def encode(row: RequestLog) -> bytes:
    # default=str: UUIDs, Decimals and datetimes as the text PostgreSQL parses them from.
    return json.dumps(values(row), default=str, separators=(",", ":")).encode() + b"\n"


def decode(line: bytes) -> RequestLog:
    return RequestLog(**{name: value for (name, _), value in zip(COLUMNS, json.loads(line), strict=True)})


@dataclass(eq=False)
class Segment:
    path: Path
    fd: int
    pending: bool = False
    appended: int = 0  # rows appended by this process
    done: int = 0  # of those, rows written (or refused by the database, see log_writer)
    size: int = 0
    opened: float = field(default_factory=time.monotonic)
    replayed_to: int = 0  # byte offset up to which a pending segment is written

    @property
    def written(self) -> bool:
        return self.done >= self.appended


class Spool:
    """One process's segments; every method but `append` runs on the log writer's thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pid = 0
        self._current: Segment | None = None
        self._closed: list[Segment] = []  # oldest first
        self.degraded = False  # new segments start pending while the database is out of reach
        self._scanned_pending = 0  # pending bytes in the directory at the last scan
        self._pending_since_scan = 0  # pending bytes this process appended since
        self._scanned_at = 0.0
        self._synced_size = 0
        self._synced_at = 0.0

    # --- the request path ---

    def append(self, row: RequestLog) -> Segment:
        """Write the row to the current segment (no fsync) and return that segment."""
        line = encode(row)
        with self._lock:
            if self._pid != os.getpid():
                self._reset()  # a forked child starts its own segments
            segment = self._current or self._open()
            os.write(segment.fd, line)
            segment.appended += 1
            segment.size += len(line)
            if segment.pending:
                self._pending_since_scan += len(line)
        return segment

    def full(self) -> bool:
        return self._scanned_pending + self._pending_since_scan >= settings.GATEWAY_REQUEST_SPOOL_MAX_BYTES

    # --- the writer's thread ---

    def make_pending(self) -> None:
        """The rows not yet written from memory are to be replayed from disk: every segment
        holding some becomes pending, and so does every new one while `degraded`."""
        with self._lock:
            for segment in [*self._closed, *([self._current] if self._current else [])]:
                if not segment.written and not segment.pending:
                    self._rename_pending(segment)
                    self._pending_since_scan += segment.size

    def pending_segments(self) -> list[Segment]:
        """Closed pending segments, oldest first; a pending current segment is closed first."""
        with self._lock:
            if self._current is not None and self._current.pending and self._current.appended:
                self._close_current()
            return sorted((s for s in self._closed if s.pending), key=lambda s: s.path.name)

    def read(self, segment: Segment, limit: int) -> tuple[list[RequestLog], int]:
        """Up to `limit` rows from where the replay of `segment` stands, and the offset after them."""
        with open(segment.path, "rb") as file:
            file.seek(segment.replayed_to)
            rows, offset = [], segment.replayed_to
            for line in file:
                if not line.endswith(b"\n"):
                    break  # a line cut by a crash mid-write: its answer never left
                offset += len(line)
                rows.append(decode(line))
                if len(rows) >= limit:
                    break
        return rows, offset

    def finished(self, segment: Segment) -> None:
        with self._lock:
            self._closed.remove(segment)
            # Out of the count at once, not at the next scan: the spool may have been full.
            left = segment.size - self._pending_since_scan
            self._pending_since_scan = max(0, -left)
            self._scanned_pending = max(0, self._scanned_pending - max(0, left))
            self._delete(segment)

    def housekeep(self) -> None:
        """Close an old or large clean segment, delete written ones, fsync, adopt orphans."""
        now = time.monotonic()
        with self._lock:
            if self._pid != os.getpid():
                return
            current = self._current
            if (
                current is not None
                and not current.pending
                and (current.size >= ROTATE_BYTES or (current.appended and now - current.opened >= ROTATE_AFTER_S))
            ):
                self._close_current()
            for segment in [s for s in self._closed if not s.pending and s.written]:
                self._closed.remove(segment)
                self._delete(segment)
            current = self._current
        due = now - self._synced_at >= settings.GATEWAY_REQUEST_SPOOL_FSYNC_S
        if current is not None and current.size > self._synced_size and due:
            os.fdatasync(current.fd)
            self._synced_size, self._synced_at = current.size, now
        if now - self._scanned_at >= SCAN_EVERY_S:
            self._scan(now)

    def pending_bytes(self) -> int:
        return self._scanned_pending + self._pending_since_scan

    def close(self) -> None:
        """At a clean exit: delete what is written; pending segments stay for a successor."""
        with self._lock:
            if self._pid != os.getpid():
                return
            if self._current is not None:
                self._close_current()
            for segment in self._closed:
                if not segment.pending and segment.written:
                    self._delete(segment)
                else:
                    os.fsync(segment.fd)
                    os.close(segment.fd)  # its flock goes with it: the segment is an orphan now
            self._closed = []

    # --- internals (under the lock) ---

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._current, self._closed = None, []
        self._scanned_pending = self._pending_since_scan = 0

    def _open(self) -> Segment:
        directory = directory_path()
        directory.mkdir(parents=True, exist_ok=True)
        name = f"{time.time_ns():020d}-{os.getpid()}{SUFFIX}"
        # Created under a dot-name that scans skip, locked, then renamed: no other process can
        # take a segment for an orphan between its creation and its lock.
        hidden = directory / f".{name}"
        fd = os.open(hidden, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        segment = Segment(directory / name, fd)
        os.rename(hidden, segment.path)
        if self.degraded:
            self._rename_pending(segment)
        self._current = segment
        self._synced_size = 0
        return segment

    def _close_current(self) -> None:
        current = self._current
        assert current is not None
        if current.pending:
            os.fdatasync(current.fd)  # replayed from disk: on disk it must be
        self._closed.append(current)
        self._current = None

    def _rename_pending(self, segment: Segment) -> None:
        target = segment.path.with_name(segment.path.name + PENDING)
        os.rename(segment.path, target)
        segment.path, segment.pending = target, True

    def _delete(self, segment: Segment) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(segment.path)
        os.close(segment.fd)

    def _scan(self, now: float) -> None:
        self._scanned_at = now
        directory = directory_path()
        own = {s.path.name for s in self._closed} | ({self._current.path.name} if self._current else set())
        pending = 0
        try:
            entries = list(os.scandir(directory))
        except FileNotFoundError:
            entries = []
        for entry in entries:
            if entry.name.startswith(".") or not entry.name.endswith((SUFFIX, PENDING)):
                continue
            if entry.name not in own and (adopted := self._adopt(Path(entry.path))) is not None:
                with self._lock:
                    self._closed.append(adopted)
                logger.warning("Request log: adopted %s, left by a process that ended; replaying it", entry.name)
                pending += adopted.size
            elif entry.name.endswith(PENDING):
                try:
                    pending += entry.stat().st_size
                except FileNotFoundError:
                    continue
        with self._lock:
            # Counted in the scan now; what this process appends next is added on top.
            self._scanned_pending, self._pending_since_scan = pending, 0

    def _adopt(self, path: Path) -> Segment | None:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if os.stat(path).st_ino != os.fstat(fd).st_ino:
                raise FileNotFoundError(path)  # deleted (or renamed) by its owner meanwhile
        except OSError:
            os.close(fd)
            return None
        segment = Segment(path, fd, size=os.fstat(fd).st_size)
        if not path.name.endswith(PENDING):
            self._rename_pending(segment)
        segment.pending = True
        segment.appended = 1  # never "written" from memory: only a replay finishes it
        return segment


def directory_path() -> Path:
    """The spool of this database: a spool replayed into another database would bill the wrong one."""
    db = connection.settings_dict
    label = f"{db.get('HOST') or 'local'}-{db.get('PORT') or ''}-{Path(str(db['NAME'])).name}"
    return Path(settings.GATEWAY_REQUEST_SPOOL_DIR) / re.sub(r"[^A-Za-z0-9_.-]", "_", label)
