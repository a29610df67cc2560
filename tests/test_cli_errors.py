"""The tools' answers to a user's mistakes: a typo in an option, a tool or a key, a file
that is not there, a value unfit for its VR, Ctrl-C in the middle of a transfer, a
retrieve that matches nothing. Each test runs the tool as a user would (``python -m
pynetdicom2 ...``) and checks the exit code and the one line shown (docs/cli.rst)."""

from __future__ import annotations

import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import threading

import pydicom
import pytest
from pydicom.dataset import Dataset

from pynetdicom2 import ae as ae_module
from pynetdicom2 import sopclass, statuses, uids
from pynetdicom2.apps import common, findscu, keys, storescu
from tests import peers
from tests.peers import describe, free_port, make_ct_file
from tests.test_apps import our_server, run_app

WAIT = 30  # seconds; a bound on every wait, never a timing assertion


def error_line(tool: str, message: str) -> str:
    return f'pynetdicom2 {tool}: error: {message}\n'


# -- typos in options and tools -----------------------------------------------------------

def test_an_unknown_option_is_named_before_the_positional_arguments():
    # "-aex" made argparse shift QRSCP into "peer" and "localhost" into "port".
    result = run_app('echoscu', '-aex', 'QRSCP', 'localhost', '11112')
    assert result.returncode == common.EXIT_USAGE, describe(result)
    assert result.stderr == error_line(
        'echoscu', "unknown option '-aex'; did you mean -aec or -aet?")
    assert result.stdout == ''


def test_a_mistyped_plus_flag_is_unknown_not_an_ignored_argument():
    result = run_app('storescu', '+rn')
    assert result.returncode == common.EXIT_USAGE, describe(result)
    assert result.stderr == error_line('storescu', "unknown option '+rn'; did you mean +r?")


def test_unknown_long_option_with_a_value_and_one_without_a_near_match():
    near = run_app('findscu', '--keys=PatientID=1', '127.0.0.1', '104')
    assert near.returncode == common.EXIT_USAGE, describe(near)
    assert near.stderr == error_line('findscu', "unknown option '--keys'; did you mean --key?")
    far = run_app('echoscu', '--frobnicate', '127.0.0.1', '104')
    assert far.stderr == error_line('echoscu', "unknown option '--frobnicate'")


def test_what_argparse_accepts_is_still_accepted():
    parser = findscu.build_parser()
    args = parser.parse_args(['-vd', '-kPatientID=7', '--key=PatientName', '-aet', 'ME',
                              '127.0.0.1', '104'])
    assert args.verbose and args.debug and args.calling_aet == 'ME'
    assert args.keys == ['PatientID=7', 'PatientName']
    # After "--", and for negative numbers, nothing is an option.
    assert parser.unknown_options(['-S', '-1', '--', '-zz']) == []
    assert parser.unknown_options(['-S', '-zz', '+P', '-kx', '-vz']) == ['-zz', '+P', '-vz']


def test_missing_arguments_show_the_synopsis_in_the_same_line():
    result = run_app('storescu', '127.0.0.1')
    assert result.returncode == common.EXIT_USAGE, describe(result)
    assert result.stderr == error_line(
        'storescu', 'the following arguments are required: port, file-or-dir (usage: '
        'pynetdicom2 storescu [options] peer port file-or-dir [file-or-dir ...])')


def test_an_unknown_tool_gets_the_nearest_name():
    result = run_app('storscu')
    assert result.returncode == common.EXIT_USAGE, describe(result)
    assert result.stderr == "pynetdicom2: error: unknown tool 'storscu'; did you mean storescu?\n"
    nothing_near = run_app('xyzzy')
    assert nothing_near.returncode == common.EXIT_USAGE
    assert nothing_near.stderr.startswith(
        "pynetdicom2: error: unknown tool 'xyzzy'; the tools are echoscu, storescu,")


def test_no_tool_is_a_usage_error_listing_the_tools():
    result = run_app()
    assert result.returncode == common.EXIT_USAGE, describe(result)
    assert result.stdout == ''
    assert result.stderr.startswith('usage: pynetdicom2 [--version] <tool> [options]')
    for tool in ('echoscu', 'storescu', 'qrscp', 'verify', 'move'):
        assert f'\n  {tool} ' in result.stderr


