#!/usr/bin/env python3
"""User scripts written the pynetdicom2 0.9.8 way, run as their own process under
whichever ``pynetdicom2`` the interpreter imports: the released 0.9.8 (its own virtual
environment) or ours. tests/compat runs each side of each scenario under both and
compares what a user observes.

    scenarios.py --scenario NAME --role scp|scu|offline [--port N] [--dir D] ...

Everything observed is printed as one JSON object per line (``{"event": ...}``): an
SCP prints ``PORT <n>`` once it listens, then a line per hook call, and serves until
SIGTERM; an SCU (or an offline run) prints one ``{"event": "result", ...}`` line and
exits 0, whatever the library raised (exceptions are observations too).

Only the API of 0.9.8 is used here (subclassed AEs with overridden hooks,
``request_association``, ``get_scu``, ``commands``, ``StorageAE`` and
``ClientStorageAE``, ``StorageCommitment``), plus the C-GET SCP hook, which 0.9.8 did
not have. Nothing here may use an API that only our package has.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import pathlib
import signal
import sys
import threading

import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

import pynetdicom2
from pynetdicom2 import (
    applicationentity, commands, dimsemessages, dsutils, exceptions, sopclass, statuses,
    uids, userdataitems,
)

CT = uids.CT_IMAGE_STORAGE
LIFETIME = 120          # seconds an SCP serves at most, should its stopper never come
TIMEOUT = 10            # dcm_timeout of every AE here: no wait is unbounded
_print_lock = threading.Lock()


# ---------------------------------------------------------------- observations

def emit(event: str, **values) -> None:
    """Print one observation as a JSON line, at once (the test reads while we run)."""
    with _print_lock:
        print(json.dumps(dict(event=event, **values), sort_keys=True, default=str),
              flush=True)


def status_obs(status) -> dict:
    """A status as a user sees it: its code and, for a Status object, its type."""
    return {'code': int(status), 'type': getattr(status, 'status_type', type(status).__name__)}


def value_obs(value):
    if isinstance(value, pydicom.Sequence):
        return [ds_obs(item) for item in value]
    if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
        return [str(v) for v in value]
    if isinstance(value, bytes):
        return value.hex()
    return None if value is None else str(value)


def ds_obs(ds):
    """A data set as keyword -> value (sequences nested), or None."""
    if ds is None:
        return None
    return {elem.keyword or str(elem.tag): value_obs(elem.value) for elem in ds}


def exc_obs(exc: BaseException) -> dict:
    """An exception as a user sees it: its class, its library base classes and the
    DICOM values it carries."""
    seen = {'type': type(exc).__name__,
            'netdicom': isinstance(exc, exceptions.NetDICOMError),
            'association_error': isinstance(exc, exceptions.AssociationError)}
    for name in ('result', 'source', 'diagnostic', 'reason_diag'):
        if hasattr(exc, name):
            seen[name] = getattr(exc, name)
    # The wording is ours to improve (API.md: every exception says what happened), so
    # the tests read it only when they fail.
    seen['message'] = str(exc)
    return seen


def attempt(call):
    """Run ``call()``; its value, or the exception it raised, as an observation."""
    try:
        return {'value': call()}
    except Exception as exc:  # the exception is what the user would see
        return {'raised': exc_obs(exc)}


# ---------------------------------------------------------------- helpers

def remote(args, aet: str, **extra) -> dict:
    return dict(aet=aet, address='127.0.0.1', port=args.port, **extra)


def listening_port(ae) -> int:
    # 0.9.8 keeps its TCP server in ``ae.server``; ours is the server itself. Which one
    # a script may use is checked apart (the "api" scenario), so that this one
    # difference cannot hide every other.
    server = getattr(ae, 'server', ae)
    return server.server_address[1]


def serve(ae) -> None:
    """Serve ``ae`` until SIGTERM (bounded by LIFETIME), printing ``PORT <n>`` first.

    SIGTERM ends the process at once: every observation is already printed, and a
    graceful quit() would only wait for the server's poll interval.
    """
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    ae.dcm_timeout = TIMEOUT
    with ae:
        print(f'PORT {listening_port(ae)}', flush=True)
        threading.Event().wait(LIFETIME)


def calling_title(assoc_rq) -> str:
    return assoc_rq.calling_ae_title


def read_files(args) -> list:
    return [pydicom.dcmread(path) for path in args.files]


# ---------------------------------------------------------------- offline API

def api_offline(args) -> None:
    """What a script sees without a network: fresh messages, dsutils, user identity
    items, statuses and the AE's attributes."""
    seen = {}
    fresh = {}
    for name in sorted(dir(dimsemessages)):
        cls = getattr(dimsemessages, name)
        if isinstance(cls, type) and name.endswith(('RQMessage', 'RSPMessage')):
            msg = cls()
            fresh[name] = {
                'fields': sorted(cls.command_fields),
                'in_command_set': sorted(elem.keyword for elem in msg.command_set),
                'values': sorted({value_obs(elem.value) for elem in msg.command_set}
                                 - {None}, key=str),
                'affected_sop_instance_uid': attempt(
                    lambda msg=msg: value_obs(msg.command_set.AffectedSOPInstanceUID))
                if 'AffectedSOPInstanceUID' in cls.command_fields else None,
            }
    seen['fresh_messages'] = fresh

    ds = Dataset()
    ds.PatientName = 'DOE^JOHN'
    ds.PatientID = '42'
    ds.StudyDate = '20240101'
    item = Dataset()
    item.ReferencedSOPClassUID = CT
    item.ReferencedSOPInstanceUID = '1.2.3.4'
    ds.ReferencedSOPSequence = [item]
    for implicit, little in ((True, True), (False, True), (False, False)):
        key = f'implicit={implicit},little={little}'
        raw = attempt(lambda: dsutils.encode(ds, implicit, little).hex())
        seen[f'dsutils.encode {key}'] = raw
        if 'value' in raw:
            seen[f'dsutils.decode {key}'] = attempt(lambda: ds_obs(
                dsutils.decode(bytes.fromhex(raw['value']), implicit, little)))
        seen[f'dsutils.encode_element {key}'] = attempt(
            lambda: dsutils.encode_element(ds['PatientID'], implicit, little).hex())

    for label, item in (
            ('rq user+password', userdataitems.UserIdentityNegotiationSubItem('user', 'secret')),
            ('rq user', userdataitems.UserIdentityNegotiationSubItem(
                'user', user_identity_type=1, positive_response_req=1)),
            ('rq jwt bytes', userdataitems.UserIdentityNegotiationSubItem(
                b'\x01\xfftoken', user_identity_type=5)),
            ('ac', userdataitems.UserIdentityNegotiationSubItemAc('server says yes'))):
        def round_trip(item=item):
            raw = item.encode()
            again = type(item).decode(io.BytesIO(raw))
            return {'hex': raw.hex(), 'equal_dict': again.__dict__ == item.__dict__,
                    'primary': value_obs(getattr(again, 'primary_field', None)),
                    'secondary': value_obs(getattr(again, 'secondary_field', None)),
                    'response': value_obs(getattr(again, 'server_response', None))}
        seen[f'user identity {label}'] = attempt(round_trip)

    seen['statuses'] = {
        name: {'code': int(getattr(statuses, name)),
               'type': getattr(statuses, name).status_type}
        for name in ('SUCCESS', 'PROCESSING_FAILURE', 'C_STORE_ELEMENTS_DISCARDED',
                     'C_FIND_PENDING', 'C_FIND_UNABLE_TO_PROCESS', 'C_MOVE_WARNING',
                     'C_MOVE_DESTINATION_UNKNOWN', 'C_GET_UNABLE_TO_PROCESS')}

    # A server on port 0, then its port: 0.9.8 scripts read it from ``ae.server``.
    # (0.9.8's quit() never returns for a server that was not started: serve it.)
    with applicationentity.AE('API', 0) as ae:
        seen['ae.server.server_address port'] = attempt(
            lambda: ae.server.server_address[1] > 0)
        seen['ae attributes'] = {name: hasattr(ae, name) for name in (
            'supported_ts', 'dcm_timeout', 'artim_timeout', 'max_pdu_length', 'local_ae',
            'supported_scu', 'supported_scp', 'context_def_list', 'store_in_file', 'lock')}
        seen['ae.dcm_timeout'] = ae.dcm_timeout
        seen['ae.local_ae.aet'] = ae.local_ae.aet
    emit('result', **seen)


