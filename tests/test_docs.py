"""The documentation is true to the code: it builds, documents every public name, and
every code block on its pages runs and prints what the page says it prints.

The site is built once per session with warnings as errors, as CI builds it. Then, page
by page, in a scratch folder holding the files the pages name (``ct.dcm``, ``images/``,
TLS certificates):

* ``.. code-block:: python`` blocks run in order in one namespace. A comment
  ``# -> text`` claims that the block prints ``text``; the claim is checked. Blocks that
  import pynetdicom 3 run in a process of their own.
* ``.. code-block:: console`` blocks run each ``$ python -m pynetdicom2 ...`` command;
  the lines shown under a command must appear in its output (``...`` stands for
  anything), and it must exit 0 unless an ``echo $?`` line says otherwise. The server
  tools (``qrscp``, ``storescp``) are started in the background, with ``--bind
  127.0.0.1`` added, and stopped at the end of the page. A command naming a DCMTK
  tool (``$ findscu ...``, ``$ wlmscpfs ...``) runs DCMTK's, from /usr/bin; DCMTK's
  servers also run in the background until the end of the page.
* Pages listed in ``DCMTK_PAGES`` call DCMTK tools from their Python blocks too; they
  run with DCMTK's folder first on ``PATH`` (pynetdicom's same-named scripts may be
  on it), and are skipped where DCMTK is missing (failed on CI).
* The tutorial makes its own ``ct.dcm`` and ``images/`` (its recipe), so it starts
  in a folder without them. Logging a page configures (handlers and levels of the
  root and ``pynetdicom2`` loggers) is undone after it. ``qrscp --reindex`` is a
  command, not a server.

The pages write ``11112`` for the archive's port, ``11113`` for the C-MOVE destination
it knows and ``11114`` for a port where nothing listens; each is replaced by a free
port before a block runs. A page that talks to 11112 without starting an archive gets
the one the tutorial starts (``qrscp``).
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import io
import logging
import os
import pathlib
import pkgutil
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
import threading
import time
import zlib
from typing import Dict, List, NamedTuple

import pydicom
import pytest
from pydicom.dataset import Dataset

import pynetdicom2
from pynetdicom2 import exceptions
from tests.peers import (
    CHILDREN, dcmtk, free_port, make_ct_file, pynetdicom_python, run_tool, stop_process,
    wait_listening)

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = ROOT / 'docs'
PACS_PORT_IN_DOCS = '11112'
DESTINATION_PORT_IN_DOCS = '11113'
NOBODY_PORT_IN_DOCS = '11114'
PORTS_IN_DOCS = (PACS_PORT_IN_DOCS, DESTINATION_PORT_IN_DOCS, NOBODY_PORT_IN_DOCS)

# Modules whose every ``__all__`` name must be in the reference (the list and
# the services).
DOCUMENTED_MODULES = [
    'pynetdicom2', 'pynetdicom2.ae', 'pynetdicom2.asceprovider', 'pynetdicom2.sopclass',
    'pynetdicom2.statuses', 'pynetdicom2.uids', 'pynetdicom2.dimse', 'pynetdicom2.pdu',
    'pynetdicom2.userdataitems', 'pynetdicom2.commands', 'pynetdicom2.ssl_ae',
    'pynetdicom2.tls', 'pynetdicom2.exceptions', 'pynetdicom2.fsm', 'pynetdicom2.dulprovider',
    'pynetdicom2.services.common', 'pynetdicom2.services.verification',
    'pynetdicom2.services.storage', 'pynetdicom2.services.queryretrieve',
    'pynetdicom2.services.find', 'pynetdicom2.services.retrieve',
    'pynetdicom2.services.identifiers', 'pynetdicom2.services.qrexchange',
    'pynetdicom2.services.cancel', 'pynetdicom2.services.suboperations',
    'pynetdicom2.services.commitment', 'pynetdicom2.services.nservices',
    'pynetdicom2.applicationentity', 'pynetdicom2.dimsemessages', 'pynetdicom2.dsutils',
    'pynetdicom2.dimsecodec', 'pynetdicom2.fragmentation', 'pynetdicom2.reassembly',
    'pynetdicom2.incoming', 'pynetdicom2.workers', 'pynetdicom2.context',
    'pynetdicom2.aebase', 'pynetdicom2.aeserver', 'pynetdicom2.folderstorage',
    'pynetdicom2.pduitems', 'pynetdicom2.pducodec', 'pynetdicom2.association',
]


# -- the build ---------------------------------------------------------------------------

@pytest.fixture(scope='session')
def built_docs(tmp_path_factory) -> pathlib.Path:
    """The HTML site, built as CI builds it (``-W``: a warning fails the build)."""
    out = tmp_path_factory.mktemp('html')
    result = subprocess.run(
        [sys.executable, '-m', 'sphinx', '-W', '-q', '-b', 'html', str(DOCS), str(out)],
        capture_output=True, text=True, timeout=180, cwd=ROOT)
    assert result.returncode == 0, (
        f'sphinx-build failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}')
    return out


def read_inventory(path: pathlib.Path) -> Dict[str, str]:
    """``objects.inv`` as {name: 'domain:role'} (Sphinx inventory format 2)."""
    raw = path.read_bytes()
    header_end = 0
    for _ in range(4):                      # four '#' header lines, then zlib data
        header_end = raw.index(b'\n', header_end) + 1
    assert raw.startswith(b'# Sphinx inventory version 2')
    entries = {}
    for line in zlib.decompress(raw[header_end:]).decode('utf-8').splitlines():
        match = re.match(r'(.+?)\s+(\S+:\S+)\s+(-?\d+)\s+(\S*)\s+(.*)', line)
        if match:
            entries[match.group(1)] = match.group(2)
    return entries


@pytest.fixture(scope='session')
def inventory(built_docs) -> Dict[str, str]:
    return read_inventory(built_docs / 'objects.inv')


def documented_as(module_name: str, name: str) -> List[str]:
    """The inventory names under which ``module.name`` may be documented."""
    obj = getattr(importlib.import_module(module_name), name)
    names = [f'{module_name}.{name}']
    if inspect.isclass(obj) or inspect.isfunction(obj):
        names.insert(0, f'{obj.__module__}.{obj.__qualname__}')
    else:                                   # a constant, maybe re-exported
        names += [f'{other}.{name}' for other in DOCUMENTED_MODULES
                  if getattr(importlib.import_module(other), name, None) is obj]
    return names


def test_the_site_builds_with_warnings_as_errors(built_docs):
    for page in ('index', 'tutorial', 'exceptions', 'migration', 'performance', 'cli',
                 'howto/index', 'reference/index', 'quickstart/receive', 'quickstart/send',
                 'deployment', 'howto/worklist', 'howto/mpps'):
        assert (built_docs / f'{page}.html').is_file(), page


@pytest.mark.parametrize('module_name', DOCUMENTED_MODULES)
def test_every_public_name_is_in_the_reference(inventory, module_name):
    module = importlib.import_module(module_name)
    assert inventory.get(module_name) == 'py:module', f'{module_name} has no reference page'
    missing = [name for name in getattr(module, '__all__', [])
               if not any(candidate in inventory
                          for candidate in documented_as(module_name, name))]
    assert not missing, f'{module_name}: not in the reference: {missing}'


def test_every_name_of_the_package_is_listed_on_its_page():
    page = (DOCS / 'reference' / 'package.rst').read_text()
    unlisted = [name for name in pynetdicom2.__all__ if name not in page]
    assert not unlisted


def test_every_exception_is_in_the_reference_with_its_attributes(inventory, built_docs):
    for name in exceptions.__all__:
        assert inventory.get(f'pynetdicom2.exceptions.{name}') == 'py:exception', name
    # The page's own table names each one; the built page shows their attributes.
    page = (DOCS / 'exceptions.rst').read_text()
    table = page[page.index('When each is raised'):page.index('Exceptions from your hooks')]
    for name in exceptions.__all__:
        if name != 'AssociationError':       # never raised: nothing to say when
            assert f'``{name}``' in table, name
    html = (built_docs / 'exceptions.html').read_text()
    for attribute in ('result', 'source', 'diagnostic', 'reason_diag'):
        assert f'<strong>{attribute}</strong>' in html, attribute   # the :param: fields
    assert 'pynetdicom2.exceptions.AssociationRejectedError.describe' in inventory


def test_the_library_is_silent_unless_the_application_configures_logging():
    # The logging how-to says so: one NullHandler on the package logger, nothing else;
    # configuring output is the application's business.
    for module in pkgutil.walk_packages(pynetdicom2.__path__, 'pynetdicom2.'):
        if module.name != 'pynetdicom2.__main__':
            importlib.import_module(module.name)
    for name, logger in logging.Logger.manager.loggerDict.items():
        if name.startswith('pynetdicom2.') and isinstance(logger, logging.Logger):
            assert logger.handlers == [], name
    handlers = logging.getLogger('pynetdicom2').handlers
    assert [type(h) for h in handlers] == [logging.NullHandler]


# -- the blocks of the pages ----------------------------------------------------------

class CodeBlock(NamedTuple):
    page: str
    line: int           # of the directive, 1-based
    language: str       # 'python' or 'console'
    code: str


_DIRECTIVE = re.compile(r'^(?P<indent>[ \t]*)\.\. (?:code-block|code|sourcecode)::[ \t]*'
                        r'(?P<language>python3?|py|console)[ \t]*$')


#: Any ``code-block``, for the pages' configuration files (``ini``, ``text`` ...).
_ANY_DIRECTIVE = re.compile(r'^(?P<indent>[ \t]*)\.\. (?:code-block|code|sourcecode)::[ \t]*'
                            r'(?P<language>[\w-]+)[ \t]*$')


def page_blocks(path: pathlib.Path, directive: re.Pattern = _DIRECTIVE) -> List[CodeBlock]:
    """The Python and console code blocks of an reST page (or those ``directive``
    matches), dedented, in page order."""
    lines = path.read_text().splitlines()
    blocks = []
    i = 0
    while i < len(lines):
        match = directive.match(lines[i])
        if not match:
            i += 1
            continue
        indent = len(match.group('indent'))
        start = i
        i += 1
        while i < len(lines) and re.match(r'^\s+:[\w-]+:', lines[i]):
            i += 1                          # the directive's options
        body = []
        while i < len(lines) and (not lines[i].strip()
                                  or len(lines[i]) - len(lines[i].lstrip()) > indent):
            body.append(lines[i])
            i += 1
        language = match.group('language')
        language = 'python' if language in ('python', 'python3', 'py') else language
        text = textwrap.dedent('\n'.join(body).strip('\n')) + '\n'
        blocks.append(CodeBlock(str(path.relative_to(DOCS)), start + 1, language, text))
    return blocks


def code_blocks(path: pathlib.Path) -> List[CodeBlock]:
    return [block for block in page_blocks(path) if block.language == 'python']


PAGES = sorted(p for p in DOCS.rglob('*.rst') if '_build' not in p.parts and page_blocks(p))


def expected_output(code: str) -> List[str]:
    """The ``# -> text`` claims of a Python block."""
    return [m.group(1).strip() for m in re.finditer(r'#\s*->\s*(.+)$', code, re.M)]


