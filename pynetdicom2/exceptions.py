"""Every exception pynetdicom2 raises, and nothing else.

``NetDICOMError`` is the base class of all library errors. The hierarchy is::

    Exception
     +-- NetDICOMError
          +-- ClassNotSupportedError
          +-- PDUProcessingError
          +-- DIMSEProcessingError
          +-- AssociationError
          |    +-- AssociationRejectedError
          |    +-- AssociationReleasedError
          |    +-- AssociationAbortedError
          +-- DCMTimeoutError
          +-- EventHandlingError

Every layer of the library raises only these at its edge: a decoder never lets a
``struct.error``, ``IndexError`` or ``KeyError`` out, and a socket failure arrives as a
``NetDICOMError`` with the ``OSError`` chained as its ``__cause__``.

The library always gives a message saying what happened and with which peer. User
code may still construct any of them without a message (for example
``raise AssociationRejectedError(1, 1, 3)`` in ``on_association_request``); the
association errors then describe their DICOM values in words. All of them pickle
with their attributes.
"""

from __future__ import annotations

__all__ = [
    'NetDICOMError', 'ClassNotSupportedError', 'PDUProcessingError',
    'DIMSEProcessingError', 'AssociationError', 'AssociationRejectedError',
    'AssociationReleasedError', 'AssociationAbortedError', 'DCMTimeoutError',
    'EventHandlingError',
]

# Meanings of the A-ASSOCIATE-RJ and A-ABORT fields, PS3.8 9.3.4 and 9.3.8.
REJECT_RESULTS = {1: 'rejected-permanent', 2: 'rejected-transient'}
REJECT_SOURCES = {
    1: 'DICOM UL service-user',
    2: 'DICOM UL service-provider (ACSE related function)',
    3: 'DICOM UL service-provider (presentation related function)',
}
REJECT_DIAGNOSTICS = {
    1: {1: 'no-reason-given', 2: 'application-context-name-not-supported',
        3: 'calling-AE-title-not-recognized', 7: 'called-AE-title-not-recognized'},
    2: {1: 'no-reason-given', 2: 'protocol-version-not-supported'},
    3: {1: 'temporary-congestion', 2: 'local-limit-exceeded'},
}
ABORT_SOURCES = {0: 'DICOM UL service-user', 1: 'reserved',
                 2: 'DICOM UL service-provider'}
ABORT_REASONS = {
    0: 'reason-not-specified', 1: 'unrecognized-PDU', 2: 'unexpected-PDU',
    4: 'unrecognized-PDU-parameter', 5: 'unexpected-PDU-parameter',
    6: 'invalid-PDU-parameter-value',
}


def _meaning(table: dict, value) -> str:
    return table.get(value, 'reserved') if isinstance(value, int) else 'unknown'


class NetDICOMError(Exception):
    """Base class of every exception the library raises."""


class ClassNotSupportedError(NetDICOMError):
    """Raised when a requested SOP class is not supported by the application entity.

    For example ``get_scu(uid)`` for a SOP class that was not accepted on the
    association or has no registered service, or an incoming message for a SOP class
    without an accepted presentation context.
    """


class PDUProcessingError(NetDICOMError):
    """Raised when an error occurs while processing a PDU.

    Raised, for example, when a PDU or one of its items fails to decode from the
    received bytes (unknown type, short buffer, lengths that disagree, a declared
    length above the negotiated maximum), or when a value cannot be encoded. The
    association is aborted; the peer receives A-ABORT with source 2.
    """


class DIMSEProcessingError(NetDICOMError):
    """Raised when an error occurs while processing a DIMSE message.

    Raised, for example, when a DIMSE message cannot be decoded from its P-DATA
    fragments (bad command set, fragments out of order or for the wrong
    presentation context) or is not valid at this point. The association is aborted.
    """


class AssociationError(NetDICOMError):
    """Base association error.

    It is never raised directly: its more specialised subclasses are raised in
    the appropriate situations.
    """


