"""engine.api's typed interface: both engines satisfy EngineAPI, and Capabilities is what a
front end reads about an engine instead of probing the engine object."""

from __future__ import annotations

from engine.api.local import LocalEngine
from engine.api.protocol import FEATURES, Capabilities, EngineAPI, capabilities_of
from engine.api.remote import RemoteEngine


def test_local_engine_satisfies_the_protocol() -> None:
    assert isinstance(LocalEngine("alice"), EngineAPI)


async def test_remote_engine_satisfies_the_protocol() -> None:
    remote = RemoteEngine("http://127.0.0.1:9", "token")  # never connects: only its shape is checked
    try:
        assert isinstance(remote, EngineAPI)
    finally:
        await remote.aclose()


async def test_a_local_engines_capabilities_allow_everything_here() -> None:
    caps = Capabilities.from_record(await LocalEngine("alice").capabilities(), remote=LocalEngine.remote)
    assert caps == Capabilities(name="alice", role="local", can_write=True, remote=False, features=dict.fromkeys(FEATURES, True))


def test_a_viewers_capabilities_may_not_write() -> None:
    record = capabilities_of("viewer-token", "viewer", may_write=False, features=dict.fromkeys(FEATURES, True))
    assert Capabilities.from_record(record, remote=True).can_write is False


def test_a_feature_the_engine_does_not_serve_is_missing() -> None:
    record = capabilities_of("old", "responder", may_write=True, features={"postmortems": True})
    assert Capabilities.from_record(record, remote=True).has("analytics") is False


def test_capabilities_not_yet_known_hide_nothing() -> None:
    assert all(Capabilities().has(feature) for feature in FEATURES)


def test_a_remote_engine_serves_on_call_when_it_says_so() -> None:
    assert Capabilities(remote=RemoteEngine.remote, features={"oncall": True}).oncall is True
    assert Capabilities(remote=RemoteEngine.remote, features={"analytics": True}).oncall is False  # an older engine


def test_an_engine_in_this_process_serves_on_call() -> None:
    assert Capabilities(remote=LocalEngine.remote).oncall is True
