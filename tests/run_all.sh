#!/usr/bin/env bash
# Install every test dependency on a fresh machine, then run the whole suite.
# DCMTK comes from Debian when its tools are missing and we are root.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m pip install -q --disable-pip-version-check -e ".[test,docs]"
if [ ! -x /usr/bin/storescp ]; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dcmtk
    else
        echo "DCMTK missing: run 'apt-get install -y dcmtk' as root" >&2
    fi
fi
python3 -m pytest -q -p no:cacheprovider "$@"
python3 -m sphinx -W -q -b html docs docs/_build/html