# ---------------------------------------------------------------- basics

class BasicSCP(applicationentity.AE):
    """Echo (the first of each association fails), and the 0.9.8 defaults of every
    other hook."""

    echoes = threading.local()   # per association: each runs in a thread of its own

    def on_association_request(self, asce, assoc):
        BasicSCP.echoes.count = 0
        emit('association', called=assoc.called_ae_title, calling=calling_title(assoc))

    def on_receive_echo(self, context):
        BasicSCP.echoes.count += 1
        emit('echo', number=BasicSCP.echoes.count, sop_class=context.sop_class)
        if BasicSCP.echoes.count == 1:
            raise exceptions.EventHandlingError('the first echo fails')
        return statuses.SUCCESS


def basics_scp(args) -> None:
    ae = BasicSCP('BASIC_SCP', 0)
    ae.add_scp(sopclass.verification_scp).add_scp(sopclass.storage_scp)
    ae.add_scp(sopclass.qr_find_scp).add_scp(sopclass.qr_move_scp)
    serve(ae)


def basics_scu(args) -> None:
    seen = {}
    ae = applicationentity.ClientAE('BASIC_SCU', supported_ts=[ExplicitVRLittleEndian])
    ae.add_scu(sopclass.verification_scu).add_scu(sopclass.storage_scu, [CT])
    ae.add_scu(sopclass.qr_find_scu).add_scu(sopclass.qr_move_scu)
    ae.dcm_timeout = TIMEOUT
    query = Dataset()
    query.QueryRetrieveLevel = 'STUDY'
    query.StudyInstanceUID = ''
    with ae.request_association(remote(args, 'BASIC_SCP')) as assoc:
        echo = assoc.get_scu(uids.VERIFICATION_SOP_CLASS)
        seen['echo 1'] = status_obs(echo(1))
        seen['echo 2'] = status_obs(echo(2))
        seen['get_scu unknown'] = attempt(lambda: assoc.get_scu(uids.MR_IMAGE_STORAGE))
        # Every hook left as 0.9.8 defines it: store answers 0xB006, find has no
        # match, move raises EventHandlingError (answered as a failure, below).
        seen['store default'] = status_obs(assoc.get_scu(CT)(args.files[0], 3))
        seen['find default'] = [
            [ds_obs(ds), status_obs(status)]
            for ds, status in assoc.get_scu(uids.STUDY_ROOT_FIND_SOP_CLASS)(query, 4)]
        seen['established after'] = assoc.association_established
    # A new association: its first echo fails too.
    seen['commands.verify'] = status_obs(commands.verify('BASIC_SCU2', remote(args, 'BASIC_SCP')))
    emit('result', **seen)