class AssociationRejectedError(AssociationError):
    """Raised when the remote application entity has rejected the requested association.

    The three attributes say why, with the values of PS3.8 9.3.4 (A-ASSOCIATE-RJ PDU
    structure). Raise it from ``on_association_request`` to reject an incoming
    association: the peer receives A-ASSOCIATE-RJ with exactly these values.

    :param result: 1 - rejected-permanent, or 2 - rejected-transient
    :param source: one of

        * 1 - DICOM UL service-user
        * 2 - DICOM UL service-provider (ACSE related function)
        * 3 - DICOM UL service-provider (Presentation related function)

    :param diagnostic: if the source is (1) DICOM UL service-user, one of

        * 1 - no-reason-given
        * 2 - application-context-name-not-supported
        * 3 - calling-AE-title-not-recognized
        * 4-6 - reserved
        * 7 - called-AE-title-not-recognized
        * 8-10 - reserved

      if the source is (2) DICOM UL service-provider (ACSE related function), one of

        * 1 - no-reason-given
        * 2 - protocol-version-not-supported

      if the source is (3) DICOM UL service-provider (Presentation related
      function), one of

        * 0 - reserved
        * 1 - temporary-congestion
        * 2 - local-limit-exceeded
        * 3-7 - reserved
    """

    def __init__(self, result, source, diagnostic, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.result = result
        self.source = source
        self.diagnostic = diagnostic

    def describe(self) -> str:
        """The three values with their meanings, in words."""
        diag = _meaning(REJECT_DIAGNOSTICS.get(self.source, {}), self.diagnostic)
        return (f'result {self.result} ({_meaning(REJECT_RESULTS, self.result)}), '
                f'source {self.source} ({_meaning(REJECT_SOURCES, self.source)}), '
                f'diagnostic {self.diagnostic} ({diag})')

    def __str__(self) -> str:
        return super().__str__() if self.args else f'association rejected: {self.describe()}'

    def __reduce__(self):
        return (type(self), (self.result, self.source, self.diagnostic, *self.args),
                self.__dict__)


class AssociationReleasedError(AssociationError):
    """Raised when the remote application entity has released the active association.

    For example when the peer sends A-RELEASE-RQ while we wait for a response.
    """


class AssociationAbortedError(AssociationError):
    """Raised when the association was aborted, by the remote AE or the provider.

    The attributes carry the values of the A-ABORT PDU (PS3.8 9.3.8).

    :param source: 0 - DICOM UL service-user (initiated abort),
        2 - DICOM UL service-provider (initiated abort)
    :param reason_diag: meaningful when the source is 2:

        * 0 - reason-not-specified
        * 1 - unrecognized-PDU
        * 2 - unexpected-PDU
        * 4 - unrecognized-PDU parameter
        * 5 - unexpected-PDU parameter
        * 6 - invalid-PDU-parameter value
    """

    def __init__(self, source, reason_diag, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.source = source
        self.reason_diag = reason_diag

    def describe(self) -> str:
        """The two values with their meanings, in words."""
        return (f'source {self.source} ({_meaning(ABORT_SOURCES, self.source)}), '
                f'reason {self.reason_diag} ({_meaning(ABORT_REASONS, self.reason_diag)})')

    def __str__(self) -> str:
        return super().__str__() if self.args else f'association aborted: {self.describe()}'

    def __reduce__(self):
        return (type(self), (self.source, self.reason_diag, *self.args), self.__dict__)


class DCMTimeoutError(NetDICOMError):
    """Raised when no expected PDU arrived from the upper layer within the timeout.

    Every wait is bounded: the ARTIM timer, the association's ``dcm_timeout`` while
    waiting for a message, the connect timeout. The association is aborted and its
    socket closed.
    """


class EventHandlingError(NetDICOMError):
    """Raised by user event handlers; the library itself never raises it.

    Raise it from an ``on_*`` handler of an ``AE`` subclass to say that the AE
    failed to process the received event. The services expect it and act
    accordingly: the SCP answers with the service's failure status and the
    association stays usable. Any other exception from a handler is not handled
    by the service: it is logged and that one association is aborted.
    """


# pynetdicom2 0.9.7 called DCMTimeoutError 'TimeoutError'; old imports keep working.
TimeoutError = DCMTimeoutError  # noqa: A001
