"""What ``storescp`` does with a received instance besides keeping it, as DCMTK's
storescp does: the folder it goes to (``-ss``/``-su``/``-sp``), the name it gets
(``+uf``/``-tn``/``-fe``), the command run after it (``--exec-on-reception``) and the
end of its study (``--exec-on-eostudy``, ``--rename-on-eostudy``, ``--eostudy-timeout``).
"""

from __future__ import annotations

import datetime
import logging
import os
import re
import shlex
import subprocess
import threading
import time
import unicodedata
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Set, Tuple

from pydicom.dataset import Dataset

logger = logging.getLogger(__name__)

#: DCMTK's placeholders: #p the folder of the file (or of the study), #f the file's
#: name, #a the calling AE title, #c the called AE title, #r the peer's address.
_PLACEHOLDER = re.compile(r'#([pfacr])')


@dataclass
class Peer:
    """Who sent an instance: what ``#a``, ``#c`` and ``#r`` stand for."""
    calling_aet: str = ''
    called_aet: str = ''
    address: str = ''


def command_line(template: str, values: Dict[str, str]) -> str:
    """``template`` with each placeholder DCMTK knows replaced by its value, quoted for
    the shell (``shlex.quote``): an AE title or a name chosen by the peer is never read
    as shell syntax. A placeholder without a value (``#f`` at the end of a study) stays
    as written, as in DCMTK."""
    def replace(match: re.Match) -> str:
        value = values.get(match.group(1))
        return match.group(0) if value is None else shlex.quote(value)
    return _PLACEHOLDER.sub(replace, template)


def run_command(template: str, values: Dict[str, str], sync: bool, what: str) -> None:
    """Run ``template`` (placeholders replaced) through the shell, as DCMTK does: in the
    background unless ``sync`` (``--exec-sync``). A failure to start or a non-zero exit
    is logged (WARNING); it never changes the status the peer got."""
    line = command_line(template, values)
    logger.info('%s: running %s', what, line)
    try:
        proc = subprocess.Popen(line, shell=True, stdin=subprocess.DEVNULL)
    except OSError as exc:
        logger.warning('%s: cannot run %s: %s', what, line, exc)
        return

    def wait() -> None:
        code = proc.wait()
        if code:
            logger.warning('%s: %s exited with status %d', what, line, code)
    if sync:
        wait()
    else:  # a thread reaps it (no zombie) and says how it ended
        threading.Thread(target=wait, name='storescp command', daemon=True).start()


def timestamp(moment: Optional[float] = None) -> Tuple[str, str]:
    """``(YYYYMMDD, HHMMSSPPP)`` of ``moment`` (now), local time, PPP milliseconds."""
    when = datetime.datetime.fromtimestamp(time.time() if moment is None else moment)
    return when.strftime('%Y%m%d'), when.strftime('%H%M%S') + f'{when.microsecond // 1000:03d}'


def ascii_name(value) -> str:
    """A person's name as a folder name: letters decomposed to ASCII (é -> e), every
    other character but digits and ASCII letters an underscore; ANONYMOUS when empty."""
    text = unicodedata.normalize('NFKD', str(value or '')).encode('ascii', 'ignore').decode()
    text = re.sub(r'[^A-Za-z0-9]+', '_', text).strip('_')
    return text or 'ANONYMOUS'


def modality_code(attrs: Dataset) -> str:
    """The two letters that say what kind of object a file holds (``-tn``,
    ``--rename-on-eostudy``): its Modality (0008,0060), UN when it has none."""
    code = re.sub(r'[^A-Z0-9]', '', str(attrs.get('Modality') or '').upper())[:2]
    return code if len(code) == 2 else 'UN'


def check_prefix(value: str) -> str:
    """A ``-ss``/``-su`` prefix: it becomes part of a folder name, so no separator."""
    if '/' in value or os.sep in value or value in ('.', '..') or '\0' in value:
        raise ValueError(f'{value!r} cannot start a folder name')
    return value


# -- studies ---------------------------------------------------------------------------