def uses_pynetdicom(code: str) -> bool:
    return re.search(r'^\s*(?:from|import)\s+pynetdicom(?!2)\b', code, re.M) is not None


class Command(NamedTuple):
    line: str           # what follows "$ "
    output: List[str]   # the lines the page shows under it


def console_commands(block: CodeBlock) -> List[Command]:
    commands: List[Command] = []
    for line in block.code.splitlines():
        if line.startswith('$ '):
            commands.append(Command(line[2:].strip(), []))
        elif line.strip():
            assert commands, f'{block.page}:{block.line}: output before any command'
            commands[-1].output.append(line.strip())
    return commands


def shown_in(shown: str, printed: str) -> bool:
    """A line the page shows is in the output; '...' stands for anything. Tags printed
    by pydicom 2 as "(0008, 0020)" count as the page's pydicom 3 "(0008,0020)"."""
    printed = _TAG_SPACE.sub(r'(\1,\2)', printed)
    return all(part.strip() in printed for part in shown.split('...') if part.strip())


_TAG_SPACE = re.compile(r'\(([0-9A-Fa-f]{4}), ([0-9A-Fa-f]{4})\)')


def make_series(folder: pathlib.Path, count: int) -> List[pathlib.Path]:
    """``count`` CT images of one new study of patient PID0001 in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [make_ct_file(folder / f'ct{n}.dcm') for n in range(1, count + 1)]
    first = pydicom.dcmread(paths[0])
    for n, path in enumerate(paths, 1):
        ds = pydicom.dcmread(path)
        ds.StudyInstanceUID = first.StudyInstanceUID
        ds.SeriesInstanceUID = first.SeriesInstanceUID
        ds.InstanceNumber = n
        if int(pydicom.__version__.split('.')[0]) >= 3:
            ds.save_as(path, enforce_file_format=True)
        else:  # pydicom 2 names the option otherwise
            ds.save_as(path, write_like_original=False)
    return paths


def _ae_threads() -> set:
    return {t for t in threading.enumerate() if t.name.startswith('AE ')}


# -- running them ------------------------------------------------------------------------

SERVER_TOOLS = ('qrscp', 'storescp')
#: DCMTK tools a console block may run (``$ findscu ...``), and those of them that are
#: servers, started in the background (their port is their last argument).
DCMTK_TOOLS = ('echoscu', 'findscu', 'storescu', 'wlmscpfs')
DCMTK_SERVERS = ('wlmscpfs',)
#: Pages whose Python blocks run DCMTK tools (by name, from PATH): the tools they need.
# Pages whose examples convert compressed pixel data: pydicom 3's encoders and decoders.
PYDICOM_3_PAGES = {'howto/transfer-syntaxes.rst'}

DCMTK_PAGES = {
    'howto/worklist.rst': ('findscu', 'wlmscpfs'),
}
#: Pages that make ``ct.dcm`` and ``images/`` themselves (the tutorial's recipe):
#: they start in a scratch folder without them, so their own files are used.
MAKE_THEIR_OWN_FILES = {'tutorial.rst'}
#: Pages that use the test certificates (``server.pem``, ``client.pem``, ``ca.pem`` ...).
TLS_PAGES = {'howto/tls.rst', 'deployment.rst'}


class PageRun:
    """Runs one page's blocks in order: Python in one namespace, console commands as
    processes. Servers the page starts (``qrscp``, ``storescp``) run in the background,
    bound to 127.0.0.1, until ``close``."""

    def __init__(self, name: str, ports: Dict[str, int]) -> None:
        self.name = name
        self.ports = ports
        self.namespace: dict = {'__name__': '__docs__'}
        self.servers: List[subprocess.Popen] = []

    def ported(self, text: str) -> str:
        for placeholder, port in self.ports.items():
            text = text.replace(placeholder, str(port))
        return text

    def run(self, block: CodeBlock) -> None:
        if block.language == 'console':
            self.run_console(block)
        else:
            self.run_python(block)

    # Python -----------------------------------------------------------------------

    def run_python(self, block: CodeBlock) -> None:
        code = self.ported(block.code)
        where = f'{block.page}:{block.line}'
        if uses_pynetdicom(code):
            printed = self.run_pynetdicom(code, where)
        else:
            out = io.StringIO()
            try:
                with contextlib.redirect_stdout(out):
                    exec(compile(code, where, 'exec'), self.namespace)
            except BaseException as exc:
                raise AssertionError(f'{where} raised {exc!r}; it printed:\n{out.getvalue()}'
                                     f'\n--- the block ---\n{code}') from exc
            printed = out.getvalue()
        for claim in expected_output(block.code):
            claim = self.ported(claim)
            assert claim in printed, f'{where} should print {claim!r}; it printed:\n{printed}'

    @staticmethod
    def run_pynetdicom(code: str, where: str) -> str:
        # pynetdicom 3 runs in a process of its own, in the virtual environment
        # tests/run_all.sh gives it (skipped, or failed on CI, when it is missing).
        result = run_tool([pynetdicom_python(), '-c', code], timeout=60)
        assert result.returncode == 0, f'{where} failed:\n{result.stdout}\n{result.stderr}'
        return result.stdout

    # console ----------------------------------------------------------------------

    def run_console(self, block: CodeBlock) -> None:
        where = f'{block.page}:{block.line}'
        commands = console_commands(block)
        last = None
        for n, command in enumerate(commands):
            if command.line == 'echo $?':
                assert last is not None, f'{where}: echo $? without a command'
                assert [str(last.returncode)] == command.output, (
                    f'{where}: exit status {last.returncode}, the page says {command.output}')
                continue
            argv = shlex.split(self.ported(command.line))
            if argv[0] in DCMTK_TOOLS:
                printed = self.run_dcmtk(argv, where)
                last = None
                for shown in command.output:
                    shown = self.ported(shown)
                    assert shown_in(shown, printed), (
                        f'{where}: {command.line} should print {shown!r}; it printed:\n'
                        f'{printed}')
                continue
            assert argv[:3] == ['python', '-m', 'pynetdicom2'], (
                f'{where}: the test runs only "python -m pynetdicom2 ..." and DCMTK '
                f'{DCMTK_TOOLS} commands: {argv}')
            argv = [sys.executable, *argv[1:]]
            if argv[3:4] and argv[3] in SERVER_TOOLS and '--reindex' not in argv:
                printed = self.start_server(argv + ['--bind', '127.0.0.1'], where)
            else:
                last = run_tool(argv, timeout=60)
                printed = last.stdout + last.stderr
                checked = n + 1 < len(commands) and commands[n + 1].line == 'echo $?'
                assert last.returncode == 0 or checked, (
                    f'{where}: {command.line} exited with {last.returncode}:\n{printed}')
            for shown in command.output:
                shown = self.ported(shown)
                assert shown_in(shown, printed), (
                    f'{where}: {command.line} should print {shown!r}; it printed:\n{printed}')

    def run_dcmtk(self, argv: List[str], where: str) -> str:
        """Run a DCMTK tool (a server in the background, until ``close``); its output."""
        argv = [dcmtk(argv[0]), *argv[1:]]
        if os.path.basename(argv[0]) not in DCMTK_SERVERS:
            result = run_tool(argv, timeout=60)
            printed = result.stdout + result.stderr
            assert result.returncode == 0, f'{where}: {argv} exited with {result.returncode}:\n{printed}'
            return printed
        logs = pathlib.Path(os.getcwd()) / f'.server{len(self.servers)}.out'
        with open(logs, 'wb') as out:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        CHILDREN.append(proc)
        self.servers.append(proc)
        wait_listening(int(argv[-1]), 20, proc=proc)
        return logs.read_text(errors='replace')

    def start_server(self, argv: List[str], where: str) -> str:
        """Start a server tool; wait (bounded) for its "listening on" line."""
        logs = pathlib.Path(os.getcwd()) / f'.server{len(self.servers)}.out'
        with open(logs, 'wb') as out:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        CHILDREN.append(proc)
        self.servers.append(proc)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            printed = logs.read_text(errors='replace')
            if 'listening on' in printed:
                return printed.replace('127.0.0.1:', '*:')  # as without --bind
            if proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f'{where}: {argv} did not start:\n{logs.read_text()}')

    def close(self) -> None:
        for proc in self.servers:
            stop_process(proc)


def server_commands(path: pathlib.Path, tools=('qrscp',)) -> List[str]:
    """The page's console commands that start one of ``tools`` (ours or DCMTK's)."""
    def tool(line: str) -> str:
        words = line.split()
        return words[0] if words[:1] != ['python'] else ''.join(words[3:4])
    return [c.line for b in page_blocks(path) if b.language == 'console'
            for c in console_commands(b) if tool(c.line) in tools]


#: The archive the tutorial tells its reader to start: pages that talk to port 11112
#: without starting a server of their own get it too.
PACS_COMMAND = server_commands(DOCS / 'tutorial.rst')[0]


@pytest.fixture
def scratch(tmp_path, monkeypatch) -> pathlib.Path:
    """The folder the pages run in: ``ct.dcm`` (one study) and ``images/`` (another
    study of the same patient, three images)."""
    folder = tmp_path / 'scratch'
    folder.mkdir()
    make_ct_file(folder / 'ct.dcm')
    make_series(folder / 'images', 3)
    monkeypatch.chdir(folder)
    return folder


def _instances(folder: pathlib.Path) -> Dict[str, Dataset]:
    return {str(ds.SOPInstanceUID): ds for ds in
            (pydicom.dcmread(p) for p in folder.rglob('*.dcm'))}


def _check_tutorial(run: PageRun, folder: pathlib.Path) -> None:
    ns = run.namespace
    ct = pydicom.dcmread(folder / 'ct.dcm')
    images = [pydicom.dcmread(p) for p in sorted((folder / 'images').glob('*.dcm'))]
    # Step 2 stored ct.dcm and the images in the archive.
    archived = _instances(folder / 'pacs')
    assert {str(ds.SOPInstanceUID) for ds in [ct, *images]} <= set(archived)
    # Step 3: one data set kept, the nameless one refused; StorageAE wrote a file.
    assert [str(ds.SOPInstanceUID) for ds in ns['scp'].received] == [ct.SOPInstanceUID]
    assert (folder / 'incoming' / f'{ct.SOPInstanceUID}.dcm').is_file()
    # Step 4: two studies found; ct.dcm's study retrieved by C-GET and moved by C-MOVE.
    assert len(ns['studies']) == 2
    for where in ('retrieved', 'moved'):
        kept = _instances(folder / where)
        assert list(kept) == [ct.SOPInstanceUID], where
        assert kept[ct.SOPInstanceUID].PixelData == ct.PixelData, where


def _check_storage(run: PageRun, folder: pathlib.Path) -> None:
    uid = pydicom.dcmread(folder / 'ct.dcm').SOPInstanceUID
    assert (folder / 'archive2' / f'{uid}.dcm').is_file()
    assert [p.name for p in folder.glob('archive*/.tmp-*')] == []   # no partial files left


def _check_cli(run: PageRun, folder: pathlib.Path) -> None:
    sent = _instances(folder / 'images')
    sent[str(pydicom.dcmread(folder / 'ct.dcm').SOPInstanceUID)] = None
    for where in ('pacs', 'retrieved', 'moved'):
        assert set(_instances(folder / where)) == set(sent), where


PAGE_CHECKS = {
    'tutorial.rst': _check_tutorial,
    'howto/storage.rst': _check_storage,
    'cli.rst': _check_cli,
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize('page', PAGES, ids=lambda p: str(p.relative_to(DOCS)))
def test_every_code_block_of_the_page_runs(page, scratch, request, monkeypatch):
    name = str(page.relative_to(DOCS))
    if name in PYDICOM_3_PAGES and int(pydicom.__version__.split('.')[0]) < 3:
        pytest.skip(f'{name} converts compressed pixel data, which needs pydicom 3 '
                    '(the page says so)')
    if name in TLS_PAGES:
        for pem in request.getfixturevalue('pki').iterdir():
            shutil.copy(pem, scratch / pem.name)
    if name in MAKE_THEIR_OWN_FILES:
        (scratch / 'ct.dcm').unlink()
        shutil.rmtree(scratch / 'images')
    for tool in DCMTK_PAGES.get(name, ()):
        folder = os.path.dirname(dcmtk(tool))     # skips (fails on CI) without DCMTK
        monkeypatch.setenv('PATH', folder + os.pathsep + os.environ.get('PATH', ''))
    ports = {placeholder: free_port() for placeholder in PORTS_IN_DOCS}
    run = PageRun(name, ports)
    blocks = page_blocks(page)
    before = _ae_threads()
    loggers = [logging.getLogger(), logging.getLogger('pynetdicom2')]
    logging_before = [(list(logger.handlers), logger.level) for logger in loggers]
    try:
        servers = server_commands(page, SERVER_TOOLS + DCMTK_SERVERS)
        if PACS_PORT_IN_DOCS in page.read_text() and not any(
                PACS_PORT_IN_DOCS in line.split() for line in servers):
            run.run(CodeBlock(name, 0, 'console', f'$ {PACS_COMMAND}\n'))
        for block in blocks:
            run.run(block)
    finally:
        run.close()
        for logger, (handlers, level) in zip(loggers, logging_before):
            for handler in set(logger.handlers) - set(handlers):   # basicConfig's ...
                logger.removeHandler(handler)
                handler.close()
            logger.setLevel(level)
    # Every server a page starts in this process, it stops.
    deadline = time.monotonic() + 5
    while _ae_threads() - before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _ae_threads() - before, f'{name} left servers running'
    check = PAGE_CHECKS.get(name)
    if check is not None:
        check(run, scratch)


def test_every_page_with_code_makes_claims_the_test_checks():
    """Running proves little alone: each page prints claims, or has checks of its own."""
    for page in PAGES:
        name = str(page.relative_to(DOCS))
        claims = [c for b in code_blocks(page) for c in expected_output(b.code)]
        claims += [o for b in page_blocks(page) if b.language == 'console'
                   for c in console_commands(b) for o in c.output]
        assert claims or name in PAGE_CHECKS, f'{name} claims nothing that is checked'


def test_the_tutorial_and_the_cli_page_start_the_same_archive():
    assert server_commands(DOCS / 'cli.rst')[0] == PACS_COMMAND


def test_the_cli_page_lists_every_tool_and_exit_status():
    from pynetdicom2.apps import LEGACY, TOOLS, common
    page = (DOCS / 'cli.rst').read_text()
    for tool in TOOLS:
        assert f'   * - ``{tool}``' in page and f'.. tool-help:: {tool}' in page, tool
    for command in LEGACY:
        assert f'.. tool-help:: {command}' in page, command
    table = page[page.index('code   meaning'):]
    listed = {int(m.group(1)) for m in re.finditer(r'^(\d+)\s{2,}\S', table, re.M)}
    codes = {value for name, value in vars(common).items() if name.startswith('EXIT_')}
    assert listed == codes


# -- the deployment page's service ---------------------------------------------------

def _deployment_files() -> tuple:
    """The deployment page's configuration file and systemd unit, as written there."""
    ini = [b.code for b in page_blocks(DOCS / 'deployment.rst', _ANY_DIRECTIVE)
           if b.language == 'ini']
    return (next(code for code in ini if '[qrscp]' in code),
            next(code for code in ini if '[Service]' in code))


