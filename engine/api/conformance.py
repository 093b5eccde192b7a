"""Both engine implementations satisfy `EngineAPI`: mypy checks these assignments (and
tests/test_api_protocol.py checks the same at run time), so a method one of them lacks or
declares differently fails the build, not the console."""

from __future__ import annotations

from engine.api.local import LocalEngine
from engine.api.protocol import EngineAPI
from engine.api.remote import RemoteEngine


def as_engine_api(engine: LocalEngine | RemoteEngine) -> EngineAPI:
    """`engine` as the protocol (the assignment is the check)."""
    api: EngineAPI = engine
    return api


def _local_conforms(engine: LocalEngine) -> EngineAPI:
    return engine


def _remote_conforms(engine: RemoteEngine) -> EngineAPI:
    return engine