@dataclass
class Study:
    """A study being received: its folder, its files in order of arrival (path,
    modality code), whom it came from last and when."""
    uid: str
    folder: str
    files: List[Tuple[str, str]] = field(default_factory=list)
    association: object = None
    peer: Peer = field(default_factory=Peer)
    last_seen: float = field(default_factory=time.monotonic)


class StudyTracker:
    """Which studies are being received, and when each ends.

    DCMTK's rule (one association at a time): a study ends when an instance of
    another study arrives, or ``timeout`` seconds after its last instance. With
    several associations at once a study another association is still sending stays
    open: an instance of a new study ends the open studies last sent on the same
    association or on one that has ended. ``on_end(study)`` runs outside the lock,
    in the thread that saw the end (the association's, or the timer's).
    """

    def __init__(self, on_end: Callable[[Study], None], timeout: Optional[float]) -> None:
        self.on_end = on_end
        self.timeout = timeout
        self.lock = threading.Condition()
        self.studies: Dict[str, Study] = {}
        self.live: Set[object] = set()
        self.closed = False
        if timeout is not None:
            threading.Thread(target=self._expire, name='storescp end of study',
                             daemon=True).start()

    def association_started(self, association: object) -> None:
        with self.lock:
            self.live.add(association)

    def association_ended(self, association: object) -> None:
        with self.lock:
            self.live.discard(association)

    def study(self, uid: str, association: object, peer: Peer,
              new_folder: Callable[[], str]) -> Study:
        """The open study ``uid`` (opened with ``new_folder()`` when it is new, ending
        the studies it follows)."""
        ended = []
        with self.lock:
            study = self.studies.get(uid)
            if study is None:
                for other in list(self.studies.values()):
                    if other.association is association or other.association not in self.live:
                        ended.append(self.studies.pop(other.uid))
                study = self.studies[uid] = Study(uid, new_folder())
            study.association, study.peer, study.last_seen = association, peer, time.monotonic()
            self.lock.notify_all()
        self._end(ended)
        return study

    def received(self, study: Study, path: str, code: str) -> None:
        with self.lock:
            study.files.append((path, code))
            study.last_seen = time.monotonic()

    def close(self) -> None:
        """Stop the timer; open studies stay open (as when DCMTK's storescp stops)."""
        with self.lock:
            self.closed = True
            self.lock.notify_all()

    def _expire(self) -> None:
        while True:
            with self.lock:
                if self.closed:
                    return
                now = time.monotonic()
                ended = [self.studies.pop(s.uid) for s in list(self.studies.values())
                         if now - s.last_seen >= self.timeout]
                if not ended:
                    soonest = min((s.last_seen for s in self.studies.values()), default=now)
                    self.lock.wait(max(soonest + self.timeout - now, 0.05)
                                   if self.studies else None)
                    continue
            self._end(ended)

    def _end(self, studies: List[Study]) -> None:
        for study in studies:
            try:
                self.on_end(study)
            except Exception:  # a failing command must not stop the server
                logger.exception('end of study %s', study.uid)


def rename_study_files(study: Study) -> List[str]:
    """``--rename-on-eostudy``: the study's files become ``<MD><6 digits>`` (DCMTK's
    pattern: two letters for the kind of object, numbered from 000001 in order of
    arrival, skipping names already taken); their new paths."""
    renamed = []
    number = 0
    for path, code in study.files:
        if not os.path.exists(path):
            continue
        while True:
            number += 1
            target = os.path.join(os.path.dirname(path), f'{code}{number:06d}')
            if not os.path.exists(target):
                break
        try:
            os.rename(path, target)
        except OSError as exc:
            logger.warning('cannot rename %s to %s: %s', path, target, exc)
            continue
        renamed.append(target)
    return renamed


# -- the AE's part -----------------------------------------------------------------------

