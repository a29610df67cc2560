"""The archive index of qrscp: an embedded SQLite database (stdlib ``sqlite3``) of the
patients, studies, series and instances stored on disk, kept in step with the files.
``Index`` opens it at the current schema version (rebuilding an older one from the
files), serialises changes across qrscp's worker processes with a lock file, moves a
received file to its final name and indexes it as one step, settles what a crash
interrupted, and answers C-FIND and retrieve identifiers.

Its parts, each re-exported here: ``qrschema`` (what is kept, the SQL schema),
``qrvalues`` (values read and normalised), ``qrquery`` (identifiers as SQL, with
DICOM's matching rules), ``qrrows`` (the rows of one instance, under the hierarchy's
rules) and ``qranswers`` (C-FIND response identifiers).

Rules the index keeps (the qrscp page of the documentation says why):

* What is stored is never re-parented: an instance whose study already belongs to
  another patient, or whose series already belongs to another study, raises
  ``Conflict`` and changes nothing. A row, once written, is never relabelled by a
  later instance; it is rewritten only when the one instance it held is replaced.
* ``place`` moves a received file to its final name and indexes it as one step:
  a SOP Instance UID stored again replaces the old file and row; a crash in the
  middle is settled by ``recover`` at the next start (the ``placement`` table).
* A value that does not parse as its VR (IS "abc", DA "2020-13-45") is indexed as
  its text, so single-value matching still finds it, and left out of range matching.
* The schema has a version (``PRAGMA user_version``); an older index is rebuilt
  from the files when it is opened.

Files are referred to by their path relative to the storage directory.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
from typing import Dict, List, Optional, Tuple

try:
    import fcntl
except ImportError:  # not POSIX: one process per index
    fcntl = None

import pydicom
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset

from pynetdicom2.apps.filestore import INCOMING
from pynetdicom2.apps.qranswers import match_dataset
from pynetdicom2.apps.qrquery import (
    Match, QueryError, build_find, build_retrieve, condition, levels_for, query_level)
from pynetdicom2.apps.qrrows import Conflict, instance_record, put_instance, remove_instance
from pynetdicom2.apps.qrschema import (
    ATTRIBUTES, COLUMNS, INDEXED_KEYWORDS, LEVELS, SCHEMA_VERSION, TABLES, UNIQUE_KEYS,
    IndexVersionError, create_tables, table_names)
from pynetdicom2.apps.qrvalues import element_text, keyword_text, normalise, range_value

logger = logging.getLogger(__name__)


class Index:
    """The SQLite index of one storage directory; safe to share between threads, and
    between the processes of one qrscp (its workers; ``after_fork``).

    ``path`` ':memory:' keeps it in memory (tests). Every call runs under one lock, in
    its own transaction; every change also under an exclusive lock of
    ``<path>-lock`` (``lockf``) held across processes, so that a file move and its
    rows change as one step whichever worker makes it. Readers never wait for it
    (WAL mode). An index of an older schema version is rebuilt from the
    files here (``rebuilt`` then says how many were indexed); ``recreate`` starts an
    empty index whatever was there (``--reindex``); a newer version raises
    ``IndexVersionError``.
    """

    #: Seconds a statement waits while another process writes (SQLite busy timeout).
    busy_timeout = 30.0

    def __init__(self, path: str, storage_dir: str, recreate: bool = False) -> None:
        self.path = path
        self.storage_dir = os.path.abspath(storage_dir)
        self._lock = threading.RLock()
        self._db: Optional[sqlite3.Connection] = None
        self._writer_fd = self._open_writer_lock()
        self._writer_depth = 0
        self._inherited: list = []
        self.rebuilt: Optional[Tuple[int, int]] = None
        if recreate:
            self._recreate()
            return
        try:
            self._connect()
            version = self._db.execute('PRAGMA user_version').fetchone()[0]
            tables = table_names(self._db)
        except sqlite3.DatabaseError as exc:
            raise OSError(f'cannot open the index database {path}: {exc}') from exc
        if not tables:
            self._recreate()
        elif version > SCHEMA_VERSION:
            self._db.close()
            raise IndexVersionError(
                f'the index {path} has schema version {version}, newer than this qrscp '
                f'({SCHEMA_VERSION}); rebuild it with --reindex or use another --database')
        elif version < SCHEMA_VERSION:
            logger.warning('the index %s has schema version %d (this qrscp writes %d): '
                           'rebuilding it from the files', path, version, SCHEMA_VERSION)
            self.rebuilt = self.rebuild()
            logger.warning('index rebuilt: %d instance(s) indexed, %d file(s) skipped',
                           *self.rebuilt)

    def _open_writer_lock(self) -> Optional[int]:
        """The file whose lock makes changes exclusive across processes; None for an
        index in memory or where there is no ``fcntl`` (one process, please)."""
        if self.path == ':memory:' or fcntl is None:
            return None
        try:
            return os.open(self.path + '-lock', os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise OSError(f'cannot open the lock file of the index {self.path}: {exc}') from exc

    @contextlib.contextmanager
    def _writing(self):
        """Hold the thread lock and, across processes, the writer lock (re-entrant)."""
        with self._lock:
            if self._writer_depth == 0 and self._writer_fd is not None:
                # POSIX record locks belong to the process: workers exclude each other,
                # and the kernel drops the lock of a worker that dies holding it.
                fcntl.lockf(self._writer_fd, fcntl.LOCK_EX)
            self._writer_depth += 1
            try:
                yield
            finally:
                self._writer_depth -= 1
                if self._writer_depth == 0 and self._writer_fd is not None:
                    fcntl.lockf(self._writer_fd, fcntl.LOCK_UN)

    def after_fork(self) -> None:
        """Call in a process forked from the one that opened the index (a qrscp
        worker), before using it: a connection of its own. The inherited one is kept
        but never used nor closed here (an SQLite connection must not cross a fork;
        closing it could disturb the parent's)."""
        self._inherited.append(self._db)
        self._lock = threading.RLock()
        self._writer_depth = 0
        self._connect()

    def _connect(self) -> None:
        # A busy timeout: another worker may be writing (our writer lock serializes
        # changes; checkpoints and the WAL's recovery can still hold a lock briefly).
        self._db = sqlite3.connect(self.path, timeout=self.busy_timeout,
                                   check_same_thread=False, isolation_level=None)
        if self.path != ':memory:':
            self._db.execute('PRAGMA journal_mode=WAL')
            self._db.execute('PRAGMA synchronous=NORMAL')

    def _recreate(self) -> None:
        """Drop whatever the database holds and create the current schema, empty."""
        with self._writing():
            try:
                if self._db is None:
                    self._connect()
                self._drop_and_create()
            except sqlite3.DatabaseError as exc:
                if self.path == ':memory:':
                    raise
                # Not a database at all (a damaged file): start a new one.
                logger.warning('the index %s is unreadable (%s): starting a new one',
                               self.path, exc)
                if self._db is not None:
                    self._db.close()
                for suffix in ('', '-wal', '-shm'):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(self.path + suffix)
                try:
                    self._connect()
                    self._drop_and_create()
                except sqlite3.DatabaseError as again:
                    raise OSError(f'cannot create the index database {self.path}: '
                                  f'{again}') from again

    def _drop_and_create(self) -> None:
        with self._transaction():
            create_tables(self._db)

    def close(self) -> None:
        with self._lock:
            self._db.close()
            if self._writer_fd is not None:
                os.close(self._writer_fd)
                self._writer_fd = None

    @contextlib.contextmanager
    def _transaction(self):
        """BEGIN IMMEDIATE .. COMMIT (ROLLBACK on any exception); caller holds the lock."""
        self._db.execute('BEGIN IMMEDIATE')
        try:
            yield
        except BaseException:
            self._db.execute('ROLLBACK')
            raise
        self._db.execute('COMMIT')

    # -- writing -------------------------------------------------------------------------

    def add(self, ds: Dataset, path: str, size: Optional[int] = None,
            transfer_syntax: Optional[str] = None) -> Optional[str]:
        """Index the instance ``ds`` (its attributes; pixel data not needed) kept at
        ``path``, a file already in place. A known SOP Instance UID is replaced.

        Raises ``Conflict`` (nothing changed) when it would re-parent what is stored.
        Returns the path the replaced row pointed to (relative), or None.
        """
        record = instance_record(ds, path, size, transfer_syntax, self.storage_dir)
        with self._writing(), self._transaction():
            return put_instance(self._db, record)

    def place(self, ds: Dataset, temp_path: str, final_path: str, size: Optional[int] = None,
              transfer_syntax: Optional[str] = None) -> None:
        """Move the complete file ``temp_path`` to ``final_path`` and index it, as one step.

        Under the writer lock (held across processes): the rows are written
        (``Conflict``: nothing is, and ``temp_path`` stays where it is), the file is
        moved, the file of a replaced instance with another path is removed. A crash at
        any point leaves a ``placement`` row, which ``recover`` settles from what is on
        disk.
        """
        record = instance_record(ds, final_path, size, transfer_syntax,
                                 self.storage_dir)
        uid = record.values['SOPInstanceUID']
        with self._writing():
            with self._transaction():
                previous = put_instance(self._db, record)
                self._db.execute('INSERT OR REPLACE INTO placement VALUES (?, ?, ?)',
                                 (uid, record.path, previous))
            try:
                os.makedirs(os.path.dirname(final_path), exist_ok=True)
                os.replace(temp_path, final_path)
                if previous is not None and previous != record.path:
                    self._remove_file(previous)
            except OSError:
                self._settle(uid, record.path, previous)
                raise
            try:
                self._db.execute('DELETE FROM placement WHERE SOPInstanceUID = ?', (uid,))
            except sqlite3.Error as exc:
                # The instance is in place and indexed; the row left behind only makes
                # the next start check it again (``recover``).
                logger.warning('placement of %s not cleared: %s', uid, exc)

    def _remove_file(self, relpath: str) -> None:
        path = self.resolve(relpath)
        if path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)

    def _read(self, path: str) -> Tuple[Dataset, str]:
        """The indexed attributes and the transfer syntax of the Part-10 file ``path``."""
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=INDEXED_KEYWORDS)
        meta = getattr(ds, 'file_meta', None)
        ts = element_text(meta, tag_for_keyword('TransferSyntaxUID'), 'UI') if meta else ''
        if not ts:
            raise ValueError('no file meta information')
        return ds, ts

    def _settle(self, uid: str, relpath: str, previous: Optional[str]) -> None:
        """Make the index say what the disk holds for ``uid`` after an interrupted
        ``place``: the new file when it arrived (then the replaced one is removed),
        else the replaced one; the placement row goes."""
        candidates = [relpath] + ([previous] if previous not in (None, relpath) else [])
        with self._writing():
            indexed = None
            with self._transaction():
                remove_instance(self._db, uid)
                for candidate in candidates:
                    path = self.resolve(candidate)
                    if path is None or not os.path.isfile(path):
                        continue
                    try:
                        ds, ts = self._read(path)
                        record = instance_record(ds, path, os.path.getsize(path), ts,
                                                 self.storage_dir)
                    except Exception as exc:  # pydicom raises many kinds on a bad file
                        logger.warning('%s not indexed after an interrupted store: %s',
                                       path, exc)
                        continue
                    self._db.execute('SAVEPOINT settle')
                    try:
                        put_instance(self._db, record)
                    except Conflict as exc:
                        self._db.execute('ROLLBACK TO settle')
                        self._db.execute('RELEASE settle')
                        logger.warning('%s not indexed after an interrupted store: %s',
                                       path, exc)
                        continue
                    self._db.execute('RELEASE settle')
                    indexed = candidate
                    break
                self._db.execute('DELETE FROM placement WHERE SOPInstanceUID = ?', (uid,))
            if indexed == relpath and len(candidates) == 2:
                # The new file arrived: the copy it replaced must not come back.
                self._remove_file(previous)

    def recover(self) -> int:
        """Settle every store a crash interrupted (see ``place``); how many there were."""
        with self._writing():
            rows = self._db.execute('SELECT SOPInstanceUID, path, previous FROM '
                                    'placement').fetchall()
            for uid, relpath, previous in rows:
                logger.warning('settling the store of %s interrupted by a crash', uid)
                self._settle(uid, relpath, previous)
        return len(rows)

    def clear(self) -> None:
        with self._writing(), self._transaction():
            for table in ('placement', 'instance', 'series', 'study', 'patient'):
                self._db.execute(f'DELETE FROM {table}')

    def rebuild(self) -> Tuple[int, int]:
        """Drop the index and index every Part-10 file under the storage directory.

        Returns ``(indexed, skipped)``. Hidden files and directories (transfers in
        progress, temporary files) and the database files are not read. Of two files
        with one SOP Instance UID the newer is indexed; a file that would re-parent
        what is already indexed is skipped, with a warning.
        """
        with self._writing():
            return self._rebuild()

    def _rebuild(self) -> Tuple[int, int]:
        self._recreate()
        indexed = skipped = 0
        database = os.path.abspath(self.path)
        for root, dirs, files in os.walk(self.storage_dir):
            dirs[:] = sorted(d for d in dirs if not d.startswith('.') and d != INCOMING)
            for name in sorted(files):
                path = os.path.join(root, name)
                if name.startswith('.') or os.path.abspath(path) == database or \
                        os.path.abspath(path).startswith(database + '-'):
                    continue
                try:
                    ds, ts = self._read(path)
                    uid = keyword_text(ds, 'SOPInstanceUID')
                    known = self.instance(uid) if uid else None
                    if known is not None and os.path.getmtime(known[1]) > \
                            os.path.getmtime(path):
                        logger.warning('%s holds SOP Instance UID %s as %s does, and is '
                                       'older: not indexed', path, uid, known[1])
                        skipped += 1
                        continue
                    replaced = self.add(ds, path, os.path.getsize(path), ts)
                    if replaced is not None:
                        logger.warning('%s holds SOP Instance UID %s as %s does, and is '
                                       'newer: indexed in its place', path, uid, replaced)
                        skipped += 1
                    else:
                        indexed += 1
                except Conflict as exc:
                    logger.warning('not indexed: %s: %s', path, exc)
                    skipped += 1
                except Exception as exc:  # not DICOM, or lacking the hierarchy's UIDs
                    logger.info('not indexed: %s: %s', path, exc)
                    skipped += 1
        return indexed, skipped

    # -- reading -------------------------------------------------------------------------

    def find(self, identifier: Dataset, root: str = 'patient') -> List[Match]:
        """The matches of a C-FIND identifier, in the order the archive received them."""
        level = query_level(identifier, root)
        sql, params, keywords = build_find(level, identifier)
        with self._lock:
            rows = self._db.execute(sql, params).fetchall()
        return [Match(level, dict(zip(keywords, row))) for row in rows]

    def retrieve(self, identifier: Dataset, root: str = 'patient') -> List[str]:
        """Absolute paths of the instances a C-MOVE / C-GET identifier names."""
        level = query_level(identifier, root)
        sql, params = build_retrieve(level, identifier)
        with self._lock:
            rows = self._db.execute(sql, params).fetchall()
        return [p for p in (self.resolve(row[0]) for row in rows) if p is not None]

    def instance(self, sop_instance_uid: str) -> Optional[Tuple[str, str]]:
        """``(SOPClassUID, absolute path)`` of a stored instance, or None."""
        with self._lock:
            row = self._db.execute('SELECT SOPClassUID, path FROM instance WHERE '
                                   'SOPInstanceUID = ?', (sop_instance_uid,)).fetchone()
        if row is None:
            return None
        path = self.resolve(row[1])
        return None if path is None else (row[0], path)

    def resolve(self, relpath: str) -> Optional[str]:
        """The absolute path of an indexed file; None for one outside the storage."""
        path = os.path.abspath(os.path.join(self.storage_dir, relpath))
        if os.path.commonpath([path, self.storage_dir]) != self.storage_dir:
            logger.warning('index entry %r points outside the storage directory', relpath)
            return None
        return path

    def counts(self) -> Dict[str, int]:
        with self._lock:
            return {level: self._db.execute(f'SELECT COUNT(*) FROM {TABLES[level]}')
                    .fetchone()[0] for level in LEVELS}


__all__ = ['Index', 'Match', 'QueryError', 'Conflict', 'IndexVersionError', 'build_find',
           'build_retrieve', 'condition', 'match_dataset', 'normalise', 'range_value',
           'element_text', 'query_level', 'levels_for', 'LEVELS', 'ATTRIBUTES',
           'INDEXED_KEYWORDS', 'SCHEMA_VERSION', 'COLUMNS', 'TABLES', 'UNIQUE_KEYS']
