"""Request log rows written in batches, off the request path.

One INSERT per request spent most of its CPU compiling forty columns on the request thread: a
quarter of a chat request's cost under load (docs/benchmarks.md). Here a request hands its row
to its process's writer thread, which writes every row gathered within
GATEWAY_REQUEST_LOG_BUFFER_S in one COPY (PostgreSQL) or one multi-row INSERT.

Rows wait in memory at most that long: a clean stop (gunicorn's worker_exit, interpreter exit)
writes them first, a killed process loses at most that window (docs/decisions). A full queue
makes requests write their own rows rather than drop them or grow without bound.

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

import psycopg
from django.conf import settings
from django.db import DataError, IntegrityError, connection, transaction
from psycopg.types.json import Jsonb

from gateway.db import release_connection
from gateway.models import RequestLog

logger = logging.getLogger(__name__)

MAX_BATCH = 1000
MAX_QUEUED = 20_000

_FIELDS = [f for f in RequestLog._meta.concrete_fields if not f.primary_key]
_COPY_SQL = f"COPY {RequestLog._meta.db_table} ({', '.join(f.column for f in _FIELDS)}) FROM STDIN"
# (attribute, is JSON): psycopg needs JSON values wrapped.
_COLUMNS = [(f.attname, f.get_internal_type() == "JSONField") for f in _FIELDS]
_WRITE_NOW = object()  # queued by flush(): write what has gathered without waiting
# What a refused row raises: Django's errors (INSERT) or psycopg's own (COPY, under Django's wrapping).
_ROW_ERRORS = (DataError, IntegrityError, psycopg.DataError, psycopg.IntegrityError)


class LogWriter:
    def __init__(self) -> None:
        self._queue: queue.Queue = queue.Queue(maxsize=MAX_QUEUED)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, row: RequestLog) -> None:
        if settings.GATEWAY_REQUEST_LOG_BUFFER_S <= 0:
            save(row)
            return
        self._ensure_running()
        try:
            self._queue.put_nowait(row)
        except queue.Full:
            logger.warning("Request log queue full; writing on the request thread")
            save(row)

    def flush(self) -> None:
        """Return once every row submitted so far is written."""
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(_WRITE_NOW)  # ends the batch being gathered
            self._queue.join()

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
            rows = [item for item in taken if item is not _WRITE_NOW]
            try:
                if rows:
                    write_batch(rows)
            finally:
                release_connection()
                for _ in taken:
                    self._queue.task_done()

    def _gather(self) -> list:
        taken = [self._queue.get()]
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


def write_batch(rows: list[RequestLog]) -> None:
    """Write the rows; a row the database refuses is logged and lost alone (see above)."""
    try:
        with transaction.atomic():
            if connection.vendor == "postgresql":
                _copy(rows)
            else:
                RequestLog.objects.bulk_create(rows)
    except _ROW_ERRORS:
        if len(rows) == 1:
            logger.exception("Could not write the request log row for %s", rows[0].request_id)
            return
        middle = len(rows) // 2
        write_batch(rows[:middle])
        write_batch(rows[middle:])
    except Exception:
        # Not the rows' fault (the database is unreachable): splitting would fail as often.
        logger.exception("Could not write a batch of %d request log rows", len(rows))


def save(row: RequestLog) -> None:
    """A failed write is logged, never turned into a failed answer."""
    try:
        row.save(force_insert=True)
    except Exception:
        logger.exception("Could not write the request log row for %s", row.request_id)


def _copy(rows: list[RequestLog]) -> None:
    with connection.cursor() as cursor, cursor.cursor.copy(_COPY_SQL) as copy:
        for row in rows:
            copy.write_row([Jsonb(getattr(row, name)) if is_json else getattr(row, name) for name, is_json in _COLUMNS])


writer = LogWriter()
atexit.register(writer.flush)
