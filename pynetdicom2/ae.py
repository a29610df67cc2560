"""Application entities: ``ClientAE`` (SCU only) and ``AE`` (a threaded TCP server too).

An AE holds the configuration every association reads: its title, transfer syntaxes,
presentation contexts, the services it runs as SCU and SCP, and the timeouts. Its
``on_*`` methods are the hooks a subclass overrides; they run in the association's
thread. The server gives each incoming connection one thread and keeps serving
whatever a single association does.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import socketserver
import tempfile
import threading
from typing import Iterable, Optional

from pydicom.dataset import FileMetaDataset
from pydicom.filebase import DicomFileLike
from pydicom.filewriter import write_file_meta_info

from pynetdicom2 import statuses, uids
from pynetdicom2.asceprovider import (
    IMPLEMENTATION_UID, IMPLEMENTATION_VERSION_NAME, MAX_PRESENTATION_CONTEXTS, AETParams,
    AssociationAcceptor, AssociationRequester, PContextDefList)
from pynetdicom2.exceptions import NetDICOMError

logger = logging.getLogger(__name__)

#: Transfer syntaxes an AE supports unless told otherwise, in order of preference.
default_ts = [uids.EXPLICIT_VR_LITTLE_ENDIAN, uids.IMPLICIT_VR_LITTLE_ENDIAN,
              uids.EXPLICIT_VR_BIG_ENDIAN]


_GET_SOP_CLASSES = frozenset({
    uids.PATIENT_ROOT_GET_SOP_CLASS, uids.STUDY_ROOT_GET_SOP_CLASS,
    uids.PATIENT_STUDY_ONLY_GET_SOP_CLASS, uids.COMPOSITE_INSTANCE_ROOT_GET_SOP_CLASS})


class AEBase:
    """What every AE has: configuration, services, hooks and association requests.

    Not used directly: see ``ClientAE`` and ``AE``.
    """

    def __init__(self, supported_ts: Optional[Iterable[str]] = None,
                 max_pdu_length: int = 65536) -> None:
        preference = list(default_ts if supported_ts is None else supported_ts)
        self.supported_ts = frozenset(preference)
        self._ts_preference = tuple(dict.fromkeys(preference))
        self.max_pdu_length = max_pdu_length
        self.dcm_timeout = 15
        self.artim_timeout = 10
        self.supported_scu: dict = {}
        self.supported_scp: dict = {}
        self.context_def_list: dict = {}
        self.store_in_file: set = set()
        self.lock = threading.Lock()

    @property
    def timeout(self) -> float:
        """Alias of ``dcm_timeout``: both names read and write the same value."""
        return self.dcm_timeout

    @timeout.setter
    def timeout(self, value: float) -> None:
        self.dcm_timeout = value

    # -- configuration --------------------------------------------------------------

    def add_scu(self, service, sop_classes: Optional[Iterable[str]] = None) -> 'AEBase':
        """Use ``service`` as SCU for its SOP classes (or ``sop_classes``)."""
        sop_classes = list(service.sop_classes if sop_classes is None else sop_classes)
        with self.lock:
            for uid in sop_classes:
                self.supported_scu[uid] = service
        self.update_context_def_list(sop_classes)
        return self

    def add_scp(self, service) -> 'AEBase':
        """Use ``service`` as SCP for its SOP classes."""
        sop_classes = list(service.sop_classes)
        with self.lock:
            for uid in sop_classes:
                self.supported_scp[uid] = service
        self.update_context_def_list(sop_classes, getattr(service, 'store_in_file', False))
        return self

    def update_context_def_list(self, sop_classes: Iterable[str],
                                store_in_file: bool = False) -> None:
        """Add a presentation context (IDs 1, 3, 5, ...) for each new SOP class."""
        with self.lock:
            known = {ctx.sop_class for ctx in self.context_def_list.values()}
            next_id = 2 * len(self.context_def_list) + 1
            for uid in sop_classes:
                if store_in_file:
                    self.store_in_file.add(uid)
                if uid in known:
                    continue
                self.context_def_list[next_id] = PContextDefList(
                    next_id, uid, self.supported_ts)
                known.add(uid)
                next_id += 2

    def copy_context_def_list(self) -> dict:
        """A copy of the presentation context definitions, safe to edit."""
        with self.lock:
            return dict(self.context_def_list)

    def acceptable_sop_classes(self) -> frozenset:
        """SOP classes this AE accepts when it is the acceptor."""
        with self.lock:
            return frozenset(ctx.sop_class for ctx in self.context_def_list.values())

    def transfer_syntax_preference(self) -> tuple:
        """Our transfer syntaxes, most preferred first (the acceptor chooses by it)."""
        preference = [ts for ts in self._ts_preference if ts in self.supported_ts]
        return tuple(preference) + tuple(sorted(self.supported_ts - set(preference)))

    # -- associations ---------------------------------------------------------------

    @contextlib.contextmanager
    def request_association(self, remote_ae, sop_classes: Optional[Iterable[str]] = None):
        """Associate with ``remote_ae`` and yield the ``AssociationRequester``.

        ``remote_ae`` is a dict (or ``RemoteAEConfig``) with ``aet``, ``address``,
        ``port`` and optional identity keys. ``sop_classes`` proposes only the
        contexts for those SOP classes. A clean exit releases; an exception inside
        the block aborts and propagates.
        """
        assoc = AssociationRequester(self, self.max_pdu_length, remote_ae,
                                     self.contexts_to_propose(sop_classes))
        assoc.request()
        try:
            yield assoc
        except BaseException:
            assoc.abort()
            raise
        assoc.release()

    def contexts_to_propose(self, sop_classes: Optional[Iterable[str]] = None) -> dict:
        """The presentation contexts an association request proposes.

        ``sop_classes`` chooses them explicitly. Otherwise every context is proposed
        when they fit in one A-ASSOCIATE-RQ (128); when they do not, only those the
        association can need: the SOP classes we use as SCU, plus the classes we
        serve as SCP when a C-GET SCU may receive them on the same association.
        """
        contexts = self.copy_context_def_list()
        if sop_classes is None and len(contexts) <= MAX_PRESENTATION_CONTEXTS:
            return contexts
        if sop_classes is None:
            wanted = set(self.supported_scu)
            if wanted & _GET_SOP_CLASSES:
                wanted |= set(self.supported_scp)
        else:
            wanted = set(sop_classes)
        chosen = {i: c for i, c in contexts.items() if c.sop_class in wanted}
        if len(chosen) > MAX_PRESENTATION_CONTEXTS:
            raise NetDICOMError(
                f'{len(chosen)} presentation contexts would be proposed; one A-ASSOCIATE-RQ '
                f'carries at most {MAX_PRESENTATION_CONTEXTS} (PS3.8 9.3.2.2): pass '
                'request_association(remote_ae, sop_classes=[...]) with the classes needed')
        return chosen

    def get_file(self, context, command_set):
        """Where an incoming data set of a ``store_in_file`` SOP class is written.

        Returns ``(file, start_offset)``. The default is a temporary file holding the
        Part-10 preamble and file meta information, the data set following it.
        """
        fp = tempfile.TemporaryFile()
        write_meta(fp, command_set, context.supported_ts)
        return fp, fp.tell()

    # -- hooks ----------------------------------------------------------------------

    def on_association_request(self, asce, assoc) -> None:
        """An A-ASSOCIATE-RQ arrived (``assoc``); raise ``AssociationRejectedError``
        to reject it with exactly its values. Default: accept."""

    def on_association_response(self, response) -> None:
        """Our request was accepted: ``response`` is the A-ASSOCIATE-AC PDU."""

    def on_abort(self, asce, exc) -> None:
        """An incoming association was aborted (``exc`` says how)."""

    def on_dcm_timeout(self, asce, exc) -> None:
        """An incoming association timed out waiting for the peer."""

    def on_receive_echo(self, context):
        """A C-ECHO arrived; return its status (default success)."""
        return statuses.SUCCESS

    def on_receive_store(self, context, ds):
        """A C-STORE data set arrived; return its status. Default: 0xB006."""
        return statuses.C_STORE_ELEMENTS_DISCARDED

    def on_receive_find(self, context, ds):
        """C-FIND: yield ``(Dataset, Status)`` pairs. Default: no matches."""
        return iter(())

    def on_receive_move(self, context, ds, destination):
        """C-MOVE: return ``(remote_ae, number_of_sub_ops, iterator of data sets)``."""
        raise NotImplementedError('on_receive_move is not implemented by this AE')

    def on_receive_get(self, context, ds):
        """C-GET: return ``(number_of_sub_ops, iterator of data sets)``."""
        raise NotImplementedError('on_receive_get is not implemented by this AE')

    def on_commitment_request(self, remote_aet, uids):
        """Storage commitment request: return ``(remote_ae, success, failure)``."""
        raise NotImplementedError('on_commitment_request is not implemented by this AE')

    def on_commitment_response(self, transaction_uid, success, failure) -> None:
        """A storage commitment result (N-EVENT-REPORT) arrived."""


class ClientAE(AEBase):
    """An AE that only requests associations (SCU role)."""

    def __init__(self, ae_title: str, supported_ts: Optional[Iterable[str]] = None,
                 max_pdu_length: int = 65536) -> None:
        super().__init__(supported_ts, max_pdu_length)
        self.local_ae = AETParams(socket.gethostname(), ae_title, None)


class _AssociationHandler(socketserver.BaseRequestHandler):
    """One thread per connection: run one association to its end."""

    def handle(self) -> None:
        self.server.serve_association(self.request, self.client_address)


class AE(socketserver.ThreadingTCPServer, AEBase):
    """An AE that is also a threaded TCP server: SCU and SCP.

    ``with ae:`` starts serving in a background thread; leaving the block calls
    ``quit()``. Port 0 picks a free port, readable as ``ae.local_ae.port``.
    ``max_associations`` bounds simultaneous associations; beyond it the AE
    answers A-ASSOCIATE-RJ (2, 3, 2: rejected-transient, local-limit-exceeded).
    """

    # socketserver.BaseServer has a ``timeout`` of its own; ours is dcm_timeout's alias.
    timeout = AEBase.timeout
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    max_associations = 10

    def __init__(self, ae_title: str, port: int, supported_ts: Optional[Iterable[str]] = None,
                 max_pdu_length: int = 65536, bind_and_activate: bool = True,
                 bind_address: str = '') -> None:
        AEBase.__init__(self, supported_ts, max_pdu_length)
        if ':' in bind_address:
            self.address_family = socket.AF_INET6
        self._active: set = set()
        self._serving_thread: Optional[threading.Thread] = None
        self._bound = False
        self.local_ae = AETParams(bind_address or socket.gethostname(), ae_title, port)
        socketserver.ThreadingTCPServer.__init__(
            self, (bind_address, port), _AssociationHandler, bind_and_activate=False)
        if bind_and_activate:
            self._bind()

    def _bind(self) -> None:
        try:
            self.server_bind()
            self.server_activate()
        except BaseException:
            self.server_close()
            raise
        self._bound = True
        self.local_ae.port = self.server_address[1]

    def serve_association(self, sock, client_address) -> None:
        """Run one incoming association in the calling thread."""
        acceptor = AssociationAcceptor(self, sock, client_address)
        with self.lock:
            over_limit = len(self._active) >= self.max_associations
            if not over_limit:
                self._active.add(acceptor)
        try:
            if over_limit:
                self._reject_over_limit(acceptor)
            else:
                acceptor.run()
        finally:
            with self.lock:
                self._active.discard(acceptor)

    def _reject_over_limit(self, acceptor: AssociationAcceptor) -> None:
        try:
            acceptor.receive_request()
            logger.warning('rejecting %s: %d associations already active',
                           acceptor.dul.peer, self.max_associations)
            acceptor.reject(2, 3, 2)
        except Exception as exc:  # a broken peer: nothing more to do with it
            logger.info('connection from %s dropped: %s', acceptor.dul.peer, exc)
            acceptor.kill()

    def on_association_request(self, asce, assoc) -> None:
        """Default: accept every request."""

    def __enter__(self) -> 'AE':
        if not self._bound:
            self._bind()
        if self._serving_thread is None:
            self._serving_thread = threading.Thread(
                target=self.serve_forever, name=f'AE {self.local_ae.aet}', daemon=True)
            self._serving_thread.start()
        return self

    def __exit__(self, *exc_info) -> bool:
        self.quit()
        return False

    def quit(self) -> None:
        """Stop serving and close every active association; returns at once when the
        server was never started."""
        thread, self._serving_thread = self._serving_thread, None
        if thread is not None:
            self.shutdown()
            thread.join(timeout=5)
        self.server_close()
        with self.lock:
            active = list(self._active)
        for acceptor in active:
            acceptor.kill()

    def handle_error(self, request, client_address) -> None:
        logger.exception('unexpected error serving %s', client_address)


def write_meta(fp, command_set, ts) -> None:
    """Write the Part-10 preamble, ``DICM`` and file meta information to ``fp``.

    MediaStorageSOPClassUID and MediaStorageSOPInstanceUID come from the command's
    Affected SOP Class and Instance UID; the Transfer Syntax UID is ``ts``.
    """
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = command_set.AffectedSOPClassUID
    meta.MediaStorageSOPInstanceUID = command_set.AffectedSOPInstanceUID
    meta.TransferSyntaxUID = ts
    meta.ImplementationClassUID = IMPLEMENTATION_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    fp.write(b'\x00' * 128 + b'DICM')
    write_file_meta_info(DicomFileLike(fp), meta, enforce_standard=True)


__all__ = ['AEBase', 'ClientAE', 'AE', 'write_meta', 'default_ts', 'AETParams']
