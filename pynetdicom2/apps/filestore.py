"""Received instances into a directory: a mixin for the AEs of storescp, getscu,
movescu and qrscp. Files are named only after UIDs that passed validation, stream into
a temporary file, and appear under their final name only when complete.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from typing import Optional

import pydicom
from pydicom.dataset import Dataset

from pynetdicom2 import statuses
from pynetdicom2.ae import write_meta
from pynetdicom2.exceptions import EventHandlingError

logger = logging.getLogger(__name__)

#: The directory under the storage directory where transfers in progress live.
INCOMING = '.incoming'
_UID_CHARACTERS = frozenset('0123456789.')


def uid_problem(uid, what: str = 'UID') -> Optional[str]:
    """Why ``uid`` may not name a file, or None when it is a valid UID.

    PS3.5 9.1: digits and dots, at most 64 characters, no empty component. Checked
    before a UID from a peer becomes part of a path, so "../x" never escapes.
    """
    if not isinstance(uid, str) or not uid:
        return f'no {what}'
    shown = uid[:40] + ('...' if len(uid) > 40 else '')
    if len(uid) > 64:
        return f'{what} longer than 64 characters: {shown!r}'
    if not set(uid) <= _UID_CHARACTERS or any(not part for part in uid.split('.')):
        return f'invalid {what} {shown!r}'
    return None


def clean_uid(value) -> str:
    """A UID value as text, without the trailing NUL or space padding."""
    return '' if value is None else str(value).rstrip('\x00 ')


class ReceivedFiles:
    """Mixin (before the AE class) keeping every received instance as a Part-10 file.

    Set ``storage_dir``; ``study_folders`` files each instance as
    ``<storage_dir>/<StudyInstanceUID>/<SOPInstanceUID>.dcm`` instead of
    ``<storage_dir>/<SOPInstanceUID>.dcm``. A second copy of an instance replaces the
    first. ``discard`` receives and answers success but keeps nothing.
    ``instance_stored(path, ds, context)`` is called for every kept file; ``ds`` holds
    the attributes read from it (no pixel data).
    """

    storage_dir = '.'
    study_folders = False
    discard = False
    #: Attributes read from each received file (only these, for speed); None: all.
    read_tags: Optional[list] = None

    def _incoming_files(self) -> dict:
        return self.__dict__.setdefault('_received_files_entries', {})

    def _incoming_lock(self) -> threading.Lock:
        return self.__dict__.setdefault('_received_files_lock', threading.Lock())

    def get_file(self, context, command_set):
        """A new temporary file under ``<storage_dir>/.incoming`` with the file meta."""
        incoming = os.path.join(self.storage_dir, INCOMING)
        os.makedirs(incoming, exist_ok=True)
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, 'O_BINARY', 0)
        for _ in range(100):
            path = os.path.join(incoming, f'{os.urandom(8).hex()}.part')
            try:
                fd = os.open(path, flags, 0o666)
            except FileExistsError:
                continue
            break
        else:
            raise OSError(f'no free temporary file name in {incoming}')
        fp = os.fdopen(fd, 'w+b')
        try:
            write_meta(fp, command_set, context.supported_ts)
        except BaseException:
            fp.close()
            os.unlink(path)
            raise
        uid = clean_uid(command_set.get('AffectedSOPInstanceUID'))
        with self._incoming_lock():
            self._incoming_files()[fp] = (path, uid)
        return fp, fp.tell()

    def discard_file(self, fp) -> None:
        """Close ``fp``; delete it while it is still a temporary file."""
        with self._incoming_lock():
            entry = self._incoming_files().pop(fp, None)
        try:
            fp.close()
        finally:
            if entry is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry[0])

    def on_receive_store(self, context, ds):
        """Read the received file's attributes, check its UIDs, give it its final name."""
        if isinstance(ds, (bytes, bytearray, memoryview)):
            raise EventHandlingError('the data set was not received into a file')
        with self._incoming_lock():
            entry = self._incoming_files().get(ds)
        if entry is None:
            raise EventHandlingError('the data set file did not come from get_file')
        temp_path, command_uid = entry
        try:
            attrs = pydicom.dcmread(ds, stop_before_pixels=True, specific_tags=self.read_tags)
        except Exception as exc:  # pydicom raises many kinds on a malformed data set
            raise EventHandlingError(f'the data set does not decode: {exc}') from exc
        final = self.final_path(command_uid, attrs)
        if self.discard:
            return statuses.SUCCESS
        ds.close()
        final = self.place_instance(temp_path, final, attrs, context)
        with self._incoming_lock():
            self._incoming_files().pop(ds, None)
        return statuses.SUCCESS

    def place_instance(self, temp_path: str, final_path: str, attrs: Dataset, context) -> str:
        """Give the complete file ``temp_path`` its final name; the path it now has.

        Makes the directory, moves the file, calls ``instance_stored``. An override
        may do more in the same step (qrscp indexes the instance under a lock) or
        raise ``EventHandlingError`` to refuse the instance: the file is then still
        ``temp_path``, and is deleted as any refused data set.
        """
        os.makedirs(os.path.dirname(final_path), exist_ok=True)
        os.replace(temp_path, final_path)
        logger.info('stored %s', final_path)
        self.instance_stored(final_path, attrs, context)
        return final_path

    def final_path(self, command_uid: str, attrs: Dataset) -> str:
        """Where the instance goes; ``EventHandlingError`` when its UIDs forbid it."""
        problem = uid_problem(command_uid, 'SOP Instance UID')
        if problem:
            raise EventHandlingError(problem)
        data_set_uid = clean_uid(attrs.get('SOPInstanceUID'))
        if data_set_uid and data_set_uid != command_uid:
            raise EventHandlingError(
                f'the data set\'s SOP Instance UID {data_set_uid[:40]} is not the one of '
                'the C-STORE request')
        name = f'{command_uid}.dcm'
        if not self.study_folders:
            return os.path.join(self.storage_dir, name)
        study = clean_uid(attrs.get('StudyInstanceUID'))
        problem = uid_problem(study, 'Study Instance UID')
        if problem:
            raise EventHandlingError(problem)
        return os.path.join(self.storage_dir, study, name)

    def instance_stored(self, path: str, attrs: Dataset, context) -> None:
        """Called after each instance reached its final name; default: nothing."""