# ---------------------------------------------------------------- rejections

class Gatekeeper(applicationentity.AE):
    """Rejects the wrong called title (1, 1, 7) and a calling title BUSY (2, 3, 2)."""

    def on_association_request(self, asce, assoc):
        emit('association', called=assoc.called_ae_title, calling=calling_title(assoc))
        if assoc.called_ae_title != 'GATE':
            raise exceptions.AssociationRejectedError(1, 1, 7)
        if calling_title(assoc) == 'BUSY':
            raise exceptions.AssociationRejectedError(2, 3, 2)


def reject_scp(args) -> None:
    serve(Gatekeeper('GATE', 0).add_scp(sopclass.verification_scp))


def reject_scu(args) -> None:
    seen = {}

    def echo(calling: str, called: str):
        ae = applicationentity.ClientAE(calling).add_scu(sopclass.verification_scu)
        ae.dcm_timeout = TIMEOUT
        with ae.request_association(remote(args, called)) as assoc:
            return status_obs(assoc.get_scu(uids.VERIFICATION_SOP_CLASS)(1))

    seen['wrong called'] = attempt(lambda: echo('SCRIPT', 'WRONG'))
    seen['busy calling'] = attempt(lambda: echo('BUSY', 'GATE'))
    seen['right'] = attempt(lambda: echo('SCRIPT', 'GATE'))
    seen['commands.verify wrong called'] = attempt(
        lambda: status_obs(commands.verify('SCRIPT', remote(args, 'WRONG'))))
    emit('result', **seen)


