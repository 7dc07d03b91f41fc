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


@pytest.fixture
def fly_hil(tmp_path):
    """`fly_hil(device, plan, domain_id=0, duration=6.0)` -> (result, options): the crazyflie baseline
    (rates level) over link `device` against its emulator with fault plan `plan` (a path), logged."""

    def run(device: str, plan: str, domain_id: int = 0, duration: float = 6.0):
        from hardware.apps.deploy import DeployOptions
        from hardware.apps.hil import run_hil
        from hardware.emulators.faults import FaultPlan
        from policies import make_controller

        policy = make_controller("baseline", "crazyflie", 100.0, "rates")
        options = DeployOptions(
            robot="crazyflie",
            rate_hz=100.0,
            duration_s=duration,
            device=device,
            domain_id=domain_id,
            conditions=dict(policy.conditions),
            action_history=0,
            log_path=tmp_path / "hil.mcap",
        )
        return run_hil(policy, options, FaultPlan.from_yaml(plan)), options

    return run


def pytest_terminal_summary(terminalreporter):
    if RED_TEAM:
        keys = ("bad_inputs", "uncaught_exceptions", "outside_limits", "blind_torque", "lost_silently")
        figures = ", ".join(f"{key.replace('_', ' ')} {RED_TEAM[key]}" for key in keys)
        terminalreporter.write_line(f"red team: {figures}")
