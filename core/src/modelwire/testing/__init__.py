"""Test tools for modelwire and its plugins: a scripted HTTP server and the conformance suite."""

from modelwire.testing.fakeserver import FakeServer, RawEvent, Reply, Request

__all__ = ["FakeServer", "RawEvent", "Reply", "Request"]
