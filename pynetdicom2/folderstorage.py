"""Folder storage: every received instance kept as a file in one directory.

``FolderStorageMixin`` receives into a temporary file and gives a complete, checked
instance its final name ``<SOPInstanceUID>.dcm`` (``_1`` ... when taken, by hard links
so that two associations never overwrite each other); ``StorageAE`` (a server) and
``ClientStorageAE`` (a client receiving C-GET sub-operations) are the AEs built on it.
"""

from __future__ import annotations

import errno
import io
import logging
import os
import threading
from typing import Iterable, Optional

import pydicom
from pydicom.dataset import Dataset

from pynetdicom2 import incoming, statuses
from pynetdicom2.aebase import ClientAE
from pynetdicom2.aeserver import AE
from pynetdicom2.exceptions import EventHandlingError
from pynetdicom2.services import storage as storage_service, verification as verification_service
from pynetdicom2.sparefiles import SpareFiles, UnnamedFile

# Files that cannot be stored are logged where they always were (docs/howto/logging.rst).
logger = logging.getLogger('pynetdicom2.ae')

# The steps of keeping an instance that see what ``read_attributes`` read.
_STEPS_SEEING_ATTRIBUTES = ('read_attributes', 'final_path', 'place_instance',
                            'instance_stored')
_NOTHING_READ = Dataset()