# ---------------------------------------------------------------- aborts

class Abortable(applicationentity.AE):
    """Reports every abort; the echo hook of the association called CRASH has a bug."""

    callers = threading.local()

    def on_association_request(self, asce, assoc):
        Abortable.callers.title = calling_title(assoc)
        emit('association', calling=calling_title(assoc))

    def on_receive_echo(self, context):
        if getattr(Abortable.callers, 'title', None) == 'CRASH':
            raise RuntimeError('a bug in the hook')
        return statuses.SUCCESS

    def on_abort(self, asce, exc):
        emit('abort', calling=getattr(Abortable.callers, 'title', None),
             exception=exc_obs(exc))


def abort_scp(args) -> None:
    serve(Abortable('ABORT_SCP', 0).add_scp(sopclass.verification_scp))


def abort_scu(args) -> None:
    seen = {}

    def client(title):
        ae = applicationentity.ClientAE(title).add_scu(sopclass.verification_scu)
        ae.dcm_timeout = TIMEOUT
        return ae

    def give_up():
        # An exception inside the block aborts the association and goes on.
        with client('QUITTER').request_association(remote(args, 'ABORT_SCP')) as assoc:
            assoc.get_scu(uids.VERIFICATION_SOP_CLASS)(1)
            raise ValueError('the user gave up')

    def explicit_abort():
        with client('ABORTER').request_association(remote(args, 'ABORT_SCP')) as assoc:
            status = assoc.get_scu(uids.VERIFICATION_SOP_CLASS)(1)
            assoc.abort()
            return [status_obs(status), assoc.association_established]

    def crash():
        with client('CRASH').request_association(remote(args, 'ABORT_SCP')) as assoc:
            return status_obs(assoc.get_scu(uids.VERIFICATION_SOP_CLASS)(1))

    seen['exception in block'] = attempt(give_up)
    seen['explicit abort'] = attempt(explicit_abort)
    seen['bug in the scp hook'] = attempt(crash)
    seen['after the bug'] = attempt(lambda: status_obs(
        commands.verify('AFTER', remote(args, 'ABORT_SCP'))))
    emit('result', **seen)


# ---------------------------------------------------------------- user identity

class IdentityChecker(applicationentity.AE):
    """Reports the user identity sub-item of each request, as 0.9.8 scripts read it."""

    def on_association_request(self, asce, assoc):
        found = []
        for item in assoc.variable_items:
            for sub in getattr(item, 'user_data', None) or []:
                if isinstance(sub, userdataitems.UserIdentityNegotiationSubItem):
                    found.append({'type': sub.user_identity_type,
                                  'primary': value_obs(sub.primary_field),
                                  'primary_is': type(sub.primary_field).__name__,
                                  'secondary': value_obs(sub.secondary_field),
                                  'positive_response_req': sub.positive_response_req})
        emit('identity', calling=calling_title(assoc), items=found)
        if found and found[0]['primary'] == 'intruder':
            raise exceptions.AssociationRejectedError(1, 1, 1)


def identity_scp(args) -> None:
    serve(IdentityChecker('ID_SCP', 0).add_scp(sopclass.verification_scp))