# -- storescu: files that cannot be read, Ctrl-C ---------------------------------------

def test_a_named_file_that_is_not_there_stops_storescu_before_it_connects(tmp_path):
    good = make_ct_file(tmp_path / 'ct.dcm', rows=8, cols=8)
    # A closed port: had storescu tried to send, it would exit 6 (no connection).
    result = run_app('storescu', '127.0.0.1', free_port(), good, 'does_not_exist')
    assert result.returncode == common.EXIT_USAGE, describe(result)
    assert result.stderr == error_line(
        'storescu', 'cannot read does_not_exist: No such file or directory')
    assert result.stdout == ''
    with pytest.raises(common.ToolError,
                       match=r'cannot read \S*a: No such file or directory \(and 1 more\)$'):
        storescu.check_paths([str(tmp_path / 'a'), str(tmp_path / 'b'), str(good)])


class GatedStore(ae_module.AE):
    """Answers C-STOREs with Success, but holds the response to the third until
    ``release`` is set (``held`` tells the test it has arrived)."""

    def __init__(self):
        super().__init__('STORE_SCP', 0, bind_address='127.0.0.1')
        self.add_scp(sopclass.storage_scp)
        self.dcm_timeout = WAIT
        self.count = 0
        self.held = threading.Event()
        self.release = threading.Event()

    def on_receive_store(self, context, ds):
        self.count += 1
        if self.count == 3:
            self.held.set()
            self.release.wait(WAIT)
        return statuses.SUCCESS


