"""The package version, kept in one place for setup.py and the package."""

__version__ = '1.0.0.dev0'
__version_info__ = (1, 0, 0, 'dev0')