def identity_scu(args) -> None:
    seen = {}

    def echo(title, **identity):
        ae = applicationentity.ClientAE(title).add_scu(sopclass.verification_scu)
        ae.dcm_timeout = TIMEOUT
        with ae.request_association(remote(args, 'ID_SCP', **identity)) as assoc:
            return status_obs(assoc.get_scu(uids.VERIFICATION_SOP_CLASS)(1))

    seen['user and password'] = attempt(lambda: echo('PASSWORD', username='alice',
                                                     password='s3cret'))
    seen['user only'] = attempt(lambda: echo('USERNAME', username='bob'))
    seen['jwt'] = attempt(lambda: echo('JWT', jwt='header.payload.signature'))
    seen['rejected user'] = attempt(lambda: echo('INTRUDER', username='intruder',
                                                 password='x'))
    seen['config object'] = attempt(lambda: echo('CONFIG', username='carol'))
    emit('result', **seen)


# ---------------------------------------------------------------- storage

def store_scp(args) -> None:
    ae = applicationentity.StorageAE(pathlib.Path(args.dir), 'STORE_SCP', 0)
    serve(ae.add_scp(sopclass.storage_scp).add_scp(sopclass.verification_scp))


def store_scu(args) -> None:
    seen = {}
    first, second = args.files[:2]
    # One transfer syntax, the files' own, as 0.9.8's documentation advises.
    ae = applicationentity.ClientAE('STORE_SCU', supported_ts=[ExplicitVRLittleEndian])
    ae.add_scu(sopclass.storage_scu, [CT])
    ae.dcm_timeout = TIMEOUT
    with ae.request_association(remote(args, 'STORE_SCP')) as assoc:
        store = assoc.get_scu(CT)
        seen['path'] = status_obs(store(first, 1))
        seen['dataset'] = status_obs(store(pydicom.dcmread(second), 2))
        seen['same path again'] = status_obs(store(first, 3))
    seen['commands.store'] = attempt(
        lambda: status_obs(commands.store('STORE_SCU2', remote(args, 'STORE_SCP'),
                                          args.files[2])))
    emit('result', **seen)


class Archive(applicationentity.StorageAE):
    """A StorageAE whose hook reads each file and decides the status by PatientID."""

    def on_receive_store(self, context, ds):
        received = pydicom.dcmread(ds)
        emit('store', sop_instance=received.SOPInstanceUID, patient_id=received.PatientID,
             sop_class=context.sop_class)
        if received.PatientID == 'REFUSE':
            return statuses.C_STORE_OUT_OF_RESOURCES
        if received.PatientID == 'HANDLER_ERROR':
            raise exceptions.EventHandlingError('cannot take this one')
        return statuses.SUCCESS


def store_hooks_scp(args) -> None:
    serve(Archive(pathlib.Path(args.dir), 'ARCHIVE', 0).add_scp(sopclass.storage_scp))


def store_hooks_scu(args) -> None:
    seen = {}
    ae = applicationentity.ClientAE('HOOK_SCU', supported_ts=[ExplicitVRLittleEndian])
    ae.add_scu(sopclass.storage_scu, [CT])
    ae.dcm_timeout = TIMEOUT
    with ae.request_association(remote(args, 'ARCHIVE')) as assoc:
        store = assoc.get_scu(CT)
        for number, path in enumerate(args.files, 1):
            seen[pathlib.Path(path).name] = status_obs(store(path, number))
    emit('result', **seen)


# ---------------------------------------------------------------- C-FIND

class Finder(applicationentity.AE):
    """Answers by the queried PatientName, the ways 0.9.x handlers answer."""

    def on_receive_find(self, context, ds):
        name = str(ds.PatientName)
        emit('find', query=ds_obs(ds), sop_class=context.sop_class)
        match = Dataset()      # one object, changed between yields
        match.QueryRetrieveLevel = ds.QueryRetrieveLevel
        if name == 'MANY':
            for number in (1, 2, 3):
                match.PatientName = f'DOE^{number}'
                match.StudyInstanceUID = f'1.2.3.{number}'
                yield match, statuses.C_FIND_PENDING
        elif name == 'ONE':
            # The 0.9.x way to answer with one match: the identifier with Success.
            match.PatientName = 'ONLY^ONE'
            yield match, statuses.SUCCESS
        elif name == 'BROKEN':
            match.PatientName = 'BEFORE^ERROR'
            yield match, statuses.C_FIND_PENDING
            raise exceptions.EventHandlingError('the database went away')
        elif name == 'INTS':
            match.PatientName = 'INT^STATUS'
            yield match, 0xFF00


