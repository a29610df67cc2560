#!/usr/bin/env bash
# Install every test dependency on a fresh machine, run the whole suite (or the pytest
# arguments given), then build the documentation. Exits non-zero when either fails;
# a failing test run does not skip the docs build.
#
# - our package with its test, docs and codecs extras, into the active Python environment;
# - DCMTK from Debian when its tools are missing and we are root;
# - the peers, each in a virtual environment of its own under .peers/ (git-ignored),
#   reused when already there: pynetdicom 3.0.4 (Python 3.10+), whose console scripts
#   (echoscu, storescu ...) would otherwise shadow DCMTK's in your environment, and the
#   released pynetdicom2 0.9.8 for tests/compat, which our test process never imports.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

"$PYTHON" -m pip install -q --disable-pip-version-check -e ".[test,docs,codecs]"
if [ ! -x /usr/bin/storescp ]; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dcmtk
    else
        echo "DCMTK missing: run 'apt-get install -y dcmtk' as root" >&2
    fi
fi

# The interpreter the active environment was made from: a peer environment made from
# it does not depend on the active one (Python 3.9's venv would link to the latter).
BASE_PYTHON=$("$PYTHON" -c 'import os, sys
base = os.path.join(sys.base_prefix, "bin", "python%d.%d" % sys.version_info[:2])
print(base if os.access(base, os.X_OK) else sys.executable)')

# peer_venv DIR REQUIREMENT: a virtual environment at DIR holding exactly REQUIREMENT
# (name==version); made, or remade, only when it does not have that version. The
# check runs isolated (-I), so our checkout's own metadata in the current directory
# cannot answer for it.
peer_venv() {
    local dir=$1 requirement=$2
    local name=${requirement%%==*} version=${requirement##*==}
    if "$dir/bin/python" -I -c "import importlib.metadata as m, sys
sys.exit(m.version('$name') != '$version')" 2>/dev/null; then
        return 0
    fi
    echo "making $dir ($requirement)" >&2
    "$BASE_PYTHON" -m venv --clear "$dir"
    "$dir/bin/python" -m pip install -q --disable-pip-version-check "$requirement"
}

# PYNETDICOM2_098_PYTHON / PYNETDICOM_PYTHON, when set, name interpreters to use instead.
if [ -z "${PYNETDICOM2_098_PYTHON:-}" ]; then
    peer_venv .peers/pynetdicom2-098 pynetdicom2==0.9.8
    export PYNETDICOM2_098_PYTHON=$PWD/.peers/pynetdicom2-098/bin/python
fi
if [ -z "${PYNETDICOM_PYTHON:-}" ]; then
    if "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
        peer_venv .peers/pynetdicom pynetdicom==3.0.4
    else
        echo "pynetdicom 3 needs Python 3.10+: its interoperability tests will skip" >&2
    fi
    export PYNETDICOM_PYTHON=$PWD/.peers/pynetdicom/bin/python
fi

status=0
"$PYTHON" -m pytest -q -p no:cacheprovider "$@" || status=$?
"$PYTHON" -m sphinx -W -q -b html docs docs/_build/html || status=$?
exit "$status"
