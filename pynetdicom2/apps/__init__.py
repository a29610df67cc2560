"""Command-line tools built on pynetdicom2's public API, one module per tool.

Design: ONE entry point, ``pynetdicom2``, with a subcommand per tool, so that
``pynetdicom2 echoscu ...`` (the console script) and ``python -m pynetdicom2 echoscu
...`` are the same program. The tools are the DCMTK look-alikes ``echoscu``,
``storescu``, ``storescp``, ``findscu``, ``movescu``, ``getscu`` and the archive
``qrscp`` (storage, query/retrieve and storage commitment SCP with an SQLite index).
Their flags follow DCMTK's where DCMTK has one (``-aet``, ``-aec``, ``-aem``, ``-od``,
``-k``, ``-P/-S/-W/-O``, ``-to/-ta/-td``, ``-pdu``, ``-q/-v/-d``, ``+tls KEY CERT``,
``+cf CA``, ``-rc/-vc/-ic``, ``+xa``, ``-pm``). The subcommands ``verify``, ``find``,
``store`` and ``move`` of pynetdicom2 0.9.8 are kept, with their long options and
output, as aliases (``pynetdicom2.apps.legacy``).

Exit codes (``common.EXIT_*``): 0 done; 1 a DICOM operation failed; 2 bad command
line; 3 association rejected (the reason printed in words); 4 association aborted or
broken; 5 a timeout (the message names the wait: connect ``-to``, association ``-ta``
or DIMSE ``-td``); 6 no connection; 130 interrupted (storescu says how many instances
it sent). A bad command line is one line naming the mistake (an unknown option or tool
with the nearest known one, a file that cannot be read, a bad ``-k`` key), printed
before anything is sent (``common.ToolParser``).
"""

from __future__ import annotations

from typing import Dict, Tuple

#: Subcommand -> (module, one-line description).
TOOLS: Dict[str, Tuple[str, str]] = {
    'echoscu': ('pynetdicom2.apps.echoscu', 'verify a peer (C-ECHO)'),
    'storescu': ('pynetdicom2.apps.storescu', 'send files and directories (C-STORE)'),
    'storescp': ('pynetdicom2.apps.storescp', 'receive instances into a directory'),
    'findscu': ('pynetdicom2.apps.findscu', 'query a peer (C-FIND)'),
    'movescu': ('pynetdicom2.apps.movescu', 'have a peer send instances somewhere (C-MOVE)'),
    'getscu': ('pynetdicom2.apps.getscu', 'retrieve instances into a directory (C-GET)'),
    'qrscp': ('pynetdicom2.apps.qrscp',
              'run an archive: storage, query/retrieve, storage commitment'),
}

#: The subcommands of pynetdicom2 0.9.8, kept with their own options.
LEGACY = {
    'verify': 'C-ECHO (0.9.8 options: --aet --address --port ...)',
    'find': 'C-FIND (0.9.8 options: --root --level --attr ...)',
    'store': 'C-STORE a file or folder (0.9.8 options: --file_or_dir ...)',
    'move': 'C-MOVE (0.9.8 options: --dest_aet --local_port --storage_dir ...)',
}
