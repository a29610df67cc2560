"""Received instances into a directory: the folder storage of storescp, getscu, movescu
and qrscp, which is the library's one (``FolderStorageMixin``) with the tools' rules:
transfers in progress under ``<storage_dir>/.incoming``, study folders on request, and a
second copy of an instance replacing the first.
"""

from __future__ import annotations

import logging
import os
from typing import Optional

from pydicom.dataset import Dataset

from pynetdicom2.ae import FolderStorageMixin
from pynetdicom2.exceptions import EventHandlingError
from pynetdicom2.incoming import clean_uid, uid_problem

logger = logging.getLogger(__name__)

#: The directory under the storage directory where transfers in progress live.
INCOMING = '.incoming'

__all__ = ['INCOMING', 'ReceivedFiles', 'clean_uid', 'uid_problem']


class ReceivedFiles(FolderStorageMixin):
    """Mixin (before the AE class) keeping every received instance as a Part-10 file.

    Set ``storage_dir``; ``study_folders`` files each instance as
    ``<storage_dir>/<StudyInstanceUID>/<SOPInstanceUID>.dcm`` instead of
    ``<storage_dir>/<SOPInstanceUID>.dcm``. A second copy of an instance replaces the
    first. ``discard`` receives and answers success but keeps nothing.
    ``instance_stored(path, ds, context)`` is called for every kept file; ``ds`` holds
    the attributes read from it (``read_tags``; no pixel data). A data set is kept only
    when it parses to its end and names the request's UIDs (``FolderStorageMixin``).
    Transfers in progress are ``<storage_dir>/.incoming/<random>.part``.
    """

    storage_dir = '.'
    study_folders = False
    replace_existing = True
    incoming_folder = INCOMING
    temporary_prefix = ''
    #: Attributes read from each received file (only these, for speed); None: all.
    read_tags: Optional[list] = None

    def final_path(self, command_uid: str, attrs: Dataset) -> str:
        """Where the instance goes; ``EventHandlingError`` when its UIDs forbid it."""
        path = super().final_path(command_uid, attrs)
        if not self.study_folders:
            return path
        study = clean_uid(attrs.get('StudyInstanceUID'))
        problem = uid_problem(study, 'Study Instance UID')
        if problem:
            raise EventHandlingError(problem)
        return os.path.join(self.storage_dir, study, os.path.basename(path))

    def place_instance(self, temp_path: str, final_path: str, attrs: Dataset, context) -> str:
        placed = super().place_instance(temp_path, final_path, attrs, context)
        logger.info('stored %s', placed)
        return placed
