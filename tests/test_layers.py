"""Imports point down the layers (docs/reference/index.rst, "How the house is laid out").

Every ``import`` of a library module, lazy ones inside functions included, is read from
the source; a module may import only modules listed after it in ``LAYERS``.
"""

from __future__ import annotations

import ast
import pathlib
from typing import Iterator, Optional, Tuple

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / 'pynetdicom2'

# Top to bottom, as the reference index lists them; a name covers its submodules.
LAYERS = [
    '__main__', 'apps', 'applicationentity', 'dimsemessages', 'commands', 'ssl_ae', 'ae',
    'folderstorage', 'aeserver', 'workers', 'aebase', 'sopclass', 'services', 'incoming',
    'sparefiles',
    'asceprovider', 'association', 'negotiation', 'context', 'settings',
    'reassembly', 'dumps', 'dimsedumps', 'dimse', 'dimsecodec',
    'dulprovider', 'fsm', 'pdudumps', 'tls',
    'fragmentation', 'pdu', 'pduitems', 'userdataitems', 'pducodec',
    'transcode', 'dsutils', 'dscheck',
    'exceptions', 'statuses', 'uids', '_version',
]


def rank(module: str) -> Optional[int]:
    """Where ``pynetdicom2.<module>`` stands in ``LAYERS`` (None: the package itself)."""
    name = module.split('.', 1)[1] if '.' in module else ''
    for index, layer in enumerate(LAYERS):
        if name == layer or name.startswith(layer + '.'):
            return index
    return None


def modules() -> Iterator[Tuple[str, pathlib.Path]]:
    for path in sorted(PACKAGE.rglob('*.py')):
        parts = path.relative_to(PACKAGE.parent).with_suffix('').parts
        if parts[-1] == '__init__':
            parts = parts[:-1]
        yield '.'.join(parts), path


def imported(path: pathlib.Path) -> Iterator[str]:
    """The library modules ``path`` imports, wherever the import statement stands."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == 'pynetdicom2':
                yield from (f'pynetdicom2.{alias.name}' for alias in node.names)
            elif node.module.startswith('pynetdicom2.'):
                yield node.module
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names
                        if alias.name.startswith('pynetdicom2.'))


def test_every_module_has_a_layer():
    assert [name for name, _ in modules()
            if name != 'pynetdicom2' and rank(name) is None] == []


@pytest.mark.parametrize('name', [name for name, _ in modules()])
def test_imports_point_down(name):
    path = dict(modules())[name]
    here = rank(name)
    if here is None:
        return  # the package's __init__ gathers the public names from every layer
    upward = sorted(target for target in set(imported(path))
                    if not target.startswith(name + '.') and rank(target) is not None
                    and rank(target) < here)
    assert upward == [], f'{name} imports {upward}, above it'