def find_scp(args) -> None:
    ae = Finder('FIND_SCP', 0)
    serve(ae.add_scp(sopclass.qr_find_scp).add_scp(sopclass.verification_scp))


def find_scu(args) -> None:
    seen = {}
    ae = applicationentity.ClientAE('FIND_SCU')
    ae.add_scu(sopclass.qr_find_scu).add_scu(sopclass.verification_scu)
    ae.dcm_timeout = TIMEOUT

    def query(name):
        ds = Dataset()
        ds.QueryRetrieveLevel = 'STUDY'
        ds.PatientName = name
        ds.StudyInstanceUID = ''
        return ds

    def find(assoc, name, msg_id):
        responses = assoc.get_scu(uids.STUDY_ROOT_FIND_SOP_CLASS)(query(name), msg_id)
        return [[ds_obs(ds), status_obs(status)] for ds, status in responses]

    def find_on_one_association(name):
        with ae.request_association(remote(args, 'FIND_SCP')) as assoc:
            found = find(assoc, name, 1)
            # Still usable afterwards?
            echo = status_obs(assoc.get_scu(uids.VERIFICATION_SOP_CLASS)(2))
            return {'responses': found, 'echo after': echo}

    for name in ('MANY', 'NONE', 'ONE', 'BROKEN', 'INTS'):
        seen[name] = attempt(lambda: find_on_one_association(name))
    seen['commands.find'] = attempt(lambda: [
        ds_obs(ds) for ds in commands.find('FIND_SCU2', remote(args, 'FIND_SCP'),
                                           query('MANY'))])
    emit('result', **seen)


# ---------------------------------------------------------------- C-MOVE

class Mover(applicationentity.AE):
    """Moves the given files to MOVE_DEST (at --dest-port); NOWHERE fails."""

    def on_receive_move(self, context, ds, destination):
        emit('move', destination=destination, query=ds_obs(ds))
        if destination != 'MOVE_DEST':
            raise exceptions.EventHandlingError(f'unknown destination {destination}')
        datasets = read_files(self.args)
        return (dict(aet=destination, address='127.0.0.1', port=self.args.dest_port),
                len(datasets), iter(datasets))


def move_scp(args) -> None:
    ae = Mover('MOVE_SCP', 0)
    ae.args = args
    ae.add_scp(sopclass.qr_move_scp).add_scp(sopclass.verification_scp)
    ae.add_scu(sopclass.storage_scu, [CT])
    serve(ae)


class Destination(applicationentity.StorageAE):
    """The C-MOVE destination: keeps what arrives and says so (Success)."""

    def on_receive_store(self, context, ds):
        return statuses.SUCCESS


def move_scu(args) -> None:
    seen = {}
    destination = Destination(pathlib.Path(args.dir), 'MOVE_DEST', args.dest_port,
                              supported_ts=[ExplicitVRLittleEndian])
    destination.add_scp(sopclass.storage_scp)
    destination.dcm_timeout = TIMEOUT
    ae = applicationentity.ClientAE('MOVE_SCU')
    ae.add_scu(sopclass.qr_move_scu).add_scu(sopclass.verification_scu)
    ae.dcm_timeout = TIMEOUT
    query = Dataset()
    query.QueryRetrieveLevel = 'STUDY'
    query.StudyInstanceUID = '1.2.3'

    def move(dest):
        with ae.request_association(remote(args, 'MOVE_SCP')) as assoc:
            responses = [
                {'status': status_obs(status),
                 'remaining': rsp.num_of_remaining_sub_ops,
                 'completed': rsp.num_of_completed_sub_ops,
                 'failed': rsp.num_of_failed_sub_ops,
                 'warning': rsp.num_of_warning_sub_ops}
                for status, rsp in assoc.get_scu(uids.STUDY_ROOT_MOVE_SOP_CLASS)(query, dest, 1)]
            echo = status_obs(assoc.get_scu(uids.VERIFICATION_SOP_CLASS)(2))
            return {'responses': responses, 'echo after': echo}

    with destination:
        seen['move'] = attempt(lambda: move('MOVE_DEST'))
        seen['files after move'] = sorted(os.listdir(args.dir))
        seen['move to nowhere'] = attempt(lambda: move('NOWHERE'))
        def move_command():
            response = commands.move('MOVE_SCU2', remote(args, 'MOVE_SCP'), query, 'MOVE_DEST')
            return {name: getattr(response, name) for name in (
                'num_of_remaining_sub_ops', 'num_of_completed_sub_ops',
                'num_of_failed_sub_ops', 'num_of_warning_sub_ops')}
        seen['commands.move'] = attempt(move_command)
    emit('result', **seen)