def test_the_deployment_unit_runs_qrscp_with_the_pages_configuration(tmp_path):
    """The unit's command line and the configuration file start the archive as the page
    says (its AE title, port, storage, destinations, --require-called-aet), and SIGTERM
    (systemctl stop) ends it with status 0 within TimeoutStopSec."""
    config, unit = _deployment_files()
    port = free_port()
    state = tmp_path / 'var-lib-pacs'               # what StateDirectory= makes
    state.mkdir()
    config_path = tmp_path / 'qrscp.ini'
    assert 'port = 104' in config and '/var/lib/pacs/storage' in config
    config_path.write_text(config.replace('port = 104', f'port = {port}')
                           .replace('/var/lib/pacs', str(state)))
    exec_start = shlex.split(re.search(r'^ExecStart=(.*)$', unit, re.M).group(1))
    assert exec_start[:4] == ['/opt/pynetdicom2/bin/python', '-m', 'pynetdicom2', 'qrscp']
    argv = [sys.executable] + [str(config_path) if arg == '/etc/pynetdicom2/qrscp.ini' else arg
                               for arg in exec_start[1:]] + ['--bind', '127.0.0.1']
    stop_timeout = int(re.search(r'^TimeoutStopSec=(\d+)$', unit, re.M).group(1))
    log = tmp_path / 'journal'
    with open(log, 'wb') as out:
        proc = subprocess.Popen(argv, cwd=state, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    CHILDREN.append(proc)
    try:
        wait_listening(port, 20, proc=proc)
        archive = dict(aet='PACS', address='127.0.0.1', port=port)
        assert pynetdicom2.verify('CT1', archive).is_success
        with pytest.raises(exceptions.AssociationRejectedError) as rejected:
            pynetdicom2.verify('CT1', dict(archive, aet='NOT_PACS'))
        assert rejected.value.diagnostic == 7                 # --require-called-aet
        proc.terminate()                                      # what systemctl stop sends
        assert proc.wait(stop_timeout) == 0
    finally:
        stop_process(proc)
    journal = log.read_text()
    assert f'PACS listening on 127.0.0.1:{port}; storage {state / "storage"}' in journal
    assert 'move destination VIEWER at 10.1.2.31:104' in journal    # -v, the config's


def test_systemd_finds_nothing_wrong_with_the_deployment_unit(tmp_path):
    analyze = shutil.which('systemd-analyze')
    if analyze is None:
        pytest.skip('systemd-analyze is not installed')
    _, unit = _deployment_files()
    path = tmp_path / 'qrscp.service'
    # The unit names the interpreter of its own environment; this one exists here.
    path.write_text(unit.replace('/opt/pynetdicom2/bin/python', sys.executable))
    result = subprocess.run([analyze, 'verify', str(path)], capture_output=True, text=True,
                            timeout=120)
    about_the_unit = [line for line in (result.stdout + result.stderr).splitlines()
                      if path.name in line]
    assert result.returncode == 0 and not about_the_unit, result.stdout + result.stderr
