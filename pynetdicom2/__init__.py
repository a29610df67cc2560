"""pynetdicom2: a pure-Python, synchronous DICOM networking library on pydicom."""

from pynetdicom2._version import __version__, __version_info__

__all__ = ['__version__', '__version_info__']
