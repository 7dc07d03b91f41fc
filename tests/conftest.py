from collections import Counter
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "realaigym"


@pytest.fixture
def realaigym_data() -> Path:
    """The real pendubot recordings beside the project; skips where they are absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real recordings not found at {SHARED_DATA}")
    return SHARED_DATA


RED_TEAM = Counter()
"""What the red-team tests tried and found, summed over the run (printed at its end)."""


@pytest.fixture
def red_team() -> Counter:
    """Add counts: bad_inputs (frames, messages, files, flags tried), uncaught_exceptions,
    outside_limits (commands), blind_torque (ticks), lost_silently (data lost without a word)."""
    return RED_TEAM


def pytest_terminal_summary(terminalreporter):
    if RED_TEAM:
        keys = ("bad_inputs", "uncaught_exceptions", "outside_limits", "blind_torque", "lost_silently")
        figures = ", ".join(f"{key.replace('_', ' ')} {RED_TEAM[key]}" for key in keys)
        terminalreporter.write_line(f"red team: {figures}")
