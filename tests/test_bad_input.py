"""Bad input from a user: each mistake ends with a line naming what was wrong, exit code 2, and no
traceback; nothing it asks for (a torque, a memory size) is taken on trust."""

import importlib.util
import tracemalloc

import numpy as np
import pytest
import yaml

from s2r.cli import main
from sim.robots import get_robot
from sim.tasks.realaigym import TrajectoryError, load_trajectory_csv

HAS_TRAINING = importlib.util.find_spec("stable_baselines3") is not None


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
    return ["train", "pendulum", "--config", str(path), "--no-progress"]


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


DEPLOY = ["deploy", "--robot", "pendubot", "--policy", "baseline", "--lockstep", "--duration", "0.1"]
CASES = {
    # name: (argv from tmp_path, what the error line says, needs training)
    "a parameter set that raises the torque limit": (
        lambda d: [*DEPLOY, "--params", _params(d, torque_limit=[1e6, 1e6])],
        "exceeds the motors' hard limit of 6.0 N m",
        False,
    ),
    "a negative duration": (lambda d: [*DEPLOY, "--duration", "-1"], "--duration: expected a value in (0, inf]", False),
    "a rate of zero": (lambda d: [*DEPLOY, "--rate", "0"], "--rate: expected a value in (0, 1000]", False),
    "a negative seed": (lambda d: [*DEPLOY, "--seed", "-1"], "--seed: expected a value in [0, 4.29497e+09]", False),
    "a fault file's negative seed": (
        lambda d: ["emulate", "pendubot", "--faults", _faults(d, "seed: -1\n"), "--duration", "0.1"],
        "seed: expected an integer in [0, 2^32)",
        False,
    ),
    "a recording of 1e300": (
        lambda d: ["report", _recording(d, 1e300), "--robot", "pendubot", "--out", str(d / "report")],
        "beyond any robot's",
        False,
    ),
    "train --steps -5": (lambda d: ["train", "pendulum", "--algo", "sac", "--steps", "-5"], "--steps: expected", False),
    "train --envs -2": (lambda d: ["train", "pendulum", "--algo", "sac", "--envs", "-2"], "--envs: expected", False),
    "train --seed -1": (lambda d: ["train", "pendulum", "--algo", "sac", "--seed", "-1"], "--seed: expected", False),
    "n_envs: 100000": (lambda d: _train_config(d, n_envs=100000), "n_envs: expected an integer in [1, 256]", True),
    "batch_size: 0": (lambda d: _train_config(d, hyperparams={"batch_size": 0}), "batch_size: expected", True),
    "batch_size: -64": (lambda d: _train_config(d, hyperparams={"batch_size": -64}), "batch_size: expected", True),
    "gamma: 2": (lambda d: _train_config(d, hyperparams={"gamma": 2.0}), "gamma: expected a value in [0, 1]", True),
    "action_history: 1e12": (
        lambda d: _train_config(d, env={"action_history": 10**12}),
        "env.action_history: expected an integer in [0, 64]",
        True,
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_a_mistake_gets_one_line_and_exit_code_2(name, tmp_path, capsys, red_team):
    argv, message, training = CASES[name]
    if training and not HAS_TRAINING:
        pytest.skip("the training configs are checked against stable-baselines3 (train extra)")
    try:
        code = main(argv(tmp_path))
    except SystemExit as exc:  # argparse's way out
        code = exc.code
    except Exception:
        red_team.update(uncaught_exceptions=1)
        raise
    red_team.update(bad_inputs=1)
    err = capsys.readouterr().err
    last = [line for line in err.splitlines() if line.strip()][-1]
    assert code == 2 and message in last and "Traceback" not in err, (code, err)


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
