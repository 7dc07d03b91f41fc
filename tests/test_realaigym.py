"""RealAIGym scores: the official figures of real runs, and a trajectory worked by hand."""

import csv
import json
import math

import numpy as np
import pytest

from s2r.cli import main
from sim.tasks import realaigym

EXPERIMENTS = [
    "pendubot_iros2024_mcpilco_experiment01",
    "pendubot_iros2024_mcpilco_experiment02",
    "pendubot_iros2024_mcpilco_experiment03",
    "pendubot_iros2024_ar_eapo_experiment01",
]
OFFICIAL_COLUMNS = {
    "Swingup Success": "success",
    "Swingup Time [s]": "swingup_time",
    "Energy [J]": "energy",
    "Torque Cost[N²m²]": "tau_cost",
    "Torque Smoothness [Nm]": "tau_smoothness",
    "Velocity Cost [m²/s²]": "velocity_cost",
    "RealAI Score": "score",
}


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_reproduces_official_v2_real_scores(realaigym_data, experiment, capsys):
    folder = realaigym_data / experiment
    with (folder / "scores_v2.csv").open() as f:
        official = next(csv.DictReader(f))
    assert main(["score", str(folder / "trajectory.csv"), "--version", "v2", "--stage", "real", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["robot"] == "pendubot", "read from the torques: the elbow is passive"
    ours = record["score"]
    for column, key in OFFICIAL_COLUMNS.items():
        assert ours[key] == pytest.approx(float(official[column]), abs=1e-9), column


def hand_trajectory() -> realaigym.Trajectory:
    """Four samples, 0.5 s apart, over a 10 s run's end; link lengths 0.2 and 0.3 m.

    Tip heights: -0.5 (down), 0.5, 0.5, 0.5 (straight up: q = [pi, 0]).
    """
    T = np.array([8.5, 9.0, 9.5, 10.0])
    X = np.array(
        [
            [0.0, 0.0, 1.0, 0.0],
            [np.pi, 0.0, 2.0, -1.0],
            [np.pi, 0.0, 0.0, 1.0],
            [np.pi, 0.0, 0.0, 0.0],
        ]
    )
    U = np.array([[1.0, 0.0], [-2.0, 0.0], [0.5, 0.0], [0.0, 0.0]])
    return realaigym.Trajectory(T, X, U)


def test_criteria_on_a_trajectory_computed_by_hand():
    c = realaigym.criteria(hand_trajectory())
    # Final unbroken up run: samples 1..2 walking back from the second-to-last.
    assert c["swingup_time"] == 9.0
    assert c["success"] == 1.0
    # energy: |pi * 1| + |0 * -2| + |0 * 0.5| = pi (joint 2 never moves)
    assert c["energy"] == pytest.approx(math.pi)
    assert c["max_tau"] == 2.0
    # integ_tau: (1 + 2 + 0.5) * 0.5
    assert c["integ_tau"] == pytest.approx(1.75)
    # tau_cost: (1 + 4 + 0.25) * 0.5
    assert c["tau_cost"] == pytest.approx(2.625)
    # smoothness: std of diffs of u1 = [-3, 2.5, -0.5] plus u2's 0
    assert c["tau_smoothness"] == pytest.approx(np.std([-3.0, 2.5, -0.5]))
    # velocity cost: (1 + 5 + 1) * 0.5
    assert c["velocity_cost"] == pytest.approx(3.5)
    # uptime: samples 1, 2, 3 are up, each 0.5 s after the previous one
    assert c["uptime"] == pytest.approx(1.5)


def test_scores_on_the_hand_trajectory():
    c = realaigym.criteria(hand_trajectory())
    v1 = 1 - (0.2 * 9 / 10 + 0.1 * 2 / 6 + 0.1 * math.pi / 100 + 0.1 * 1.75 / 60 + 0.1 * 2.625 / 360)
    v1 -= 0.2 * c["tau_smoothness"] / 12 + 0.2 * 3.5 / 1000
    assert realaigym.score_v1(c) == pytest.approx(v1)
    terms = [9 / 20, math.pi / 60, 2.625 / 20, c["tau_smoothness"] / 0.1, 3.5 / 400]
    assert realaigym.score_v2(c, "sim") == pytest.approx(1 - np.mean(np.tanh(np.pi * np.array(terms))))
    assert realaigym.score_v3(c) == pytest.approx(1.5 / 60)


def test_no_success_when_the_run_ends_down_or_early():
    t = hand_trajectory()
    down_at_end = realaigym.Trajectory(t.T, t.X.copy(), t.U)
    down_at_end.X[2, 0] = 0.0  # second-to-last sample hangs down
    c = realaigym.criteria(down_at_end)
    assert c["swingup_time"] == 10.0 and c["success"] == 0.0
    assert realaigym.score_v1(c) == 0.0 and realaigym.score_v2(c) == 0.0
    early = realaigym.Trajectory(t.T - 1.0, t.X, t.U)  # ends at 9 s < 0.99 * 10 s
    assert realaigym.criteria(early)["swingup_time"] == math.inf


def test_csv_round_trip(tmp_path):
    path = tmp_path / "t.csv"
    realaigym.write_trajectory_csv(path, hand_trajectory())
    back = realaigym.load_trajectory_csv(path)
    for a, b in zip(back, hand_trajectory(), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "content, message",
    [
        (
            "time,pos_meas1,pos_meas2,vel_meas1,vel_meas2,tau_con1\n0,0,0,0,0,0\n1,0,0,0,0,0\n",
            "missing column(s) tau_con2",
        ),
        ("time,pos_meas1,vel_meas1,tau_con1\n0,0,0,0\n1,0,x,0\n", "line 3"),
        ("time,pos_meas1,vel_meas1,tau_con1\n0,0,0,0\n1,0,nan,0\n", "non-finite value in vel_meas1"),
        ("time,pos_meas1,vel_meas1,tau_con1\n0,0,0,0\n0,0,0,0\n", "time does not increase"),
        ("time,pos_meas1,vel_meas1,tau_con1\n0,0,0,0\n1,0,0\n", "line 3"),
        ("time,pos_meas1,vel_meas1,tau_con1\n", "at least 2 samples"),
    ],
)
def test_bad_trajectory_files_are_refused_with_a_clear_error(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(realaigym.TrajectoryError, match=message.replace("(", r"\(").replace(")", r"\)")) as info:
        realaigym.load_trajectory_csv(path)
    assert str(path) in str(info.value)


def test_cli_reports_a_bad_file_without_a_traceback(tmp_path, capsys):
    path = tmp_path / "bad.csv"
    path.write_text("nonsense\n")
    assert main(["score", str(path)]) == 2
    assert "bad.csv" in capsys.readouterr().err


def test_cli_prints_strict_json_with_null_for_a_run_that_never_swung_up(tmp_path, capsys):
    path = tmp_path / "hanging.csv"
    rows = "".join(f"{0.01 * k:.2f},0,0,0\n" for k in range(100))
    path.write_text("time,pos_meas1,vel_meas1,tau_con1\n" + rows)
    assert main(["score", str(path), "--robot", "pendulum", "--json"]) == 0

    def refuse(constant):
        raise ValueError(f"not strict JSON: {constant}")

    result = json.loads(capsys.readouterr().out, parse_constant=refuse)["score"]
    assert result["success"] == 0.0 and result["swingup_time"] is None
