"""Packaging for pynetdicom2."""

import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERSION = re.search(r"__version__ = '([^']+)'",
                    (HERE / 'pynetdicom2' / '_version.py').read_text()).group(1)

setup(
    name='pynetdicom2',
    version=VERSION,
    description='Pure-Python, synchronous DICOM networking (PS3.7, PS3.8) on pydicom',
    long_description=(HERE / 'README.rst').read_text(),
    long_description_content_type='text/x-rst',
    license='MIT',
    packages=find_packages(include=['pynetdicom2', 'pynetdicom2.*']),
    python_requires='>=3.9',
    install_requires=['pydicom>=2.4,<4'],
    extras_require={
        'test': ['pytest>=7', 'pytest-timeout', 'hypothesis>=6',
                 'pynetdicom==3.0.4; python_version >= "3.10"'],
        'docs': ['sphinx>=5'],
    },
    entry_points={'console_scripts': ['pynetdicom2 = pynetdicom2.__main__:main']},
    classifiers=[
        'Programming Language :: Python :: 3',
        'License :: OSI Approved :: MIT License',
        'Topic :: Scientific/Engineering :: Medical Science Apps.',
        'Topic :: System :: Networking',
    ],
)