def test_ctrl_c_in_storescu_says_how_many_files_were_sent(tmp_path):
    for n in range(5):
        make_ct_file(tmp_path / f'ct{n}.dcm', f'1.2.826.0.1.3680043.8.498.19.{n + 1}',
                     rows=8, cols=8)
    server = GatedStore()
    with server:
        proc = subprocess.Popen(
            [sys.executable, '-m', 'pynetdicom2', 'storescu', '127.0.0.1',
             str(server.local_ae.port), str(tmp_path)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, start_new_session=True)
        peers.CHILDREN.append(proc)
        try:
            assert server.held.wait(WAIT), 'the third C-STORE never arrived'
            proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
            out, err = proc.communicate(timeout=WAIT)
        finally:
            server.release.set()
            peers.stop_process(proc)
    assert proc.returncode == common.EXIT_INTERRUPTED, (out, err)
    assert err == 'pynetdicom2 storescu: interrupted: sent 2 of 5 instances\n'
    assert out == ''


# -- -k keys ------------------------------------------------------------------------------

def test_a_key_with_an_unclosed_parenthesis_is_a_bad_key():
    # It used to become PatientName=x silently.
    result = run_app('findscu', '-S', '-k', '(0010,0010=x', '127.0.0.1', free_port())
    assert result.returncode == common.EXIT_USAGE, describe(result)
    assert result.stderr == error_line(
        'findscu', "bad key '(0010,0010=x': '(0010,0010' is not a tag; write (gggg,eeee)")
    with pytest.raises(keys.BadKey, match=r"did you mean PatientName\?"):
        keys.build_identifier(['patientname=x'])


class RecordingFind(ae_module.AE):
    """A C-FIND SCP that keeps each identifier it receives and matches nothing."""

    def __init__(self):
        super().__init__('FIND_SCP', 0, bind_address='127.0.0.1')
        self.add_scp(sopclass.qr_find_scp)
        self.dcm_timeout = WAIT
        self.received = []

    def on_receive_find(self, context, ds):
        self.received.append(ds)
        return iter(())


def test_a_value_unfit_for_its_vr_is_sent_after_one_warning_line():
    with RecordingFind() as server:
        result = run_app('findscu', '-S', '-k', 'QueryRetrieveLevel=STUDY',
                         '-k', 'StudyDate=notadate', '-k', 'Modality=C*', '-k',
                         'StudyTime=0800-1000', '127.0.0.1', server.local_ae.port)
    assert result.returncode == 0, describe(result)
    # One line in our words: no pydicom UserWarning, no site-packages path. The
    # wildcard and the range are query syntax (PS3.4 C.2.2.2), not mistakes.
    assert result.stderr == ("W: key 'StudyDate=notadate': 'notadate' is not a valid DA "
                             "value; sent as given\n")
    [identifier] = server.received
    assert identifier.StudyDate == 'notadate'
    assert identifier.StudyTime == '0800-1000'


# -- retrieves that match nothing ----------------------------------------------------------

class RetrieveServer(ae_module.AE):
    """C-GET and C-MOVE SCP: ``matches`` are the data sets every retrieve returns."""

    def __init__(self, matches):
        super().__init__('QR_SCP', 0, bind_address='127.0.0.1')
        self.add_scp(sopclass.qr_get_scp)
        self.add_scp(sopclass.qr_move_scp)
        self.add_scu(sopclass.storage_scu, [uids.CT_IMAGE_STORAGE])
        self.dcm_timeout = WAIT
        self.matches = matches

    def on_receive_get(self, context, ds):
        return len(self.matches), iter(self.matches)

    def on_receive_move(self, context, ds, destination):
        return ({'aet': destination, 'address': '127.0.0.1', 'port': free_port()},
                len(self.matches), iter(self.matches))


def test_a_retrieve_that_matches_nothing_says_so(tmp_path):
    query = ['-S', '-k', 'QueryRetrieveLevel=STUDY', '-k', 'StudyInstanceUID=1.2.3.999']
    hint = 'W: no instance matched QueryRetrieveLevel=STUDY StudyInstanceUID=1.2.3.999\n'
    with RetrieveServer([]) as server:
        got = run_app('getscu', *query, '-od', tmp_path / 'got', '127.0.0.1',
                      server.local_ae.port)
        moved = run_app('movescu', *query, '-aem', 'ELSEWHERE', '127.0.0.1',
                        server.local_ae.port)
    assert got.returncode == 0, describe(got)     # Success is still success
    assert 'received 0 instance(s)' in got.stdout
    assert got.stderr == hint
    assert moved.returncode == 0, describe(moved)
    assert 'completed 0, failed 0, warning 0' in moved.stdout
    assert moved.stderr == hint


def test_a_retrieve_that_found_something_gives_no_hint(tmp_path):
    ct = pydicom.dcmread(make_ct_file(tmp_path / 'ct.dcm', rows=8, cols=8))
    with RetrieveServer([Dataset(ct)]) as server:
        got = run_app('getscu', '-S', '-k', 'QueryRetrieveLevel=STUDY',
                      '-k', f'StudyInstanceUID={ct.StudyInstanceUID}', '-od', tmp_path / 'got',
                      '127.0.0.1', server.local_ae.port)
    assert got.returncode == 0, describe(got)
    assert 'received 1 instance(s)' in got.stdout
    assert got.stderr == ''


# -- a C-MOVE destination that is configured but down -------------------------------------

def test_a_move_to_a_configured_destination_that_is_down_is_a702_not_unknown(tmp_path):
    ct = make_ct_file(tmp_path / 'ct.dcm', rows=8, cols=8)
    study = pydicom.dcmread(ct).StudyInstanceUID
    down = free_port()  # nothing listens there
    with our_server('qrscp', '--storage', tmp_path / 'pacs', '-aet', 'ARCHIVE',
                    '--move-dest', f'STORESCP=127.0.0.1:{down}') as (proc, port):
        stored = run_app('storescu', '-aec', 'ARCHIVE', '127.0.0.1', port, ct)
        assert stored.returncode == 0, describe(stored)
        moved = run_app('movescu', '-S', '-aec', 'ARCHIVE', '-aem', 'STORESCP',
                        '-k', 'QueryRetrieveLevel=STUDY', '-k', f'StudyInstanceUID={study}',
                        '127.0.0.1', port)
        log = pathlib.Path(proc.logdir, 'stderr').read_text()
    assert moved.returncode == common.EXIT_FAILURE, describe(moved)
    # The status says the sub-operations could not be performed (the destination is
    # known: 0xA801 would say it is not), the comment keeps the address whole.
    assert moved.stdout == (
        'C-MOVE to STORESCP: (0xA702) Failure: Out of resources - unable to perform '
        f'sub-operations (cannot reach move destination STORESCP at 127.0.0.1:{down}); '
        'completed 0, failed 1, warning 0\n')
    # The whole reason is in the archive's log, naming who asked and where to.
    assert ('W: C-MOVE from MOVESCU@127.0.0.1:' in log and 'cannot associate with move '
            f'destination STORESCP at 127.0.0.1:{down}: cannot connect' in log), log


# -- setup mistakes: the storage directory, the port ---------------------------------------

def test_qrscp_on_a_storage_it_cannot_use_says_so_in_one_line(tmp_path):
    a_file = tmp_path / 'a_file'
    a_file.write_text('x')
    cases = [
        (a_file, f'{a_file}: it is a file, not a directory'),
        (a_file / 'pacs', f'{a_file / "pacs"}: {a_file} is a file, not a directory'),
    ]
    for storage, reason in cases:
        result = run_app('qrscp', '--storage', storage, '--bind', '127.0.0.1', '0')
        assert result.returncode == common.EXIT_LOCAL, describe(result)
        assert result.stderr == error_line('qrscp', f'cannot use storage directory {reason}')
        assert result.stdout == ''


@pytest.mark.parametrize('tool, flag', [('qrscp', '--storage'), ('storescp', '-od')])
def test_a_directory_where_no_file_can_be_created_stops_the_server(tool, flag):
    # /proc and /sys refuse new files whoever asks, root included (tests run as root
    # here, for whom permission bits say nothing): the same check as on a read-only
    # mount, where the server used to start and answer 0xA700 to every image.
    for storage in ('/proc', '/sys'):
        result = run_app(tool, flag, storage, '--bind', '127.0.0.1', '0')
        assert result.returncode == common.EXIT_LOCAL, describe(result)
        assert re.fullmatch(
            rf'pynetdicom2 {tool}: error: cannot use storage directory {storage}: cannot '
            r'create files in it \((No such file or directory|Permission denied|'
            r'Read-only file system)\)\n', result.stderr), result.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason='root writes in a read-only directory')
