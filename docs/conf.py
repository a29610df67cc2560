"""Sphinx configuration for the pynetdicom2 documentation."""

import os
import sys

sys.path.insert(0, os.path.abspath('..'))

from pynetdicom2 import __version__  # noqa: E402

project = 'pynetdicom2'
author = 'The pynetdicom2 developers'
copyright = '2026, The pynetdicom2 developers'
release = __version__
version = __version__

extensions = ['sphinx.ext.autodoc', 'sphinx.ext.viewcode']
autodoc_member_order = 'bysource'
exclude_patterns = ['_build']
html_theme = 'alabaster'