class Reception:
    """Mixin (before ``ReceivedFiles``) giving storescp DCMTK's folders, names, commands
    and end of study. Off unless set:

    ``sort_mode`` 'time' (``-ss``: ``<prefix>_<YYYYMMDD>_<HHMMSSPPP>`` of the study's
    first instance), 'uid' (``-su``: ``<prefix>_<StudyInstanceUID>``) or 'patient'
    (``-sp``: ``<PatientName>_<YYYYMMDD>_<HHMMSSPPP>``), with ``sort_prefix``;
    ``file_extension`` (``.dcm``; ``-fe``); ``time_names`` (``-tn``:
    ``<YYYYMMDDHHMMSSPPP>.<MD>``); ``exec_on_reception`` / ``exec_on_eostudy`` (command
    lines with DCMTK's placeholders), ``rename_on_eostudy``, ``exec_sync``; and
    ``studies``, the ``StudyTracker`` that the end-of-study options need
    (``start_tracking``).
    """

    sort_mode: Optional[str] = None
    sort_prefix = ''
    file_extension = '.dcm'
    time_names = False
    exec_on_reception: Optional[str] = None
    exec_on_eostudy: Optional[str] = None
    rename_on_eostudy = False
    exec_sync = False
    studies: Optional[StudyTracker] = None

    def start_tracking(self, timeout: Optional[float]) -> None:
        """Follow studies (``--exec-on-eostudy``, ``--rename-on-eostudy``, ``-ss``,
        ``-sp``), ending each after ``timeout`` seconds without an instance (None:
        only when another study follows)."""
        self.studies = StudyTracker(self.end_of_study, timeout)

    def _local(self):
        local = self.__dict__.get('_reception_local')
        if local is None:
            local = self.__dict__.setdefault('_reception_local', threading.local())
        return local

    def serve_association(self, sock, client_address) -> None:
        local = self._local()
        local.association = object()
        local.peer = Peer(address=str(client_address[0]) if client_address else '')
        local.study = None
        if self.studies is not None:
            self.studies.association_started(local.association)
        try:
            super().serve_association(sock, client_address)
        finally:
            if self.studies is not None:
                self.studies.association_ended(local.association)

    def on_association_request(self, asce, assoc) -> None:
        peer = getattr(self._local(), 'peer', None)
        if peer is not None:
            peer.calling_aet = assoc.calling_ae_title.strip()
            peer.called_aet = assoc.called_ae_title.strip()
        super().on_association_request(asce, assoc)

    def server_close(self) -> None:
        if self.studies is not None:
            self.studies.close()
        super().server_close()

    # -- where an instance goes ----------------------------------------------------------

    def final_path(self, command_uid: str, attrs: Dataset) -> str:
        path = super().final_path(command_uid, attrs)
        folder, name = os.path.split(path)
        if self.time_names:
            day, clock = timestamp()
            name = f'{day}{clock}.{modality_code(attrs)}'
        else:
            name = name[:-len('.dcm')] if name.endswith('.dcm') else name
        name += self.file_extension
        if self.sort_mode is not None or self.studies is not None:
            folder = self._study_folder(attrs, folder)
        return os.path.join(folder, name)

    def _study_folder(self, attrs: Dataset, default: str) -> str:
        # Imported here: filestore imports the library's AE, which imports a lot.
        from pynetdicom2.apps.filestore import clean_uid, uid_problem
        from pynetdicom2.exceptions import EventHandlingError
        study_uid = clean_uid(attrs.get('StudyInstanceUID'))
        problem = uid_problem(study_uid, 'Study Instance UID')
        if problem:
            raise EventHandlingError(problem)
        prefix = f'{self.sort_prefix}_' if self.sort_prefix else ''

        def new_folder() -> str:
            if self.sort_mode == 'uid':
                return os.path.join(self.storage_dir, prefix + study_uid)
            day, clock = timestamp()
            if self.sort_mode == 'patient':
                return os.path.join(self.storage_dir,
                                    f'{ascii_name(attrs.get("PatientName"))}_{day}_{clock}')
            if self.sort_mode == 'time':
                return os.path.join(self.storage_dir, f'{prefix}{day}_{clock}')
            return default
        if self.studies is None:
            return new_folder()
        local = self._local()
        local.study = self.studies.study(study_uid, getattr(local, 'association', None),
                                         getattr(local, 'peer', None) or Peer(), new_folder)
        return local.study.folder

    def place_instance(self, temp_path: str, final_path: str, attrs: Dataset, context) -> str:
        placed = super().place_instance(temp_path, final_path, attrs, context)
        local = self._local()
        study = getattr(local, 'study', None)
        if self.studies is not None and study is not None:
            self.studies.received(study, placed, modality_code(attrs))
            local.study = None
        if self.exec_on_reception:
            folder, name = os.path.split(os.path.abspath(placed))
            self._run(self.exec_on_reception, {'p': folder, 'f': name}, 'exec-on-reception')
        return placed

    def on_receive_store(self, context, ds):
        status = super().on_receive_store(context, ds)
        if self.discard and self.exec_on_reception:
            # --ignore: no file, so #p and #f are empty (as in DCMTK).
            self._run(self.exec_on_reception, {'p': '', 'f': ''}, 'exec-on-reception')
        return status

    # -- the end of a study ----------------------------------------------------------------

    def end_of_study(self, study: Study) -> None:
        """Rename its files (``rename_on_eostudy``), then run ``exec_on_eostudy``."""
        logger.info('end of study %s: %d instance(s) in %s', study.uid, len(study.files),
                    study.folder)
        if self.rename_on_eostudy:
            rename_study_files(study)
        if self.exec_on_eostudy:
            self._run(self.exec_on_eostudy, {'p': os.path.abspath(study.folder)},
                      'exec-on-eostudy', study.peer)

    def _run(self, template: str, values: Dict[str, str], what: str,
             peer: Optional[Peer] = None) -> None:
        peer = peer or getattr(self._local(), 'peer', None) or Peer()
        values = dict(values, a=peer.calling_aet, c=peer.called_aet, r=peer.address)
        try:
            run_command(template, values, self.exec_sync, what)
        except Exception:  # never the peer's problem
            logger.exception('%s failed', what)