class FolderStorageMixin:
    """Store each received data set as ``<storage_dir>/<SOPInstanceUID>.dcm``.

    Mixed in before an AE class; needs ``storage_dir``. The one folder storage of the
    library: ``StorageAE``, ``ClientStorageAE`` and the command-line tools use it.

    A data set streams into a temporary ``.tmp-<random>.part`` file inside the
    directory (``incoming_folder`` and ``temporary_prefix`` say where; on Linux, an
    unnamed file that gets that name only if something asks for its ``name``,
    ``pynetdicom2.sparefiles``) and gets its final name only when complete, checked
    (it parses to its end and names the request's UIDs) and accepted by
    ``on_receive_store`` with a Success or Warning status, before the response leaves.
    The hook only decides the status: whether or not it calls this class's version,
    the file is kept on Success or Warning, and nothing is kept on a Failure or
    ``EventHandlingError``. A name already taken gets ``_1`` ... ``_<max_iterations>``;
    beyond that the store fails with ``OSError`` (answered 0xA700, out of resources).
    A SOP Instance UID that is not a valid UID is refused with 0xC000 (cannot
    understand) and an Error Comment saying why.

    The steps of keeping an instance are hooks: ``read_attributes`` (``read_tags``),
    ``final_path``, ``place_instance`` and ``instance_stored``. ``discard`` receives
    and answers, but keeps nothing.
    """

    #: How many ``_<n>`` suffixes to try when ``<uid>.dcm`` is taken.
    max_iterations = 10
    #: A second copy of an instance replaces the first instead of taking a suffix.
    replace_existing = False
    #: Where transfers in progress live, under ``storage_dir`` ('' : in it), and the
    #: prefix of their ``<prefix><random>.part`` names.
    incoming_folder = ''
    temporary_prefix = '.tmp-'
    #: The attributes ``read_attributes`` reads from a complete file for the later
    #: steps: ``()`` none (the default: nothing is parsed), None all but pixel data.
    read_tags: Optional[Iterable] = ()
    #: Receive and answer, keep nothing.
    discard = False

    def incoming_data_set(self, sop_class_uid: str, sop_instance_uid: str,
                          transfer_syntax: str) -> incoming.IncomingDataSet:
        """A temporary file in the storage directory, given its final name when kept."""
        problem = incoming.uid_problem(sop_instance_uid, 'SOP Instance UID')
        if problem is not None:
            # Never a file name: the bytes are dropped and the store refused.
            return incoming.NullDataSet(sop_class_uid, sop_instance_uid, transfer_syntax,
                                        incoming.Refusal(incoming.CANNOT_UNDERSTAND, problem))
        if self.discard:
            return incoming.NullDataSet(sop_class_uid, sop_instance_uid, transfer_syntax)
        owner = incoming.FolderDataSet(self, sop_class_uid, sop_instance_uid, transfer_syntax)
        owner.create()  # now: a full disk is known before the data
        return owner

    def _temporary_folder(self) -> str:
        if not self.incoming_folder:
            return self.storage_dir
        return os.path.join(self.storage_dir, self.incoming_folder)

    def _spare_files(self) -> SpareFiles:
        spares = self.__dict__.get('_spares')
        if spares is None:
            spares = self.__dict__.setdefault('_spares', SpareFiles())
        return spares

    def prepare_temporary_file(self) -> None:
        """Make the file of the next received data set now: the storage service calls
        this once a C-STORE response has gone, while the peer prepares its next
        request (``pynetdicom2.sparefiles``). Never raises.

        Only while one association is served: with several, the others' work fills
        that time, and making files ahead would only add to it."""
        # Only this class's create_temporary_file takes them.
        if self.discard or incoming.overridden(self, 'create_temporary_file'):
            return
        if getattr(self, 'active_associations', 1) > 1:
            return
        self._spare_files().prepare(self._temporary_folder())

    def quit(self) -> None:
        """The AE's ``quit``, if it has one; the files made ahead are closed too."""
        try:
            quit_ = getattr(super(), 'quit', None)
            if quit_ is not None:
                quit_()
        finally:
            spares = self.__dict__.get('_spares')
            if spares is not None:
                spares.close()

    def incoming_file(self):
        """The file of the next received data set and its path: an unnamed file
        (``sparefiles.UnnamedFile``, path None: named only when something asks for
        its ``name``), made ahead or now; else, or with a ``create_temporary_file``
        of one's own, ``create_temporary_file``'s."""
        if not incoming.overridden(self, 'create_temporary_file'):
            spares = self._spare_files()
            folder = self._temporary_folder()
            fp = spares.take(folder, self._temporary_path)
            if fp is None:
                fp = spares.make_now(folder, self._temporary_path)
            if fp is not None:
                return fp, None
        return self.create_temporary_file()

    def _temporary_path(self) -> str:
        return os.path.join(self._temporary_folder(),
                            f'{self.temporary_prefix}{os.urandom(8).hex()}.part')

    @incoming.library_default
    def create_temporary_file(self):
        """A new ``<prefix><random>.part`` file, open for reading and writing, and its path."""
        if self.incoming_folder:
            os.makedirs(self._temporary_folder(), exist_ok=True)
        for _ in range(100):
            path = self._temporary_path()
            try:
                # 'x': created here or not at all; 0o666 minus the umask, as any other
                # file the user's programs write. ``fp.name`` is the path, which a
                # 0.9.x hook may read (``pydicom.dcmread(ds.name)``). Unbuffered: the
                # owner gathers what arrives and writes it in whole pages.
                return io.FileIO(path, 'x+'), path
            except FileExistsError:
                continue
        raise OSError('no free temporary file name in '
                      f'{os.path.join(self.storage_dir, self.incoming_folder)}')

    def on_receive_store(self, context, ds):
        """Decide the status of a received data set: SUCCESS (it is then kept).

        Override it to decide otherwise; calling this version is not needed."""
        return statuses.SUCCESS

    # -- the steps of keeping an instance ---------------------------------------------

    def _unread_attributes(self) -> Optional[Dataset]:
        """What ``read_attributes`` returns without reading when every step of keeping
        an instance is the library's and none looks at attributes (the temporary file
        is then touched only by ``place_instance``'s link), else None."""
        if self.read_tags is not None and not self.read_tags and not any(
                incoming.overridden(self, step) for step in _STEPS_SEEING_ATTRIBUTES):
            return _NOTHING_READ
        return None

    @incoming.library_default
    def read_attributes(self, path: str) -> Dataset:
        """The attributes named by ``read_tags`` of the complete file ``path``."""
        if self.read_tags is not None and not self.read_tags:
            if not any(incoming.overridden(self, step) for step in _STEPS_SEEING_ATTRIBUTES):
                # Only the library's steps see them, and they do not look: the one
                # shared empty data set spares building one per instance (a pydicom
                # Dataset() costs ~15 µs).
                return _NOTHING_READ
            return Dataset()
        try:
            return pydicom.dcmread(path, stop_before_pixels=True,
                                   specific_tags=self.read_tags)
        except Exception as exc:  # pydicom raises many kinds on a malformed data set
            raise EventHandlingError(f'the data set does not decode: {exc}') from exc

    @incoming.library_default
    def final_path(self, command_uid: str, attrs: Dataset) -> str:
        """Where the instance goes: ``<storage_dir>/<SOPInstanceUID>.dcm``.

        ``command_uid`` is the request's (validated) SOP Instance UID, ``attrs`` what
        ``read_attributes`` read. Raise ``EventHandlingError`` to refuse (0xC000).
        """
        problem = incoming.uid_problem(command_uid, 'SOP Instance UID')
        if problem:
            raise EventHandlingError(problem)
        return os.path.join(self.storage_dir, f'{command_uid}.dcm')

    @incoming.library_default
    def place_instance(self, temp_path: str, final_path: str, attrs: Dataset, context) -> str:
        """Move the complete, checked file ``temp_path`` to ``final_path``; returns the
        name it got, after ``instance_stored`` has run.

        A name already taken gets a ``_<n>`` suffix (or is replaced, with
        ``replace_existing``). Raise ``EventHandlingError`` (or
        ``incoming.InstanceRefused`` for a status of your own) to refuse the instance,
        ``OSError`` when the disk fails; either way nothing may remain under a final
        name. ``temp_path`` is deleted afterwards when it still exists.
        """
        folder = os.path.dirname(final_path)
        if folder and folder != self.storage_dir:  # the storage directory exists
            os.makedirs(folder, exist_ok=True)
        if self.replace_existing:
            os.replace(temp_path, final_path)
            placed = final_path
        else:
            placed = self._link_numbered(temp_path, final_path)
        try:
            self.instance_stored(placed, attrs, context)
        except BaseException:
            try:
                os.unlink(placed)
            except OSError:
                logger.warning('cannot delete %s', placed, exc_info=True)
            raise
        return placed

    @incoming.library_default
    def instance_stored(self, path: str, attrs: Dataset, context) -> None:
        """Called when an instance has reached its final name ``path``; default: nothing."""

    def place_unnamed(self, fp: UnnamedFile, command_uid: str) -> Optional[str]:
        """Link the complete, checked file ``fp``, never named, straight to its final
        name (or its first free ``_<n>`` variant), when every step of keeping an
        instance is the library's; returns that name. None: a step is the user's and
        takes a path, so the file needs a temporary name first."""
        if self.replace_existing or self._unread_attributes() is None:
            return None
        # The library's place_instance, with no temporary name to remove and
        # instance_stored doing nothing.
        return self._first_free(self.final_path(command_uid, _NOTHING_READ), fp.link)

    def _link_numbered(self, temp_path: str, final_path: str) -> str:
        """Give ``temp_path`` the name ``final_path``, or its first free ``_<n>`` variant.

        ``os.link`` fails when the name exists, so two associations storing the
        same UID never overwrite each other; where hard links are not supported,
        a check and ``os.replace`` under a lock do the same within this process.
        """
        def link(final: str) -> None:
            try:
                os.link(temp_path, final)
            except (OSError, AttributeError, NotImplementedError) as exc:
                if isinstance(exc, FileExistsError) or (
                        isinstance(exc, OSError) and exc.errno not in _NO_LINK_ERRNOS):
                    raise
                with _replace_lock:
                    if os.path.lexists(final):
                        raise FileExistsError(errno.EEXIST, 'File exists', final) from None
                    os.replace(temp_path, final)

        placed = self._first_free(final_path, link)
        try:
            os.unlink(temp_path)
        except FileNotFoundError:
            pass  # replaced, where there are no hard links
        return placed

    def _first_free(self, final_path: str, link) -> str:
        """``link(name)`` on ``final_path``, then on its ``_1`` ... variants while
        ``link`` raises ``FileExistsError``; returns the name it took."""
        for n in range(self.max_iterations + 1):
            if n == 0:
                final = final_path
            else:
                if n == 1:  # the name is taken (rare): the numbered ones
                    base, ext = os.path.splitext(final_path)
                final = f'{base}_{n}{ext}'
            try:
                link(final)
            except FileExistsError:
                continue
            return final
        raise OSError(errno.EEXIST, f'{os.path.basename(final_path)} and its '
                      f'{self.max_iterations} numbered variants already exist in '
                      f'{os.path.dirname(final_path) or "."}')