def test_a_read_only_directory_stops_storescp(tmp_path):
    locked = tmp_path / 'locked'
    locked.mkdir(mode=0o555)
    result = run_app('storescp', '-od', locked, '--bind', '127.0.0.1', '0')
    assert result.returncode == common.EXIT_LOCAL, describe(result)
    assert result.stderr == error_line(
        'storescp', f'cannot use storage directory {locked}: cannot create files in it '
        '(Permission denied)')


def test_storescp_output_directory_that_is_a_file(tmp_path):
    # It used to say "cannot listen: [Errno 17] File exists", exit 6 (no connection).
    a_file = tmp_path / 'passwd'
    a_file.write_text('x')
    result = run_app('storescp', '-od', a_file, '--bind', '127.0.0.1', '0')
    assert result.returncode == common.EXIT_LOCAL, describe(result)
    assert result.stderr == error_line(
        'storescp', f'cannot use storage directory {a_file}: it is a file, not a directory')


@pytest.mark.parametrize('tool, flag', [('qrscp', '--storage'), ('storescp', '-od')])
def test_a_port_in_use_leaves_nothing_behind(tmp_path, tool, flag):
    storage = tmp_path / 'pacs'
    with socket.socket() as taken:
        taken.bind(('127.0.0.1', 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = run_app(tool, flag, storage, '--bind', '127.0.0.1', port)
    assert result.returncode == common.EXIT_LOCAL, describe(result)
    assert result.stderr == error_line(tool, f'cannot listen on port {port}: Address already '
                                       'in use')
    assert not storage.exists()  # no directory, no index.sqlite, no lock file


def test_the_readme_storage_is_ignored_by_git():
    # The README starts qrscp with --storage ./pacs in the checkout.
    root = pathlib.Path(__file__).resolve().parent.parent
    if not (root / '.git').exists():
        pytest.skip('not a git checkout')
    result = subprocess.run(['git', 'check-ignore', '-q', 'pacs/index.sqlite'], cwd=root,
                            stdin=subprocess.DEVNULL, capture_output=True, timeout=WAIT)
    assert result.returncode == 0, result
