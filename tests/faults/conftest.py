"""Fault-injection suite: every test is one fault case; outcomes are recorded.

Each test's docstring says the fault and the expected behaviour; ``seen(...)`` records what the
user sees (the one-line error or warning). With ``ECGSSL_FAULT_REPORT=path`` set, the session
writes every case with its outcome to that JSON file (``benchmarks/fault_cases.py`` does this
and prints the table).
"""

from __future__ import annotations

import json
import os

import pytest

_RESULTS: list[dict] = []


@pytest.fixture
def seen(record_property):
    """``seen(message, **facts)``: record what the user saw for this case (one line)."""

    def record(message: str, **facts) -> str:
        record_property("seen", " ".join(str(message).split()))
        for key, value in facts.items():
            record_property(key, value)
        return message

    return record


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        doc = (item.function.__doc__ or "").strip().splitlines()
        _RESULTS.append({
            "case": item.nodeid.split("tests/faults/")[-1],
            "fault_class": item.module.__name__.rsplit(".", 1)[-1].removeprefix("test_"),
            "description": doc[0] if doc else item.name,
            "outcome": report.outcome,
            "seconds": round(report.duration, 2),
            **{k: v for k, v in report.user_properties},
        })


def pytest_sessionfinish(session, exitstatus):
    path = os.environ.get("ECGSSL_FAULT_REPORT")
    if path and _RESULTS:
        with open(path, "w") as f:
            json.dump(_RESULTS, f, indent=1)
