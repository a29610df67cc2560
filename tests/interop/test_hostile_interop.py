"""After each hostile scenario, DCMTK's echoscu must still get its echo from our AE.

The scenarios and what the raw peer must receive are those of tests/test_hostile.py;
here a real peer, as a separate process, checks that the AE keeps serving and leaks
neither threads nor file descriptors.
"""

from __future__ import annotations

import logging

import pytest

from tests.peers import dcmtk, describe, run_tool
from tests.test_hostile import (
    SCENARIOS, Baseline, files_left, health_checks, make_storage_ae, silent_flood_then,
    unexpected_errors)


def echoscu(port: int):
    return run_tool([dcmtk('echoscu'), '-to', '5', '-ta', '5', '-td', '5',
                     '-aet', 'DCMTK_SCU', '-aec', 'STORE_SCP', '127.0.0.1', str(port)])


@pytest.mark.parametrize('name', sorted(SCENARIOS) + ['health_checks'])
def test_scenario_then_dcmtk_echoscu(name, store_dir, caplog):
    caplog.set_level(logging.INFO, logger='pynetdicom2')
    scenario = health_checks if name == 'health_checks' else SCENARIOS[name]
    with make_storage_ae(store_dir) as ae:
        port = ae.local_ae.port
        first = echoscu(port)
        assert first.returncode == 0, describe(first)
        baseline = Baseline()
        scenario(port, store_dir)
        assert baseline.settled(), baseline.describe()
        result = echoscu(port)
        assert result.returncode == 0, describe(result)
        assert baseline.settled(), baseline.describe()
    assert files_left(store_dir) == []
    assert unexpected_errors(caplog) == []


def test_dcmtk_echoscu_among_more_silent_sockets_than_may_wait(store_dir, caplog):
    # 20 connections that say nothing, room for 8 waiting ones, ARTIM 1 s: DCMTK's
    # echoscu still gets its association and echo; the silent ones are all closed.
    result = silent_flood_then(store_dir, caplog, echoscu)
    assert result.returncode == 0, describe(result)
    assert unexpected_errors(caplog) == []