# ---------------------------------------------------------------- C-GET (our SCP only)

class Getter(applicationentity.AE):
    """Answers C-GET with the given files, read into memory (Explicit VR LE)."""

    def on_receive_get(self, context, ds):
        emit('get', query=ds_obs(ds))
        datasets = read_files(self.args)
        return len(datasets), iter(datasets)


def get_scp(args) -> None:
    ae = Getter('GET_SCP', 0)
    ae.args = args
    serve(ae.add_scp(sopclass.qr_get_scp))


def get_scu(args) -> None:
    seen = {}
    # Only Implicit VR LE: the SCP must encode its Explicit VR data sets for it.
    ae = applicationentity.ClientStorageAE(pathlib.Path(args.dir), 'GET_SCU',
                                           supported_ts=[ImplicitVRLittleEndian])
    ae.add_scu(sopclass.qr_get_scu)
    # The contexts the C-STORE sub-operations arrive on, stored in files, and the SCP
    # role for them (PS3.4 C.4.3.1), as 0.9.8 scripts had to ask for it.
    ae.update_context_def_list([CT], store_in_file=True)
    role = userdataitems.ScpScuRoleSelectionSubItem(CT, 0, 1)
    ae.dcm_timeout = TIMEOUT
    query = Dataset()
    query.QueryRetrieveLevel = 'STUDY'
    query.StudyInstanceUID = '1.2.3'

    def get():
        received = []
        with ae.request_association(remote(args, 'GET_SCP', user_data=[role])) as assoc:
            for context, data in assoc.get_scu(uids.STUDY_ROOT_GET_SOP_CLASS)(query, 1):
                if isinstance(data, Dataset):
                    instance = data.SOPInstanceUID
                else:
                    data.seek(0)
                    instance = pydicom.dcmread(data).SOPInstanceUID
                received.append({'sop_class': context.sop_class,
                                 'transfer_syntax': context.supported_ts,
                                 'kind': 'dataset' if isinstance(data, Dataset) else 'file',
                                 'sop_instance': instance})
        return received

    seen['get'] = attempt(get)
    emit('result', **seen)


# ---------------------------------------------------------------- storage commitment

class Committer(applicationentity.AE):
    """Commits every instance but those whose UID ends in .99 (failure reason 0x0112),
    and reports to the requester's AE at --dest-port."""

    def on_commitment_request(self, remote_aet, uids_):
        requested = list(uids_)
        emit('commitment request', remote_aet=remote_aet, uids=requested)
        success = [(c, i) for c, i in requested if not i.endswith('.99')]
        failure = [(c, i, sopclass.StorageCommitment.NO_SUCH_OBJECT_INSTANCE)
                   for c, i in requested if i.endswith('.99')]
        return (dict(aet=remote_aet, address='127.0.0.1', port=self.args.dest_port),
                success, failure)


def commitment_scp(args) -> None:
    # One transfer syntax on both sides: 0.9.8 encodes the report in the syntax of the
    # N-ACTION's context, whatever the new association accepted (a 0.9.8 bug that
    # made this scenario fail at random between two 0.9.8 AEs).
    ae = Committer('COMMIT_SCP', 0, supported_ts=[ExplicitVRLittleEndian])
    ae.args = args
    ae.add_scp(sopclass.StorageCommitment()).add_scu(sopclass.storage_commitment_scu)
    serve(ae)