# -- the command line --------------------------------------------------------------------

def _prefix(value: str) -> str:
    import argparse
    try:
        return check_prefix(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_arguments(parser) -> None:
    """DCMTK storescp's sorting, naming, event and access-control options."""
    from pynetdicom2.apps import common
    group = parser.add_argument_group('sorting into folders (DCMTK storescp)')
    group.add_argument('-ss', '--sort-conc-studies', dest='sort_time', metavar='PREFIX',
                       type=_prefix, help='one folder per study, named PREFIX_<date>_<time> '
                       "of the study's first instance")
    group.add_argument('-su', '--sort-on-study-uid', dest='sort_uid', metavar='PREFIX',
                       type=_prefix, help='one folder per study, named PREFIX_<StudyInstanceUID>')
    group.add_argument('-sp', '--sort-on-patientname', dest='sort_patient', action='store_true',
                       help="one folder per study, named <PatientName>_<date>_<time> (ASCII; "
                       'ANONYMOUS without a name)')
    group = parser.add_argument_group('file names (DCMTK storescp)')
    names = group.add_mutually_exclusive_group()
    names.add_argument('-uf', '--default-filenames', dest='naming', action='store_const',
                       const=None, help='<SOPInstanceUID>.dcm; a copy received again replaces '
                       'the first (default)')
    names.add_argument('+uf', '--unique-filenames', dest='naming', action='store_const',
                       const='unique', help='never replace: a copy received again gets '
                       '<SOPInstanceUID>_1.dcm, _2 ...')
    names.add_argument('-tn', '--timenames', dest='naming', action='store_const', const='time',
                       help='<YYYYMMDDHHMMSSPPP>.<Modality>.dcm, the time of writing (_1, _2 ... '
                       'for more in the same millisecond)')
    group.add_argument('-fe', '--filename-extension', dest='extension', metavar='EXT',
                       default='.dcm', help='end every file name with EXT instead of .dcm '
                       '("" for none); no dot is added')
    group = parser.add_argument_group('events (DCMTK storescp)')
    group.add_argument('-xcr', '--exec-on-reception', metavar='COMMAND',
                       help='run COMMAND, a shell command line, after each instance is '
                       'kept; #p stands for its folder, #f its file name, #a the calling '
                       'and #c the called AE title, #r the peer address, each quoted for '
                       'the shell')
    group.add_argument('-xcs', '--exec-on-eostudy', metavar='COMMAND',
                       help='run COMMAND at the end of each study (#p: its folder; needs a '
                       'sorting option)')
    group.add_argument('-rns', '--rename-on-eostudy', action='store_true',
                       help="at the end of each study rename its files <MD><000001...> "
                       '(needs a sorting option)')
    group.add_argument('-tos', '--eostudy-timeout', type=common.seconds, metavar='S',
                       help='a study also ends S seconds after its last instance (default: '
                       'only when an instance of another study arrives)')
    group.add_argument('-xs', '--exec-sync', action='store_true',
                       help='wait for each command before going on (default: in the '
                       'background)')
    group = parser.add_argument_group('network host access control')
    group.add_argument('-ac', '--access-full', dest='access_control', action='store_false',
                       help='accept connections from any host (default)')
    group.add_argument('+ac', '--access-control', dest='access_control', action='store_true',
                       help="DCMTK's TCP wrapper rules: not supported (refused with a "
                       'message); use --allow-network/--deny-network or --allow-calling')
    parser.set_defaults(access_control=False)


def check_arguments(args) -> None:
    """Combinations that cannot work, refused as DCMTK refuses them (exit 2)."""
    from pynetdicom2.apps import common

    def refuse(message: str):
        raise common.ToolError(message, common.EXIT_USAGE)
    if args.access_control:
        refuse('+ac (host access control by TCP wrapper rules) is not supported: '
               '--allow-network/--deny-network limit the peers by address, '
               '--allow-calling by AE title')
    sorting = [flag for flag, given in (
        ('-ss', args.sort_time is not None), ('-su', args.sort_uid is not None),
        ('-sp', args.sort_patient), ('--study-folders', args.study_folders)) if given]
    if len(sorting) > 1:
        refuse(f'one way of sorting into folders at a time: {" and ".join(sorting)} given')
    if not sorting:
        for flag, given in (('--exec-on-eostudy', args.exec_on_eostudy),
                            ('--rename-on-eostudy', args.rename_on_eostudy),
                            ('--eostudy-timeout', args.eostudy_timeout is not None)):
            if given:
                refuse(f'{flag} needs a folder per study: -ss, -su, -sp or --study-folders')
    if '/' in args.extension or os.sep in args.extension:
        refuse(f'-fe {args.extension!r}: an extension cannot hold a path separator')
    studies = [flag for flag, given in (
        ('-ss', args.sort_time is not None), ('-sp', args.sort_patient),
        ('--exec-on-eostudy', args.exec_on_eostudy),
        ('--rename-on-eostudy', args.rename_on_eostudy),
        ('--eostudy-timeout', args.eostudy_timeout is not None)) if given]
    if studies and args.workers != 1:
        # As DCMTK's --fork: the end of a study is seen by the one process that
        # receives the next instance; several processes would each see a part.
        refuse(f'{studies[0]} needs one process: not with --workers or --fork')


def configure(ae: Reception, args) -> None:
    """Set ``ae``'s ``Reception`` settings from checked arguments."""
    if args.sort_time is not None:
        ae.sort_mode, ae.sort_prefix = 'time', args.sort_time
    elif args.sort_uid is not None:
        ae.sort_mode, ae.sort_prefix = 'uid', args.sort_uid
    elif args.sort_patient:
        ae.sort_mode = 'patient'
    ae.file_extension = args.extension
    if args.naming == 'unique':
        ae.replace_existing = False
        ae.max_iterations = 9999
    elif args.naming == 'time':
        ae.time_names = True
        ae.replace_existing = False
        ae.max_iterations = 9999
    ae.exec_on_reception = args.exec_on_reception
    ae.exec_on_eostudy = args.exec_on_eostudy
    ae.rename_on_eostudy = args.rename_on_eostudy
    ae.exec_sync = args.exec_sync
    if (ae.sort_mode in ('time', 'patient') or args.exec_on_eostudy
            or args.rename_on_eostudy or args.eostudy_timeout is not None):
        ae.start_tracking(args.eostudy_timeout)
