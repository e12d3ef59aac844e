"""Exceptions with messages that name the record and the problem."""

from __future__ import annotations


class ECGDataError(ValueError):
    """A record cannot be used as it is (missing file, NaNs, flat lead, wrong rate, ...).

    The message always starts with the record id so that a long job's report is readable.
    """

    def __init__(self, record_id: str, problem: str):
        self.record_id = str(record_id)
        self.problem = problem
        super().__init__(f"record {self.record_id!r}: {problem}")


class SpecMismatchError(ValueError):
    """Input data does not match what a checkpoint or store expects (rate, leads, length, units)."""
