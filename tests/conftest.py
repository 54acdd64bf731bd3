"""Fixtures shared by the tests (the settings shared with nbval are in the repository's conftest.py)."""

from __future__ import annotations

import pytest

from tests.support import SOLUTIONS


@pytest.fixture(scope="session")
def course():
    """The grader's view of the course (:class:`seglab.course.graded.Course`), read once per test session."""
    from seglab.course.graded import load_course

    return load_course(SOLUTIONS)
