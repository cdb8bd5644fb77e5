"""Request log rows written in batches, off the request path, and never lost to an outage.

One INSERT per request spent most of its CPU compiling forty columns on the request thread: a
quarter of a chat request's cost under load (docs/benchmarks.md). Here a request appends its
row to the spool on local disk (gateway/record/spool.py) and hands it to its process's writer
thread, which writes every row gathered within GATEWAY_REQUEST_LOG_BUFFER_S in one COPY
(PostgreSQL) or one multi-row INSERT.

While the database cannot be reached, rows are not dropped: their spool segments become
pending, and this thread replays them, in order, once it answers again, with INSERT ... ON
CONFLICT (request_id) DO NOTHING, so that a batch whose COPY did land is not written twice. A
killed process's segments are replayed by whichever process adopts them
(docs/decisions/0070-durable-request-record.md).

Rows are normalized before they are queued (gateway/record/request_log.py), so the database
should take every one. Should it refuse one anyway, the batch is split in halves, and each half
written or split again: the bad row is isolated in about 2·log2(n) writes and lost alone,
while the good rows land in a few COPYs, each once (docs/decisions/0045-request-path-integrity.md).
"""

import atexit
import logging
import queue
import threading
import time
from collections import deque

import psycopg
from django.conf import settings
from django.db import DataError, IntegrityError, connection, transaction
from psycopg.types.json import Jsonb

from gateway import db
from gateway.metrics import families
from gateway.models import RequestLog
from gateway.record.spool import COLUMNS, FIELDS, Segment, Spool

logger = logging.getLogger(__name__)

MAX_BATCH = 1000
MAX_QUEUED = 20_000
# While the database is out of reach, a write (a replay) is tried again this often.
RETRY_EVERY_S = 1.0

_TABLE = RequestLog._meta.db_table
_COLUMN_LIST = ", ".join(f.column for f in FIELDS)
_COPY_SQL = f"COPY {_TABLE} ({_COLUMN_LIST}) FROM STDIN"
# A replay lands through a temporary table, so that rows written before are skipped, not doubled.
_REPLAY_TABLE_SQL = (
    f"CREATE TEMP TABLE request_log_replay ON COMMIT DROP AS SELECT {_COLUMN_LIST} FROM {_TABLE} WITH NO DATA"
)
_REPLAY_COPY_SQL = f"COPY request_log_replay ({_COLUMN_LIST}) FROM STDIN"
_REPLAY_INSERT_SQL = (
    f"INSERT INTO {_TABLE} ({_COLUMN_LIST}) SELECT {_COLUMN_LIST} FROM request_log_replay "
    "ON CONFLICT (request_id) DO NOTHING"
)
_WRITE_NOW = object()  # queued by flush(): write what has gathered without waiting
# What a refused row raises: Django's errors (INSERT) or psycopg's own (COPY, under Django's wrapping).
_ROW_ERRORS = (DataError, IntegrityError, psycopg.DataError, psycopg.IntegrityError)


