"""Sim2real calibration: recordings, k-step prediction, delay estimation, system identification, reports."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path

import mujoco
import numpy as np
import pytest

from calibration.gap import ModelUnderTest, analyse, estimate_delay
from calibration.identify import calibrate, with_values
from calibration.predict import Predictor, applied_torque, horizon_samples, window_starts
from calibration.recording import Recording, load_recording, simulated_recording
from calibration.sets import load_delay, write_param_set
from s2r.cli import main
from sim.config import ConfigError
from sim.env import RobotEnv
from sim.robots import get_robot
from sim.tasks.realaigym import Trajectory, TrajectoryError, write_trajectory_csv

ROBOT = get_robot("pendubot")
NOMINAL = ROBOT.load_params("model_1.0")

needs_matplotlib = pytest.mark.skipif(
    importlib.util.find_spec("matplotlib") is None, reason="the report's plots need matplotlib (s2r[calibrate])"
)


def _has_sysid() -> bool:
    try:
        import mujoco.sysid
    except ImportError:
        return False
    # mujoco.sysid swallows its missing optional dependencies and then lacks its API.
    return hasattr(mujoco.sysid, "optimize")


needs_sysid = pytest.mark.skipif(not _has_sysid(), reason="mujoco's sysid extra is not installed (s2r[calibrate])")


def excitation(t: float) -> np.ndarray:
    """Shoulder torque that swings the pendubot through much of its range, N m."""
    return np.array([2.0 * np.sin(2 * np.pi * 0.6 * t) + 1.0 * np.sin(2 * np.pi * 1.7 * t + 1.0), 0.0])


def simulate(params, delay_s=0.0, noise=0.0, seconds=4.0, command=excitation) -> Recording:
    return simulated_recording(ROBOT, params, command, seconds, delay_s=delay_s, velocity_noise=noise)


def write_csv(path: Path, rec: Recording) -> Path:
    write_trajectory_csv(path, Trajectory(rec.T, rec.X, rec.U))
    return path


# Recordings


def test_a_real_recording_loads_with_its_perturbation_added(realaigym_data):
    path = realaigym_data / "pendubot_iros2024_mcpilco_experiment01" / "trajectory.csv"
    rec = load_recording(path, 2)
    assert rec.name == "pendubot_iros2024_mcpilco_experiment01"
    assert len(rec.T) == 330 and rec.T[0] == 0.0
    assert rec.sample_period == pytest.approx(0.0303, abs=1e-3)
    header = path.read_text().splitlines()[0].split(",")
    raw = np.loadtxt(path, delimiter=",", skiprows=1)
    pert = raw[:, [header.index("tau_pert1"), header.index("tau_pert2")]]
    assert np.allclose(rec.U - rec.command, pert)
    assert np.allclose(rec.command[:, 0], raw[:, header.index("tau_con1")])


def test_bad_recordings_are_refused_with_the_reason(tmp_path):
    short = simulate(NOMINAL, seconds=0.5)
    with pytest.raises(TrajectoryError, match="too short"):
        load_recording(write_csv(tmp_path / "short.csv", short), 2)
    with pytest.raises(TrajectoryError, match="2 joint"):
        load_recording(write_csv(tmp_path / "ok.csv", simulate(NOMINAL, seconds=1.5)), 1)
    with pytest.raises(TrajectoryError, match="expected a RealAIGym"):
        load_recording(tmp_path / "run.bag", 2)
    bad = tmp_path / "bad.csv"
    text = (tmp_path / "ok.csv").read_text().splitlines()
    text[10] = text[10].replace(text[10].split(",")[1], "nan", 1)
    bad.write_text("\n".join(text))
    with pytest.raises(TrajectoryError, match="line 11: non-finite"):
        load_recording(bad, 2)
    with pytest.raises(TrajectoryError, match="cannot read"):
        load_recording(tmp_path / "missing.csv", 2)
    empty = tmp_path / "empty.mcap"
    empty.write_bytes(b"")
    with pytest.raises(TrajectoryError, match="fewer than 2"):
        load_recording(empty, 2)


def test_a_deploy_log_is_a_recording(tmp_path):
    log = tmp_path / "run.mcap"
    args = ["deploy", "--robot", "pendubot", "--policy", "baseline", "--lockstep", "--duration", "2", "--log", str(log)]
    assert main(args) == 0
    rec = load_recording(log, 2)
    assert rec.name == "run"
    assert len(rec.T) == 1000  # the baseline runs at 500 Hz
    assert np.all(np.abs(rec.U[:, 0]) <= 6.0) and np.any(rec.U[:, 0] != 0)


# Prediction


def test_applied_torque_holds_delays_and_averages_over_a_physics_step():
    rec = Recording("step", np.array([0.0, 0.01, 0.02, 0.03]), np.zeros((4, 2)), np.zeros((4, 2)), np.zeros((4, 2)))
    U = np.array([[1.0, 0.0], [2.0, 0.0], [3.0, 0.0], [4.0, 0.0]])
    rec = Recording("step", rec.T, rec.X, U, U)
    t = np.array([0.0, 0.004, 0.010, 0.029])
    assert np.allclose(applied_torque(rec, t, 0.0)[:, 0], [1.0, 1.0, 2.0, 3.5])
    # 5 ms late: nothing before the recording starts, then each value 5 ms later.
    assert np.allclose(applied_torque(rec, np.array([0.002, 0.004, 0.016]), 0.005)[:, 0], [0.0, 0.5, 2.0])
    # Continuous in the delay: a step straddling a change is the time-weighted mean.
    assert applied_torque(rec, np.array([0.0095]), 0.0)[0, 0] == pytest.approx(1.75)


def test_the_simulator_predicts_its_own_recordings_exactly():
    rec = simulate(NOMINAL, seconds=3.0)
    k = horizon_samples(rec, 0.5)
    pred = Predictor(ROBOT, NOMINAL).predict(rec, NOMINAL, window_starts(rec, k, 0.2), k)
    assert pred.predicted.shape == (len(pred.starts), 50, 4)
    assert np.max(np.abs(pred.error)) < 1e-9
    # ...and not those of another robot: the prediction is not the measurement handed back.
    other = ROBOT.load_params("model_1.1")
    assert np.max(np.abs(Predictor(ROBOT, other).predict(rec, other, pred.starts, k).error)) > 1e-2


def test_the_delay_is_found_by_cross_correlation():
    rng = np.random.default_rng(3)
    steps = rng.uniform(-3, 3, 200)  # a new random torque every 50 ms: broadband
    rec = simulate(NOMINAL, delay_s=0.02, seconds=8.0, command=lambda t: np.array([steps[int(t / 0.05)], 0.0]))
    estimate = estimate_delay(ROBOT, NOMINAL, rec)
    assert estimate.delay_s == pytest.approx(0.02, abs=0.004)
    assert estimate.peak_correlation > 0.9
    assert (
        estimate_delay(
            ROBOT, NOMINAL, simulate(NOMINAL, seconds=8.0, command=lambda t: np.array([steps[int(t / 0.05)], 0.0]))
        ).delay_s
        < 0.004
    )


def test_a_run_without_torque_has_no_delay_estimate_and_still_a_report(tmp_path):
    still = simulate(NOMINAL, seconds=2.0, command=lambda t: np.zeros(2))
    assert estimate_delay(ROBOT, NOMINAL, still) is None
    result, _ = analyse(ROBOT, still, {"model_1.0": ModelUnderTest(NOMINAL)})
    assert result["delay"]["estimate_s"] is None
    assert result["models"]["model_1.0"]["normalised_kstep_error"] < 1e-6


def test_gap_metrics_rank_the_true_model_first():
    truth = NOMINAL.replace(m=(NOMINAL.m[0], NOMINAL.m[1] * 1.15))
    rec = simulate(truth, seconds=3.0)
    result, _ = analyse(ROBOT, rec, {"truth": ModelUnderTest(truth), "nominal": ModelUnderTest(NOMINAL)})
    models = result["models"]
    assert models["truth"]["normalised_kstep_error"] < 1e-6 < models["nominal"]["normalised_kstep_error"]
    assert set(models["nominal"]["nrmse"]) == {
        "shoulder.position",
        "elbow.position",
        "shoulder.velocity",
        "elbow.velocity",
    }
    assert len(models["nominal"]["kstep_rmse"]["elbow.velocity"]) == len(result["horizon_s"]) == 50
    # The error grows with the horizon.
    rmse = models["nominal"]["kstep_rmse"]["shoulder.position"]
    assert rmse[-1] > rmse[0]


# Identification


@needs_sysid
def test_calibration_recovers_known_parameters_and_delay():
    """Known truth: a recording simulated with perturbed mass, friction and delay, and velocity noise."""
    truth = NOMINAL.replace(m=(NOMINAL.m[0], NOMINAL.m[1] * 1.1), b=(0.05, NOMINAL.b[1]), cf=(0.25, NOMINAL.cf[1]))
    rec = simulate(truth, delay_s=0.02, noise=0.05)
    cal = calibrate(ROBOT, NOMINAL, [rec], ["elbow.m", "shoulder.b", "shoulder.cf", "delay"], start_delay_s=0.005)
    got = {e.name: e for e in cal.estimates}
    assert got["elbow.m"].value == pytest.approx(truth.m[1], rel=0.02)
    assert got["shoulder.b"].value == pytest.approx(0.05, abs=0.01)
    assert got["shoulder.cf"].value == pytest.approx(0.25, abs=0.03)
    assert got["delay"].value == pytest.approx(0.02, abs=0.002)
    assert cal.delay_s == got["delay"].value
    assert cal.error_after < 0.2 * cal.error_before
    assert all(e.identified and 0 < e.ci95 < abs(e.value) for e in cal.estimates)


@needs_sysid
def test_parameters_the_data_cannot_show_are_flagged(tmp_path):
    # Hanging still with no torque, the elbow's rotor inertia and friction do nothing.
    rec = simulate(NOMINAL, seconds=2.0, command=lambda t: np.zeros(2))
    cal = calibrate(ROBOT, NOMINAL, [rec], ["Ir", "elbow.b"], max_iters=3)
    assert not any(e.identified for e in cal.estimates)
    assert all(e.note for e in cal.estimates)
    if importlib.util.find_spec("matplotlib") is None:
        return
    # The set and a report of it keep the unbounded intervals; the report's JSON stays strict (null).
    write_param_set(cal, tmp_path / "still.yaml")
    csv = write_csv(tmp_path / "run.csv", simulate(NOMINAL, seconds=1.5))
    assert (
        main(
            [
                "report",
                str(csv),
                "--robot",
                "pendubot",
                "--params",
                str(tmp_path / "still.yaml"),
                "--out",
                str(tmp_path / "r"),
            ]
        )
        == 0
    )

    def refuse(name: str) -> None:
        raise AssertionError(f"non-standard JSON constant {name}")

    data = json.loads((tmp_path / "r" / "report.json").read_text(), parse_constant=refuse)
    assert data["calibrations"]["still"]["estimates"]["Ir"]["identified"] is False


def test_every_candidate_set_is_a_physical_body():
    # Heavier and longer link 2 than its inertia allows: the inertia about the joint is held at m r^2.
    params, delay = with_values(ROBOT, NOMINAL, {"elbow.m": 0.9, "elbow.r": 0.35, "delay": 0.01})
    assert params.I[1] == pytest.approx(1.001 * 0.9 * 0.35**2) and delay == 0.01
    assert ROBOT.build_model(params).body_inertia[2][0] > 0
    assert with_values(ROBOT, NOMINAL, {"elbow.I": 0.06})[0].I[1] == 0.06


@needs_sysid
def test_calibrate_refuses_unknown_parameters_and_short_recordings():
    rec = simulate(NOMINAL, seconds=1.5)
    with pytest.raises(ValueError, match="cannot fit \\['shoulder.l'\\]"):
        calibrate(ROBOT, NOMINAL, [rec], ["elbow.m", "shoulder.l"])
    with pytest.raises(ValueError, match="shorter than one"):
        calibrate(ROBOT, NOMINAL, [rec], ["elbow.m"], horizon_s=2.0)


@needs_sysid
def test_a_calibrated_set_feeds_envs_deploy_and_training(tmp_path, capsys):
    truth = NOMINAL.replace(m=(NOMINAL.m[0], NOMINAL.m[1] * 1.1))
    cal = calibrate(ROBOT, NOMINAL, [simulate(truth, delay_s=0.01, seconds=2.0)], ["elbow.m", "delay"], max_iters=5)
    path = tmp_path / "robot.yaml"
    write_param_set(cal, path)
    assert ROBOT.load_params(path).m[1] == pytest.approx(cal.params.m[1])
    assert load_delay(path) == pytest.approx(cal.delay_s)
    env = RobotEnv("pendubot", params=path)
    assert env.params.m[1] == pytest.approx(cal.params.m[1])
    args = [
        "deploy",
        "--robot",
        "pendubot",
        "--policy",
        "baseline",
        "--lockstep",
        "--duration",
        "1",
        "--params",
        str(path),
    ]
    assert main(args) == 0
    # A training run takes it too; a broken set stops it before anything is written.
    broken = tmp_path / "broken.yaml"
    broken.write_text(path.read_text().replace("calibration:", "calibration: 3\nx:"))
    assert (
        main(["train", "--robot", "pendubot", "--algo", "ppo", "--params", str(broken), "--out", str(tmp_path / "run")])
        == 2
    )
    assert f"{broken}: x: unknown key" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
    bad_delay = tmp_path / "bad_delay.yaml"
    bad_delay.write_text(path.read_text().replace(f"delay_s: {cal.delay_s}", "delay_s: -1.0", 1))
    with pytest.raises(ConfigError, match="calibration.delay_s"):
        load_delay(bad_delay)


# Reports


def _report(tmp_path: Path, *extra: str) -> tuple[Path, dict]:
    csv = write_csv(tmp_path / "run.csv", simulate(NOMINAL.replace(b=(0.05, 0.05)), delay_s=0.01, seconds=3.0))
    out = tmp_path / "report"
    argv = [
        "report",
        str(csv),
        "--robot",
        "pendubot",
        "--params",
        "model_1.0",
        "--params",
        "model_1.1",
        "--out",
        str(out),
    ]
    assert main(argv + list(extra)) == 0
    return out, json.loads((out / "report.json").read_text())


@needs_matplotlib
def test_report_writes_html_and_json_with_every_model(tmp_path):
    out, data = _report(tmp_path)
    html = (out / "report.html").read_text()
    assert set(data["models"]) == {"model_1.0", "model_1.1"}
    rec = data["recordings"][0]
    assert rec["recording"] == "run" and rec["delay"]["estimate_s"] == pytest.approx(0.01, abs=0.01)
    # Model 1.0 has the friction of the simulated robot's neighbourhood; 1.1 has none.
    m10, m11 = (rec["models"][m]["normalised_kstep_error"] for m in ("model_1.0", "model_1.1"))
    assert m10 < m11
    assert html.count("<svg") == 3 and "model_1.1" in html
    # Self-contained: nothing to fetch (the SVGs name XML namespaces, which are not fetched).
    assert not re.search(r"(src|href)=[\"']?(https?:)?//", html)
    assert "<script" not in html and "<link" not in html and "@import" not in html


@needs_matplotlib
def test_report_of_two_runs_with_the_same_file_name(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = write_csv(tmp_path / "a" / "run.csv", simulate(NOMINAL, seconds=1.5))
    b = write_csv(tmp_path / "b" / "run.csv", simulate(NOMINAL.replace(b=(0.05, 0.05)), seconds=1.5))
    assert main(["report", str(a), str(b), "--robot", "pendubot", "--out", str(tmp_path / "r")]) == 0
    data = json.loads((tmp_path / "r" / "report.json").read_text())
    errors = [r["models"]["model_1.0"]["normalised_kstep_error"] for r in data["recordings"]]
    assert errors[0] < 1e-6 < errors[1]
    assert (tmp_path / "r" / "report.html").read_text().count("<svg") == 6


@needs_matplotlib
def test_report_of_a_deploy_log_shows_the_score_gap(tmp_path):
    log = tmp_path / "run.mcap"
    deploy = ["deploy", "--robot", "pendubot", "--policy", "zoo:pendubot", "--lockstep", "--log", str(log)]
    assert main(deploy) == 0
    out = tmp_path / "report"
    assert main(["report", str(log), "--robot", "pendubot", "--policy", "zoo:pendubot", "--out", str(out)]) == 0
    gap = json.loads((out / "report.json").read_text())["score_gap"]
    assert gap["policy"] == "zoo:pendubot"
    assert 0.0 <= gap["real_v2_mean"] <= 1.0 and 0.0 <= gap["sim_v2_mean"] <= 1.0
    assert gap["v2_gap"] == pytest.approx(gap["sim_v2_mean"] - gap["real_v2_mean"])


@needs_matplotlib
def test_report_refuses_a_recording_of_the_wrong_robot(tmp_path, capsys):
    csv = write_csv(tmp_path / "run.csv", simulate(NOMINAL, seconds=1.5))
    assert main(["report", str(csv), "--robot", "pendulum", "--out", str(tmp_path / "r")]) == 2
    assert "is a recording of 2 joint(s) whose commands fit the pendubot" in capsys.readouterr().err
    # The elbow was never driven beyond friction compensation: a pendubot's run, not an acrobot's.
    assert main(["report", str(csv), "--robot", "acrobot", "--out", str(tmp_path / "r")]) == 2
    assert "not of the acrobot: check --robot" in capsys.readouterr().err
    log = tmp_path / "run.mcap"
    deploy = ["deploy", "--policy", "baseline", "--lockstep", "--duration", "2", "--log", str(log)]
    assert main([*deploy, "--params", "model_1.1"]) == 0
    capsys.readouterr()
    assert main(["report", str(log), "--robot", "acrobot", "--out", str(tmp_path / "r")]) == 2
    assert "is a log of the pendubot, not of the acrobot" in capsys.readouterr().err


def _chromium() -> str | None:
    return next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)


@needs_matplotlib
def test_report_opens_in_headless_chromium_without_console_errors(tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("no Chromium on this machine (Debian package: chromium)")
    out, _ = _report(tmp_path)
    page = (out / "report.html").resolve().as_uri()
    shot = tmp_path / "report.png"
    common = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    # --enable-logging=stderr --v=0 prints the page's console messages to stderr.
    run = subprocess.run(
        [*common, "--enable-logging=stderr", "--v=0", f"--screenshot={shot}", "--window-size=1280,2400", page],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    # The page has no scripts: any console message at all (an error included) is a fault.
    console = [line for line in run.stderr.splitlines() if ":CONSOLE" in line]
    assert not console, console
    assert shot.stat().st_size > 20_000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The DOM Chromium built holds the plots: the page rendered, not just loaded.
    dom = subprocess.run([*common, "--dump-dom", page], capture_output=True, text=True, timeout=120).stdout
    assert dom.count("<svg") == 3 and "Sim2real gap" in dom


@needs_matplotlib
def test_the_real_recording_report_of_the_acceptance_command(realaigym_data, tmp_path):
    path = realaigym_data / "pendubot_iros2024_mcpilco_experiment01" / "trajectory.csv"
    assert main(["report", str(path), "--robot", "pendubot", "--out", str(tmp_path / "r")]) == 0
    data = json.loads((tmp_path / "r" / "report.json").read_text())
    rec = data["recordings"][0]
    assert rec["samples"] == 330 and rec["windows"] > 50
    # The real robot answers its commands tens of milliseconds late (MC-PILCO's 33 Hz loop).
    assert 0.02 < rec["delay"]["estimate_s"] < 0.08
    assert 0 < rec["models"]["model_1.0"]["normalised_kstep_error"] < 2


def test_without_the_calibrate_extra_the_error_says_what_to_install(monkeypatch, tmp_path, capsys):
    # What a plain `pip install mujoco` gives: the package imports, its API is missing.
    bare = types.ModuleType("mujoco.sysid")
    monkeypatch.setitem(sys.modules, "mujoco.sysid", bare)
    monkeypatch.setattr(mujoco, "sysid", bare, raising=False)
    csv = write_csv(tmp_path / "run.csv", simulate(NOMINAL, seconds=1.5))
    assert (
        main(["calibrate", str(csv), "--robot", "pendubot", "--fit", "elbow.m", "--out", str(tmp_path / "s.yaml")]) == 2
    )
    assert "pip install 's2r[calibrate]'" in capsys.readouterr().err
    assert not (tmp_path / "s.yaml").exists()
