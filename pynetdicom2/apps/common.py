"""What every command-line tool shares, under one name: the tools and their tests
import it as ``common``. Each job lives in its own module and is re-exported here
unchanged (the same objects, not copies):

- ``exits``: exit codes, ``ToolError``, library errors in words (``explain``,
  ``execute``);
- ``arguments``: flag value types, the DCMTK-style ``ToolParser`` and the shared flag
  groups;
- ``verbosity``: ``-q/-v/-d/-ll`` and DCMTK-style log lines;
- ``tlsoptions``: the TLS flags and the ``SSLContext`` they ask for;
- ``peer``: the peer of an SCU tool with its user identity;
- ``entities``: the tools' AEs (timeouts by phase, server set-up, serving until a
  signal) and their associations (``service``, ``finish``);
- ``directories``: the storage directory and the files to send;
- ``progress``: the progress bar.
"""

from pynetdicom2.apps.arguments import (
    MAX_AE_TITLE, ToolParser, add_association_arguments, add_network_arguments,
    add_peer_arguments, add_server_arguments, ae_title, association_count, counted,
    did_you_mean, host_port, listen_port, network, new_parser, pdu_length, port_number,
    positive_count, seconds, send_pdu_length)
from pynetdicom2.apps.directories import iter_files, prepare_directory
from pynetdicom2.apps.entities import (
    PhasedTimeouts, configure_server, finish, prepare_client, serve_until_stopped, service)
from pynetdicom2.apps.exits import (
    EXIT_ABORTED, EXIT_CONNECT, EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_LOCAL, EXIT_OK,
    EXIT_REJECTED, EXIT_TIMEOUT, EXIT_USAGE, ToolError, execute, explain)
from pynetdicom2.apps.peer import ToolRemoteAE, describe_peer, remote_ae
from pynetdicom2.apps.progress import Progress, format_duration
from pynetdicom2.apps.tlsoptions import ServerTLS, add_tls_arguments, tls_context
from pynetdicom2.apps.verbosity import LOG_LEVELS, TRACE, configure_logging

__all__ = [
    'EXIT_OK', 'EXIT_FAILURE', 'EXIT_USAGE', 'EXIT_REJECTED', 'EXIT_ABORTED', 'EXIT_TIMEOUT',
    'EXIT_CONNECT', 'EXIT_LOCAL', 'EXIT_INTERRUPTED', 'ToolError', 'explain', 'execute',
    'MAX_AE_TITLE', 'ae_title', 'network', 'port_number', 'seconds', 'pdu_length',
    'counted', 'association_count', 'positive_count', 'send_pdu_length', 'host_port',
    'did_you_mean', 'ToolParser', 'new_parser', 'add_peer_arguments',
    'add_association_arguments', 'add_network_arguments', 'add_server_arguments',
    'listen_port', 'TRACE', 'LOG_LEVELS', 'configure_logging', 'add_tls_arguments',
    'tls_context', 'ServerTLS', 'ToolRemoteAE', 'remote_ae', 'describe_peer',
    'PhasedTimeouts', 'configure_server', 'prepare_client', 'service', 'finish',
    'serve_until_stopped', 'prepare_directory', 'iter_files', 'Progress', 'format_duration',
]
