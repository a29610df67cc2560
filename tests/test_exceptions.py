"""The exception hierarchy of API.md §1: tree, signatures, attributes, messages, pickling."""

from __future__ import annotations

import inspect
import pickle

import pytest

from pynetdicom2 import exceptions as exc

TREE = {
    'NetDICOMError': Exception,
    'ClassNotSupportedError': 'NetDICOMError',
    'PDUProcessingError': 'NetDICOMError',
    'DIMSEProcessingError': 'NetDICOMError',
    'AssociationError': 'NetDICOMError',
    'AssociationRejectedError': 'AssociationError',
    'AssociationReleasedError': 'AssociationError',
    'AssociationAbortedError': 'AssociationError',
    'DCMTimeoutError': 'NetDICOMError',
    'EventHandlingError': 'NetDICOMError',
}


@pytest.mark.parametrize('name, parent', TREE.items())
def test_tree(name, parent):
    cls = getattr(exc, name)
    base = parent if isinstance(parent, type) else getattr(exc, parent)
    assert cls.__bases__ == (base,)
    assert cls.__doc__ and len(cls.__doc__) > 40


def test_every_class_is_in_all_and_documented_in_the_module_docstring():
    assert set(exc.__all__) == set(TREE)
    for name in TREE:
        assert name in exc.__doc__


def test_constructor_signatures():
    rejected = inspect.signature(exc.AssociationRejectedError.__init__)
    assert list(rejected.parameters) == ['self', 'result', 'source', 'diagnostic', 'args', 'kwargs']
    aborted = inspect.signature(exc.AssociationAbortedError.__init__)
    assert list(aborted.parameters) == ['self', 'source', 'reason_diag', 'args', 'kwargs']


@pytest.mark.parametrize('name', [n for n in TREE if n not in
                                  ('AssociationRejectedError', 'AssociationAbortedError')])
def test_plain_classes_construct_with_and_without_a_message(name):
    cls = getattr(exc, name)
    assert str(cls()) == ''
    assert str(cls('what happened')) == 'what happened'
    copy = pickle.loads(pickle.dumps(cls('what happened')))
    assert type(copy) is cls and copy.args == ('what happened',)


def test_rejected_keeps_its_wire_values_and_describes_them():
    err = exc.AssociationRejectedError(1, 1, 3)
    assert (err.result, err.source, err.diagnostic) == (1, 1, 3)
    assert str(err) == ('association rejected: result 1 (rejected-permanent), source 1 '
                        '(DICOM UL service-user), diagnostic 3 (calling-AE-title-not-recognized)')
    err = exc.AssociationRejectedError(2, 3, 2, 'peer X is busy')
    assert str(err) == 'peer X is busy'
    assert 'local-limit-exceeded' in err.describe()


def test_aborted_keeps_its_wire_values_and_describes_them():
    err = exc.AssociationAbortedError(2, 6)
    assert (err.source, err.reason_diag) == (2, 6)
    assert 'invalid-PDU-parameter-value' in str(err)
    assert str(exc.AssociationAbortedError(0, 0, 'peer Y aborted')) == 'peer Y aborted'


@pytest.mark.parametrize('err', [
    exc.AssociationRejectedError(2, 3, 2, 'busy'),
    exc.AssociationRejectedError(1, 1, 7),
    exc.AssociationAbortedError(2, 1, 'unrecognized'),
    exc.AssociationAbortedError(0, 0),
])
def test_pickling_keeps_attributes_and_message(err):
    copy = pickle.loads(pickle.dumps(err))
    assert type(copy) is type(err)
    assert copy.__dict__ == err.__dict__
    assert str(copy) == str(err)


def test_extra_kwargs_go_to_exception_and_chaining_works():
    with pytest.raises(exc.NetDICOMError) as info:
        try:
            raise OSError('connection refused')
        except OSError as cause:
            raise exc.NetDICOMError('cannot connect to 127.0.0.1:104') from cause
    assert isinstance(info.value.__cause__, OSError)


def test_old_timeout_name_is_the_new_class():
    assert exc.TimeoutError is exc.DCMTimeoutError