# Errors of os.link that mean "no hard links here" (FAT, some network shares).
_NO_LINK_ERRNOS = frozenset(e for e in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV,
                                        getattr(errno, 'ENOTSUP', None), errno.EMLINK)
                            if e is not None)
_replace_lock = threading.Lock()


class StorageAE(FolderStorageMixin, AE):
    """An AE (server) storing every received instance in ``storage_dir``.

    Serves verification and every storage SOP class. ``storage_dir`` is created when
    missing. Extra keywords (``bind_address``) go to ``AE``.
    """

    def __init__(self, storage_dir, ae_title: str, port: int,
                 supported_ts: Optional[Iterable[str]] = None, max_pdu_length: int = 65536,
                 bind_and_activate: bool = True, **kwargs) -> None:
        self.storage_dir = os.fspath(storage_dir)
        os.makedirs(self.storage_dir, exist_ok=True)
        AE.__init__(self, ae_title, port, supported_ts, max_pdu_length, bind_and_activate,
                    **kwargs)
        self.add_scp(verification_service.verification_scp)
        self.add_scp(storage_service.storage_scp)


class ClientStorageAE(FolderStorageMixin, ClientAE):
    """A client AE storing the instances it receives (C-GET, storage commitment
    peers that push) in ``storage_dir``."""

    def __init__(self, storage_dir, ae_title: str, supported_ts: Optional[Iterable[str]] = None,
                 max_pdu_length: int = 65536) -> None:
        self.storage_dir = os.fspath(storage_dir)
        os.makedirs(self.storage_dir, exist_ok=True)
        ClientAE.__init__(self, ae_title, supported_ts, max_pdu_length)
        # The storage SCP of every storage SOP class, received into files. Their
        # presentation contexts are not added here: some 140 classes do not fit in one
        # A-ASSOCIATE-RQ (128, PS3.8 9.3.2.2). A script lists those it needs, with
        # update_context_def_list (0.9.x) or request_association(sop_classes=...).
        service = storage_service.storage_scp
        with self.lock:
            for uid in service.sop_classes:
                self.supported_scp[uid] = service
            self.store_in_file.update(service.sop_classes)

    def contexts_to_propose(self, sop_classes: Optional[Iterable[str]] = None) -> dict:
        """As ``AEBase``; a storage SOP class named in ``sop_classes`` gets its
        presentation context first, when it has none yet."""
        if sop_classes is not None:
            sop_classes = list(sop_classes)
            known = {ctx.sop_class for ctx in self.copy_context_def_list().values()}
            missing = [uid for uid in sop_classes if uid not in known
                       and uid in self.supported_scp]
            if missing:
                self.update_context_def_list(missing, store_in_file=True)
        return super().contexts_to_propose(sop_classes)


__all__ = ['FolderStorageMixin', 'StorageAE', 'ClientStorageAE']
