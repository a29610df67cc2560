"""Old name of ``pynetdicom2.ae``, kept so 0.9.x imports keep working."""

from pynetdicom2.ae import *  # noqa: F401,F403
from pynetdicom2.ae import __all__  # noqa: F401
