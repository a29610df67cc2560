"""The original name of ``pynetdicom2.dimse``, kept so that old imports keep working.

Everything public of ``pynetdicom2.dimse`` is re-exported here unchanged (the same
classes and functions, not copies); new code imports ``pynetdicom2.dimse``.
"""

from __future__ import annotations

from pynetdicom2 import dimse as _dimse
from pynetdicom2.dimse import *  # noqa: F401,F403  (the alias is the whole point)

__all__ = list(_dimse.__all__)
