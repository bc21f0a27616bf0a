"""Offline detection: the settings, and the one hub probe that saves an offline run its retries."""
import socket

import pytest

from dfd_utils import paths


@pytest.fixture
def fresh_probe(monkeypatch):
    monkeypatch.delenv("DFD_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    paths.hub_reachable.cache_clear()
    yield
    paths.hub_reachable.cache_clear()


class _Connection:
    def close(self):
        pass


def test_an_unreachable_hub_means_offline_said_once_probed_once(fresh_probe, monkeypatch, capsys):
    calls = []

    def refuse(address, timeout):
        calls.append(address)
        raise OSError("Name or service not known")

    monkeypatch.setattr(socket, "create_connection", refuse)
    assert paths.offline() and paths.offline()
    assert calls == [paths.HUB_ADDRESS]
    assert capsys.readouterr().out.count("unreachable") == 1


def test_a_reachable_hub_means_online(fresh_probe, monkeypatch):
    monkeypatch.setattr(socket, "create_connection", lambda address, timeout: _Connection())
    assert not paths.offline() and not paths.offline_by_setting()


@pytest.mark.parametrize("variable", ["DFD_OFFLINE", "HF_HUB_OFFLINE"])
def test_the_setting_wins_without_any_probe(fresh_probe, monkeypatch, variable):
    def no_probe(address, timeout):
        raise AssertionError("probed although set offline")

    monkeypatch.setattr(socket, "create_connection", no_probe)
    monkeypatch.setenv(variable, "1")
    assert paths.offline() and paths.offline_by_setting()