class LogWriter:
    def __init__(self) -> None:
        self._queue: queue.Queue = queue.Queue(maxsize=MAX_QUEUED)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.spool = Spool()
        # Rows that went to disk only (a full queue, an unbuffered write that failed): the
        # writer makes their segments pending.
        self._unwritten = False
        # With GATEWAY_REQUEST_SPOOL_FULL_SERVES, rows that found the spool full wait here.
        self._held: deque[RequestLog] = deque()
        self._retry_at = 0.0
        self._full = False

    def submit(self, row: RequestLog) -> None:
        if settings.GATEWAY_REQUEST_LOG_BUFFER_S <= 0:
            self._save_now(row)
            return
        self._ensure_running()
        segment = None if self._spool_refused() else self._append(row)
        try:
            self._queue.put_nowait((row, segment))
        except queue.Full:
            if segment is None:
                logger.error("Request log queue full and the spool too: row %s lost", row.request_id)
            else:
                logger.warning("Request log queue full; row %s waits in the spool", row.request_id)
                self._unwritten = True

    def refuses_requests(self) -> bool:
        """True while billable requests are to be refused: the spool is full and the operator
        kept the default (the bill before availability)."""
        return not settings.GATEWAY_REQUEST_SPOOL_FULL_SERVES and self.spool.full()

    def state(self) -> dict:
        return {
            "database": "unreachable" if db.unreachable() else "ok",
            "spool_pending_bytes": self.spool.pending_bytes(),
            "spool_full": self.spool.full(),
        }

    def flush(self) -> None:
        """Return once every row submitted so far is written, or in a pending spool segment."""
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(_WRITE_NOW)  # ends the batch being gathered
            self._queue.join()

    def close(self) -> None:
        """At exit: write what is held, delete what is written; pending segments stay on disk
        for the next process on this spool."""
        self.flush()
        self.spool.close()

    def _append(self, row: RequestLog) -> Segment | None:
        try:
            return self.spool.append(row)
        except OSError:
            # A spool that cannot be written (disk full, no permission) must not cost the row
            # its write from memory, nor the request its answer.
            logger.exception("Request log spool unwritable: row %s kept in memory only", row.request_id)
            return None

    def _spool_refused(self) -> bool:
        return settings.GATEWAY_REQUEST_SPOOL_FULL_SERVES and self.spool.full()

    def _save_now(self, row: RequestLog) -> None:
        """Unbuffered: the row is written before the answer; if the database is out of reach, it
        goes to the spool and the writer's thread replays it."""
        if not db.unreachable():
            try:
                row.save(force_insert=True)
                return
            except _ROW_ERRORS:
                logger.exception("Could not write the request log row for %s", row.request_id)
                return
            except Exception as exc:
                logger.warning(
                    "Could not write the request log row for %s (%s); it waits in the spool", row.request_id, exc
                )
        db.set_reachable(False)
        self._ensure_running()
        if self._spool_refused() or self._append(row) is None:
            self._hold([row])
            return
        self._unwritten = True

    def _ensure_running(self) -> None:
        # Checked on every submit: a forked child inherits the object but not the thread.
        if self._thread is not None and self._thread.is_alive():
            return
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="request-log-writer", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            taken = self._gather()
            try:
                self._write([item for item in taken if item is not _WRITE_NOW])
            except Exception:
                logger.exception("The request log writer failed a round; its rows are in the spool")
                self.spool.make_pending()
            finally:
                db.release_connection()
                for _ in taken:
                    self._queue.task_done()

    def _gather(self) -> list:
        # Woken at least every RETRY_EVERY_S even when idle: replays and the spool's housekeeping.
        try:
            taken = [self._queue.get(timeout=RETRY_EVERY_S)]
        except queue.Empty:
            return []
        deadline = time.monotonic() + settings.GATEWAY_REQUEST_LOG_BUFFER_S
        while taken[-1] is not _WRITE_NOW and len(taken) < MAX_BATCH:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                taken.append(self._queue.get(timeout=remaining))
            except queue.Empty:
                break
        return taken

    def _write(self, entries: list[tuple[RequestLog, Segment | None]]) -> None:
        if self._unwritten:
            self._unwritten = False
            self.spool.make_pending()
        caught_up = self._replay()
        # Rows of pending segments are replayed from disk, in order: not written from memory too.
        fresh = [(row, segment) for row, segment in entries if segment is None or not segment.pending]
        if fresh:
            if caught_up and write_batch([row for row, _ in fresh]):
                for _, segment in fresh:
                    if segment is not None:
                        segment.done += 1
            else:
                self._lost_database()
                self._hold([row for row, segment in fresh if segment is None])
        self.spool.housekeep()
        self._report()

    def _replay(self) -> bool:
        """Write the pending segments (oldest first) and the held rows; True once none is left."""
        segments = self.spool.pending_segments()
        if not segments and not self._held and not db.unreachable():
            return True
        if time.monotonic() < self._retry_at:
            return False
        replayed = 0
        for segment in segments:
            while True:
                rows, offset = self.spool.read(segment, MAX_BATCH)
                if not rows:
                    break
                if not write_batch(rows, replay=True):
                    return self._lost_database()
                segment.replayed_to = offset
                replayed += len(rows)
                families.SPOOL_REPLAYED.inc(len(rows))
            self.spool.finished(segment)
        while self._held:
            rows = list(self._held)[:MAX_BATCH]
            if not write_batch(rows, replay=True):
                return self._lost_database()
            for _ in rows:
                self._held.popleft()
        if not segments and not _database_answers():
            return self._lost_database()
        if self.spool.degraded or db.unreachable():
            self.spool.degraded = False
            db.set_reachable(True)
        if replayed:
            logger.warning("Request log: %d rows written from the spool", replayed)
        return True

    def _lost_database(self) -> bool:
        self._retry_at = time.monotonic() + RETRY_EVERY_S
        self.spool.degraded = True
        self.spool.make_pending()
        db.set_reachable(False)
        return False

    def _hold(self, rows: list[RequestLog]) -> None:
        room = MAX_QUEUED - len(self._held)
        if len(rows) > room:
            logger.error("Request log: %d rows lost: the spool full or unwritable, and memory too", len(rows) - room)
        self._held.extend(rows[: max(room, 0)])

    def _report(self) -> None:
        full = self.spool.full()
        families.SPOOL_PENDING_BYTES.set(self.spool.pending_bytes())
        if full != self._full:
            self._full = full
            families.DEGRADED.labels("request_spool_full").set(int(full))
            if full:
                logger.error(
                    "Request log spool full (%d bytes pending): %s",
                    self.spool.pending_bytes(),
                    "serving unrecorded requests"
                    if settings.GATEWAY_REQUEST_SPOOL_FULL_SERVES
                    else "refusing billable requests with 503",
                )
            else:
                logger.warning("Request log spool has room again: billable requests are served")


