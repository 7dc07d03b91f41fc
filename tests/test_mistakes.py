"""A newcomer's mistakes: each ends with one line naming what was wrong and what to do, exit code 2
for usage and 1 for a run that failed, and no traceback; nothing a file or flag asks for (a torque,
a memory size) is taken on trust."""

import importlib.util
import os
import subprocess
import sys
import threading
import tracemalloc

import numpy as np
import pytest
import yaml

from s2r.cli import main
from sim.robots import get_robot
from sim.tasks.realaigym import TrajectoryError, load_trajectory_csv

TRAIN, CALIBRATE = "stable_baselines3", "matplotlib"
"""What a case needs installed (the train and calibrate extras): the command says so before anything else."""


def _params(tmp_path, **changes):
    data = {**get_robot("pendubot").load_params("model_1.0").as_dict(), **changes}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def _train_config(tmp_path, **changes):
    data = yaml.safe_load(open("policies/configs/pendulum/sac.yaml"))
    hyperparams = changes.pop("hyperparams", {})
    data.update(changes)
    data["hyperparams"] = {**data.get("hyperparams", {}), **hyperparams}
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(data))
    return ["train", "--robot", "pendulum", "--config", str(path)]


def _faults(tmp_path, text):
    path = tmp_path / "faults.yaml"
    path.write_text(text)
    return str(path)


def _recording(tmp_path, scale):
    T = np.arange(300) * 0.01
    rows = np.column_stack([T, np.full((300, 4), scale), np.zeros((300, 2))])
    path = tmp_path / "trajectory.csv"
    header = "time,pos_meas1,pos_meas2,vel_meas1,vel_meas2,tau_con1,tau_con2"
    np.savetxt(path, rows, delimiter=",", header=header, comments="")
    return str(path)


def _busy_port(tmp_path):
    """A port another program holds: the emulator's, with a host already on it."""
    from hardware.backends.serial_device import SerialDevice
    from hardware.emulators.serial_emulator import Emulator

    emulator = Emulator("pendubot", params="model_1.1", imperfections=False)
    port = emulator.open()
    stop = threading.Event()
    thread = threading.Thread(target=emulator.run, kwargs={"should_stop": stop.is_set}, daemon=True)
    thread.start()
    holder = SerialDevice(port)
    holder._open()
    tmp_path.joinpath("holder").write_text(port)
    _KEEP.append((holder, stop))
    return port


_KEEP: list = []


