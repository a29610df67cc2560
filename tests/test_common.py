"""Tests of pynetdicom2.services.common: the response a request gets (``response_to``),
the same whichever way it is made."""

from __future__ import annotations

import pytest
from pydicom.uid import UID

from pynetdicom2 import dimse, statuses
from pynetdicom2.services.common import response_to

CT = '1.2.840.10008.5.1.4.1.1.2'
INSTANCE = '1.2.826.0.1.3680043.8.498.1'


def c_store_rq():
    rq = dimse.CStoreRQMessage()
    rq.message_id = 7
    rq.affected_sop_class_uid = CT
    rq.affected_sop_instance_uid = INSTANCE
    rq.priority = dimse.PRIORITY_MEDIUM
    rq.data_set = b'\0\0'
    return rq


def n_action_rq():
    rq = dimse.NActionRQMessage()
    rq.message_id = 9
    rq.sop_class_uid = '1.2.840.10008.1.20.1'
    rq.requested_sop_instance_uid = '1.2.840.10008.1.20.1.1'
    rq.action_type_id = 1
    return rq


def n_get_rq():
    rq = dimse.NGetRQMessage()
    rq.message_id = 11
    rq.sop_class_uid = '1.2.840.10008.5.1.1.16'
    rq.requested_sop_instance_uid = '1.2.840.10008.5.1.1.17'
    return rq


def c_echo_rq():
    rq = dimse.CEchoRQMessage()
    rq.message_id = 3
    rq.affected_sop_class_uid = '1.2.840.10008.1.1'
    return rq


def received(rq):
    """The request as a peer's bytes decode to it."""
    return dimse.decode_message(rq.encode_command_set())


def as_dataset(rq):
    """The request after someone read its ``command_set`` (a pydicom Dataset now)."""
    rq.command_set
    return rq


EXPECTED = {
    # request maker: (response class, elements it must carry besides status)
    c_store_rq: (dimse.CStoreRSPMessage, {'message_id_being_responded_to': 7,
                                          'affected_sop_class_uid': CT,
                                          'affected_sop_instance_uid': INSTANCE}),
    n_action_rq: (dimse.NActionRSPMessage, {'message_id_being_responded_to': 9,
                                            'affected_sop_class_uid': '1.2.840.10008.1.20.1',
                                            'affected_sop_instance_uid':
                                                '1.2.840.10008.1.20.1.1',
                                            'action_type_id': 1}),
    n_get_rq: (dimse.NGetRSPMessage, {'message_id_being_responded_to': 11,
                                      'affected_sop_class_uid': '1.2.840.10008.5.1.1.16',
                                      'affected_sop_instance_uid': '1.2.840.10008.5.1.1.17'}),
    c_echo_rq: (dimse.CEchoRSPMessage, {'message_id_being_responded_to': 3,
                                        'affected_sop_class_uid': '1.2.840.10008.1.1'}),
}


@pytest.mark.parametrize('make', list(EXPECTED), ids=lambda f: f.__name__)
@pytest.mark.parametrize('way', [lambda rq: rq, received, as_dataset],
                         ids=['made', 'received', 'dataset'])
@pytest.mark.parametrize('status, comment', [(statuses.SUCCESS, None), (0xB000, None),
                                             (statuses.PROCESSING_FAILURE, 'bad\\thing')])
def test_the_response_carries_the_request_and_the_status(make, way, status, comment):
    rsp_class, expected = EXPECTED[make]
    rsp = response_to(way(make()), rsp_class, status, comment)
    assert type(rsp) is rsp_class
    for name, value in expected.items():
        assert getattr(rsp, name) == value
        if name.endswith('uid'):
            assert type(getattr(rsp, name)) is UID
    assert rsp.status == int(status) and type(rsp.status) is int
    assert rsp.error_comment == ('bad/thing' if comment else None)
    assert not rsp.has_data_set and rsp.data_set is None
    # A fresh message: its command set names every field of the response, None
    # where unset, and only what is set is sent.
    keywords = {elem.keyword for elem in rsp.command_set}
    assert keywords == set(rsp_class.command_fields)
    sent = dimse.decode_message(rsp.encode_command_set())
    assert {elem.keyword for elem in sent.command_set} == \
        {elem.keyword for elem in rsp.command_set if elem.value is not None}
    assert sent.status == int(status)
    for name, value in expected.items():
        assert getattr(sent, name) == value