def write_batch(rows: list[RequestLog], *, replay: bool = False) -> bool:
    """Write the rows; False if the database could not be reached. A row the database refuses
    is logged and lost alone (see above). A replay skips rows already written."""
    try:
        with transaction.atomic():
            if connection.vendor == "postgresql":
                (_upsert if replay else _copy)(rows)
            else:
                RequestLog.objects.bulk_create(rows, ignore_conflicts=replay)
    except _ROW_ERRORS:
        if len(rows) == 1:
            logger.exception("Could not write the request log row for %s", rows[0].request_id)
            return True
        middle = len(rows) // 2
        return write_batch(rows[:middle], replay=replay) and write_batch(rows[middle:], replay=replay)
    except Exception as exc:
        # Not the rows' fault (the database is unreachable): splitting would fail as often.
        logger.warning("Could not write %d request log rows (%s); they wait in the spool", len(rows), exc)
        return False
    return True


def _database_answers() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except Exception:
        return False


def _values(row: RequestLog) -> list:
    return [Jsonb(getattr(row, name)) if is_json else getattr(row, name) for name, is_json in COLUMNS]


def _copy(rows: list[RequestLog]) -> None:
    with connection.cursor() as cursor, cursor.cursor.copy(_COPY_SQL) as copy:
        for row in rows:
            copy.write_row(_values(row))


def _upsert(rows: list[RequestLog]) -> None:
    with connection.cursor() as cursor:
        cursor.execute(_REPLAY_TABLE_SQL)
        with cursor.cursor.copy(_REPLAY_COPY_SQL) as copy:
            for row in rows:
                copy.write_row(_values(row))
        cursor.execute(_REPLAY_INSERT_SQL)


writer = LogWriter()
atexit.register(writer.close)