def _file(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


DEPLOY = ["deploy", "--robot", "pendubot", "--policy", "baseline", "--lockstep", "--duration", "0.1"]
CASES = {
    # name: (argv from tmp_path, what the error line says, the module it needs or None); exit code 2 unless
    # in FAILED_RUNS
    "an unknown command": (lambda d: ["nope"], "invalid choice: 'nope'", None),
    "no command": (lambda d: [], "the following arguments are required: COMMAND", None),
    "an unknown robot": (lambda d: [*DEPLOY, "--robot", "ur5"], "--robot: invalid choice: 'ur5'", None),
    "a policy for another robot": (
        lambda d: ["deploy", "--robot", "acrobot", "--policy", "zoo:pendubot"],
        "zoo:pendubot is for the pendubot, not the acrobot",
        None,
    ),
    "a policy that is not shipped": (
        lambda d: [*DEPLOY, "--policy", "zoo:nope"],
        "no shipped policy 'zoo:nope'",
        None,
    ),
    "a policy file that is missing": (
        lambda d: [*DEPLOY, "--policy", str(d / "absent.json")],
        "policy metadata not found",
        None,
    ),
    "a port that does not exist": (
        lambda d: ["deploy", "--policy", "baseline", "--device", "serial:/dev/nonexistent"],
        "device error: cannot open serial port /dev/nonexistent",
        None,
    ),
    "a file that is not a serial port": (
        lambda d: ["deploy", "--policy", "baseline", "--device", "serial:/dev/null"],
        "cannot open serial port /dev/null",
        None,
    ),
    "a port another program holds": (
        lambda d: ["deploy", "--policy", "baseline", "--device", f"serial:{_busy_port(d)}"],
        "another program has it open",
        None,
    ),
    "a ROS 2 topic nobody publishes": (
        lambda d: ["deploy", "--policy", "baseline", "--device", "ros2", "--loopback", "--domain-id", "171"],
        "no valid sensor_msgs/msg/JointState with joints ['shoulder', 'elbow'] on /joint_states within 5.0 s",
        None,
    ),
    "a pendulum policy on the quadrotor": (
        lambda d: ["rollout", "--robot", "crazyflie", "--controller", "zoo:pendubot"],
        "the crazyflie has only its baseline controller so far, not 'zoo:pendubot'",
        None,
    ),
    "a flight task for the pendulum": (
        lambda d: ["rollout", "--robot", "pendubot", "--task", "hover"],
        "--task is the crazyflie's (hover, figure8)",
        None,
    ),
    "a pendulum parameter set for the quadrotor": (
        lambda d: ["rollout", "--robot", "crazyflie", "--params", "model_1.0"],
        "model_1.0: no quadrotor parameter set of that name; shipped: ['cf21', 'l2f']",
        None,
    ),
    "a pendulum randomisation for the quadrotor": (
        lambda d: ["rollout", "--robot", "crazyflie", "--randomization", "double_pendulum"],
        "parameters.shoulder.m: unknown key; expected one of mass, inertia, thrust",
        None,
    ),
    "two robots for one rollout": (
        lambda d: ["rollout", "pendubot", "--robot", "acrobot"],
        "two robots named: pendubot and --robot acrobot",
        None,
    ),
    "a pendulum policy deployed on the quadrotor": (
        lambda d: ["deploy", "--robot", "crazyflie", "--policy", "zoo:pendubot"],
        "zoo:pendubot is for the pendubot, not the crazyflie",
        None,
    ),
    "the quadrotor on a task it has not": (
        lambda d: ["deploy", "--robot", "crazyflie", "--policy", "baseline", "--task", "swingup"],
        "the crazyflie has no task 'swingup' (its tasks: hover, figure8)",
        None,
    ),
    "the quadrotor on the pendulum's serial link": (
        lambda d: ["deploy", "--robot", "crazyflie", "--policy", "baseline", "--device", "serial:/dev/ttyACM0"],
        "the s2r serial protocol carries joints: the crazyflie is not on it yet",
        None,
    ),
    "a pendulum on a flight controller's link": (
        lambda d: ["deploy", "--robot", "pendubot", "--policy", "baseline", "--device", "msp:/dev/ttyACM0"],
        "msp is a quadrotor's link: the pendubot is not one",
        None,
    ),
    "a joint plot of a flight": (
        lambda d: ["deploy", "--robot", "crazyflie", "--policy", "baseline", "--plot", str(d / "q.png")],
        "--plot draws joints: the crazyflie's flight is in its --log (Foxglove's 3D panel)",
        None,
    ),
    "an unknown device": (
        lambda d: ["deploy", "--policy", "baseline", "--device", "can0"],
        "unknown device 'can0'",
        None,
    ),
    "lockstep on a real port": (
        lambda d: [*DEPLOY, "--device", "serial:/dev/ttyACM9"],
        "--lockstep needs the simulated device",
        None,
    ),
    "a score of a missing file": (lambda d: ["score", str(d / "absent.csv")], "cannot read", None),
    "a score of a log instead of a CSV": (
        lambda d: ["score", _file(d, "run.csv", "\x89MCAP0\r\n")],
        "missing column(s) time",
        None,
    ),
    "log info of a file that is not a log": (
        lambda d: ["log", "info", _file(d, "notes.mcap", "hello")],
        "not an MCAP file",
        None,
    ),
    "log info of a missing file": (lambda d: ["log", "info", str(d / "absent.mcap")], "cannot read the log", None),
    "a training config that is missing": (
        lambda d: ["train", "--robot", "pendubot", "--config", str(d / "absent.yaml")],
        "cannot read file",
        TRAIN,
    ),
    "a training config with a typo": (
        lambda d: ["train", "--robot", "pendubot", "--config", _file(d, "t.yaml", "algo: ppo\nn_timestep: 10\n")],
        "n_timestep: unknown key",
        TRAIN,
    ),
    "a quadrotor training config with an unknown action level": (
        lambda d: [
            "train",
            "--robot",
            "crazyflie",
            "--config",
            _file(d, "q.yaml", "algo: ppo\nn_timesteps: 10\nenv: {task: hover, action_level: thrust}\n"),
        ],
        "env: unknown action level 'thrust'",
        TRAIN,
    ),
    "a quadrotor training config with a preview that is not a number of points": (
        lambda d: [
            "train",
            "--robot",
            "crazyflie",
            "--config",
            _file(d, "p.yaml", "algo: ppo\nn_timesteps: 10\nenv: {task: figure8, observe_preview: three}\n"),
        ],
        "env: observe_preview must be a whole number of points in [0, 10], got 'three'",
        TRAIN,
    ),
    "a training config naming a randomisation that is not there": (
        lambda d: [
            "train",
            "--robot",
            "crazyflie",
            "--config",
            _file(d, "r.yaml", "algo: ppo\nn_timesteps: 10\nenv: {randomization: nope}\n"),
        ],
        "env.randomization: 'nope'",
        TRAIN,
    ),
    "train without a robot": (lambda d: ["train", "--algo", "sac"], "give --robot and --algo", TRAIN),
    "a parameter set that raises the torque limit": (
        lambda d: [*DEPLOY, "--params", _params(d, torque_limit=[1e6, 1e6])],
        "exceeds the motors' hard limit of 6.0 N m",
        None,
    ),
    "a negative duration": (lambda d: [*DEPLOY, "--duration", "-1"], "--duration: expected a value in (0, inf]", None),
    "a rate of zero": (lambda d: [*DEPLOY, "--rate", "0"], "--rate: expected a value in (0, 1000]", None),
    "a negative seed": (lambda d: [*DEPLOY, "--seed", "-1"], "--seed: expected a value in [0, 4.29497e+09]", None),
    "a fault file's negative seed": (
        lambda d: ["emulate", "--robot", "pendubot", "--faults", _faults(d, "seed: -1\n"), "--duration", "0.1"],
        "seed: expected an integer in [0, 2^32)",
        None,
    ),
    "a recording of 1e300": (
        lambda d: ["report", _recording(d, 1e300), "--robot", "pendubot", "--out", str(d / "report")],
        "beyond any robot's",
        CALIBRATE,
    ),
    "train --steps -5": (
        lambda d: ["train", "--robot", "pendulum", "--algo", "sac", "--steps", "-5"],
        "--steps: expected",
        None,
    ),
    "train --envs -2": (
        lambda d: ["train", "--robot", "pendulum", "--algo", "sac", "--envs", "-2"],
        "--envs: expected",
        None,
    ),
    "train --seed -1": (
        lambda d: ["train", "--robot", "pendulum", "--algo", "sac", "--seed", "-1"],
        "--seed: expected",
        None,
    ),
    "n_envs: 100000": (lambda d: _train_config(d, n_envs=100000), "n_envs: expected an integer in [1, 256]", TRAIN),
    "batch_size: 0": (lambda d: _train_config(d, hyperparams={"batch_size": 0}), "batch_size: expected", TRAIN),
    "batch_size: -64": (lambda d: _train_config(d, hyperparams={"batch_size": -64}), "batch_size: expected", TRAIN),
    "gamma: 2": (lambda d: _train_config(d, hyperparams={"gamma": 2.0}), "gamma: expected a value in [0, 1]", TRAIN),
    "action_history: 1e12": (
        lambda d: _train_config(d, env={"action_history": 10**12}),
        "env.action_history: expected an integer in [0, 64]",
        TRAIN,
    ),
}


FAILED_RUNS = {
    "a port that does not exist",
    "a file that is not a serial port",
    "a port another program holds",
    "a ROS 2 topic nobody publishes",
}
"""Mistakes that only show when the run starts: a run that failed, exit code 1."""


@pytest.mark.parametrize("name", list(CASES))
def test_a_mistake_gets_one_line_and_its_exit_code(name, tmp_path, capsys, red_team):
    argv, message, needs = CASES[name]
    if needs and importlib.util.find_spec(needs) is None:
        pytest.skip(f"{name} needs {needs}, which is not installed: the command asks for its extra first")
    try:
        code = main(argv(tmp_path))
    except SystemExit as exc:  # argparse's way out
        code = exc.code
    except Exception:
        red_team.update(uncaught_exceptions=1)
        raise
    finally:
        for holder, stop in _KEEP:
            holder._close_port()
            stop.set()
        _KEEP.clear()
    red_team.update(bad_inputs=1)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in err, err
    assert code == (1 if name in FAILED_RUNS else 2), (code, err)


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["-h"], ["--version"]]
    + [
        [c, "--help"]
        for c in (
            "score",
            "rollout",
            "train",
            "export",
            "eval",
            "deploy",
            "emulate",
            "hil",
            "robustness",
            "report",
            "calibrate",
        )
    ]
    + [["log", "info", "--help"], ["log", "export", "--help"]],
)
def test_help_and_version_work_everywhere(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    out = capsys.readouterr().out
    assert exit_.value.code == 0 and out.strip()
    if argv[-1] == "--help" and len(argv) == 2:
        assert "(default: " in out or argv[0] in ("export", "log"), "help shows the defaults"


def test_a_missing_extra_says_which_to_install():
    """A deploy-only install (no torch) asked to train: the extra to install, not "No module named"."""
    code = "import sys; sys.modules['torch'] = None; from s2r.cli import main; sys.exit(main(sys.argv[1:]))"
    argv = ["train", "--robot", "pendulum", "--algo", "sac"]
    proc = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "s2r train: needs the train extra: pip install -e '.[train]' (import of torch halted; None in sys.modules)"
    ]