class Requester(applicationentity.AE):
    """The requester: also an SCP of storage commitment, to receive the report."""

    reports: list = []
    arrived = threading.Event()

    def on_commitment_response(self, transaction_uid, success, failure):
        Requester.reports.append({'transaction_uid': transaction_uid,
                                  'success': [list(s) for s in success],
                                  'failure': [list(f) for f in failure]})
        Requester.arrived.set()


def commitment_scu(args) -> None:
    seen = {}
    ae = Requester('COMMIT_SCU', args.dest_port, supported_ts=[ExplicitVRLittleEndian])
    ae.add_scp(sopclass.StorageCommitment()).add_scu(sopclass.storage_commitment_scu)
    ae.dcm_timeout = TIMEOUT
    instances = [(CT, '1.2.3.1'), (CT, '1.2.3.99')]
    with ae:
        def request():
            with ae.request_association(remote(args, 'COMMIT_SCP')) as assoc:
                service = assoc.get_scu(uids.STORAGE_COMMITMENT_SOP_CLASS)
                return status_obs(service('1.2.3.777', instances, 1))
        seen['n-action'] = attempt(request)
        seen['report arrived'] = Requester.arrived.wait(TIMEOUT * 2)
        seen['reports'] = Requester.reports
    emit('result', **seen)


# ---------------------------------------------------------------- many associations

def many_scp(args) -> None:
    serve(applicationentity.AE('MANY_SCP', 0).add_scp(sopclass.verification_scp))


def many_scu(args) -> None:
    ae = applicationentity.ClientAE('MANY_SCU').add_scu(sopclass.verification_scu)
    ae.dcm_timeout = TIMEOUT
    results = []
    with contextlib.ExitStack() as stack:
        # Eleven associations open at once, as a script sending in parallel holds them:
        # one more than the limit of 10 our AE once had by default.
        for number in range(11):
            results.append(attempt(lambda: status_obs(stack.enter_context(
                ae.request_association(remote(args, 'MANY_SCP'))).get_scu(
                    uids.VERIFICATION_SOP_CLASS)(1))))
    emit('result', open_at_once=results)


# ---------------------------------------------------------------- main

SCENARIOS = {
    'basics': (basics_scp, basics_scu),
    'reject': (reject_scp, reject_scu),
    'abort': (abort_scp, abort_scu),
    'identity': (identity_scp, identity_scu),
    'store': (store_scp, store_scu),
    'store_hooks': (store_hooks_scp, store_hooks_scu),
    'find': (find_scp, find_scu),
    'move': (move_scp, move_scu),
    'get': (get_scp, get_scu),
    'commitment': (commitment_scp, commitment_scu),
    'many': (many_scp, many_scu),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--scenario', required=True, choices=sorted(SCENARIOS) + ['api'])
    parser.add_argument('--role', required=True, choices=('scp', 'scu', 'offline'))
    parser.add_argument('--port', type=int, help="the SCP's port (SCU role)")
    parser.add_argument('--dest-port', type=int, help='a port for a third AE')
    parser.add_argument('--dir', help='a storage directory')
    parser.add_argument('--files', nargs='*', default=[], help='Part-10 files to use')
    args = parser.parse_args()
    # The library's warnings and tracebacks go to stderr, which a failing test shows.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format='%(asctime)s %(threadName)s %(name)s %(levelname)s %(message)s')
    version = pynetdicom2.__version__         # 0.9.8: a module holding __version__
    emit('library', version=getattr(version, '__version__', version),
         path=os.path.dirname(pynetdicom2.__file__), python=sys.version.split()[0],
         pydicom=pydicom.__version__)
    if args.scenario == 'api':
        api_offline(args)
    else:
        scp, scu = SCENARIOS[args.scenario]
        (scp if args.role == 'scp' else scu)(args)
    return 0


if __name__ == '__main__':
    sys.exit(main())
