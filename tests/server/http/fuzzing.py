"""Shared pieces of the server's Hypothesis fuzz tests: one fixed profile (derandomized, so every run sends
the same inputs; no deadline, as real HTTP is timed by the machine) and a strategy for any JSON value."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st


def fuzz(max_examples: int) -> settings:
    return settings(
        derandomize=True,
        max_examples=max_examples,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


def json_values(max_leaves: int = 10) -> st.SearchStrategy[Any]:
    """Any JSON value: huge integers, floats, lone surrogates in strings, nested lists and objects."""
    return st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
        lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
        max_leaves=max_leaves,
    )


def assert_no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    broken = [record for record in caplog.records if record.levelno >= logging.ERROR or record.exc_info]
    assert not broken, broken[0].getMessage()