def test_debug_shows_the_traceback(capsys):
    os.environ["S2R_DEBUG"] = "1"
    try:
        assert main(["score", "absent.csv"]) == 2
    finally:
        del os.environ["S2R_DEBUG"]
    assert "Traceback" in capsys.readouterr().err


def test_a_csv_with_a_byte_order_mark_reads_like_one_without(tmp_path):
    plain = _recording(tmp_path, 0.5)
    marked = tmp_path / "marked.csv"
    marked.write_bytes(b"\xef\xbb\xbf" + open(plain, "rb").read())
    np.testing.assert_array_equal(load_trajectory_csv(marked).X, load_trajectory_csv(plain).X)


def test_a_huge_malformed_csv_fails_at_its_first_bad_line_without_reading_it_whole(tmp_path, red_team):
    path = tmp_path / "huge.csv"
    with path.open("w") as f:
        f.write("time,pos_meas1,vel_meas1,tau_con1\n0,0,0,0\n0.01,zero,0,0\n")
        row = "1," * 3 + "1\n"
        f.write(row * 3_000_000)  # 24 MB after the bad line
    tracemalloc.start()
    try:
        with pytest.raises(TrajectoryError, match="line 3: expected 4 numeric fields"):
            load_trajectory_csv(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    red_team.update(bad_inputs=1)
    assert peak < 2_000_000, f"{peak} bytes held to refuse it"
    one_field = tmp_path / "one_field.csv"
    one_field.write_text("time,pos_meas1,vel_meas1,tau_con1\n" + "9" * 300_000 + "\n")
    with pytest.raises(TrajectoryError, match="line 2"):
        load_trajectory_csv(one_field)
