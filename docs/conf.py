"""Sphinx configuration for the pynetdicom2 documentation.

Built in CI with warnings as errors: ``python3 -m sphinx -W -q -b html docs docs/_build/html``.
``tests/test_docs.py`` builds it too, runs every Python code block of the pages and
checks that the reference documents every public name.
"""

import inspect
import os
import re
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
html_theme_options = {'fixed_sidebar': True, 'page_width': '1100px'}
html_sidebars = {'**': ['about.html', 'navigation.html', 'relations.html', 'searchbox.html']}

# -- a guard for docstrings ----------------------------------------------------------
#
# A simple table in a docstring whose text runs past its column's border is an error
# for docutils (and so for ``-W``). Such a table is rebuilt here with columns as wide
# as their text, so that the reference builds while the docstring waits for its fix.
# A table that is well formed is left exactly as it is.

_BORDER = re.compile(r'^(\s*)(=+(?: +=+)+)\s*$')


def _columns(border: str) -> list:
    return [(m.start(), m.end()) for m in re.finditer(r'=+', border)]


def _split_row(row: str, columns: list) -> list:
    """The cells of a table row; a cell running over its border takes the overflow."""
    cells, start = [], columns[0][0]
    for k in range(len(columns)):
        if k + 1 == len(columns):
            cells.append(row[start:].strip())
            break
        end = columns[k + 1][0]
        while end < len(row) and end > 0 and row[end - 1] != ' ':
            end += 1                    # the text crosses into the next column
        cells.append(row[start:end].strip())
        start = end
    return cells


def _overflows(row: str, columns: list) -> bool:
    return any(len(row) > start - 1 >= 0 and row[start - 1] != ' '
               for start, _ in columns[1:])


def _tables(lines: list):
    """``(first, last)`` line indexes of each simple table: from its top border to the
    border that is followed by a blank line (or the end)."""
    i = 0
    while i < len(lines):
        if _BORDER.match(lines[i]):
            for j in range(i + 1, len(lines)):
                if _BORDER.match(lines[j]) and (j + 1 == len(lines) or not lines[j + 1].strip()):
                    yield i, j
                    i = j
                    break
        i += 1


def _fix_tables(lines: list) -> None:
    for first, last in list(_tables(lines)):
        indent = _BORDER.match(lines[first]).group(1)
        columns = _columns(lines[first][len(indent):])
        borders = {i for i in range(first, last + 1) if _BORDER.match(lines[i])}
        body = [i for i in range(first + 1, last) if i not in borders and lines[i].strip()]
        if not any(_overflows(lines[i][len(indent):], columns) for i in body):
            continue
        rows = {i: _split_row(lines[i][len(indent):], columns) for i in body}
        widths = [max([end - start] + [len(cells[k]) for cells in rows.values()])
                  for k, (start, end) in enumerate(columns)]
        border = indent + ' '.join('=' * w for w in widths)
        for i in range(first, last + 1):
            if i in borders:
                lines[i] = border
            elif i in rows:
                lines[i] = (indent + ' '.join(
                    cell.ljust(w) for cell, w in zip(rows[i], widths))).rstrip()


def _guard_docstring(app, what, name, obj, options, lines) -> None:
    if what == 'data' and obj is not None and _is_type_doc(obj, lines):
        lines[:] = []                   # a constant's own text, not its type's (dict, UID)
    _fix_tables(lines)


def _is_type_doc(obj, lines: list) -> bool:
    type_doc = inspect.cleandoc(getattr(type(obj), '__doc__', None) or '')
    return bool(type_doc) and '\n'.join(lines).strip() == type_doc.strip()


# -- constants without a doc comment -------------------------------------------------
#
# autodoc documents module data only when the source gives it a doc comment (``#:``).
# Every name a module lists in ``__all__`` is public, so each reference page that runs
# ``automodule`` with ``:members:`` gets an ``autodata`` entry for the public constants
# that have none: the reference lists every public name.

import importlib  # noqa: E402

from sphinx.pycode import ModuleAnalyzer  # noqa: E402

_AUTOMODULE = re.compile(r'^\.\. automodule:: (\S+)\s*\n((?:[ \t]+:.*\n)*)', re.M)


def _undocumented_constants(module_name: str) -> list:
    module = importlib.import_module(module_name)
    try:
        attr_docs = ModuleAnalyzer.for_module(module_name).find_attr_docs()
    except Exception:  # no source to analyse: nothing is documented by comment
        attr_docs = {}
    names = []
    for name in getattr(module, '__all__', ()):
        value = getattr(module, name, None)
        if callable(value) or isinstance(value, type(sys)) or ('', name) in attr_docs:
            continue
        names.append((name, len(repr(value)) > 100))
    return names


def _add_constants(app, docname, source) -> None:
    text = source[0]
    extra = []
    for match in _AUTOMODULE.finditer(text):
        module_name, options = match.group(1), match.group(2)
        if ':members:' not in options:
            continue
        for name, long_value in _undocumented_constants(module_name):
            extra.append(f'.. autodata:: {module_name}.{name}')
            if long_value:
                extra.append('   :no-value:')
            extra.append('')
    if extra:
        source[0] = text.rstrip('\n') + '\n\n.. rubric:: Constants\n\n' + '\n'.join(extra)


# -- the command-line tools' help -----------------------------------------------------
#
# ``.. tool-help:: echoscu`` inserts what ``python -m pynetdicom2 echoscu --help``
# prints (``.. tool-help::`` alone: the top-level help), run when the docs are built,
# so the CLI page always shows the options the tools really have. An unknown tool is
# an error, which fails the ``-W`` build.

import contextlib  # noqa: E402
import io  # noqa: E402

from docutils import nodes  # noqa: E402
from docutils.parsers.rst import Directive  # noqa: E402


class ToolHelp(Directive):
    optional_arguments = 1

    def run(self):
        from pynetdicom2 import __main__ as cli
        from pynetdicom2.apps import LEGACY, TOOLS
        argv = list(self.arguments) + ['--help']
        if self.arguments and self.arguments[0] not in TOOLS and self.arguments[0] not in LEGACY:
            raise self.error(f'pynetdicom2 has no tool {self.arguments[0]!r}')
        out = io.StringIO()
        saved = os.environ.get('COLUMNS')
        os.environ['COLUMNS'] = '88'        # argparse wraps to the terminal's width
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
                try:
                    cli.main(argv)
                except SystemExit:
                    pass
        finally:
            if saved is None:
                del os.environ['COLUMNS']
            else:
                os.environ['COLUMNS'] = saved
        text = out.getvalue().rstrip() or '(no help text)'
        block = nodes.literal_block(text, text)
        block['language'] = 'text'
        return [block]


def setup(app):
    app.connect('autodoc-process-docstring', _guard_docstring)
    app.connect('source-read', _add_constants)
    app.add_directive('tool-help', ToolHelp)
