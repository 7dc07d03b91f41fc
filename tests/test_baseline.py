"""The classical baseline swings the pendubot up, and the robustness benchmark is built as the spec says."""

import dataclasses
import json

import numpy as np
import pytest

from policies import make_controller
from policies.baselines import PendubotEnergyLQR
from s2r.cli import main
from sim import robustness
from sim.imperfections import Imperfections
from sim.robots import get_robot
from sim.tasks import realaigym


def test_baseline_swings_up_and_holds_the_pendubot(tmp_path, capsys):
    out = tmp_path / "run.csv"
    assert main(["rollout", "--robot", "pendubot", "--controller", "baseline", "--out", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["success"] is True and result["control_rate_hz"] == 500.0
    assert result["metrics"]["swingup_time"] < 3.0
    assert result["metrics"]["score"] > 0.25  # measured 0.278 (v2, simulation normalisation)
    # The written trajectory scores the same through the CSV path.
    again = realaigym.score(realaigym.load_trajectory_csv(out), "v2", "sim")
    assert again["score"] == pytest.approx(result["metrics"]["score"], abs=1e-12)


def test_baseline_lqr_holds_the_top_against_a_small_offset():
    ctrl = PendubotEnergyLQR()
    x = np.array([np.pi + 0.05, -0.05, 0.0, 0.0])
    tau = ctrl.torque(x)
    assert ctrl.lqr_active and abs(tau) < 6.0


def test_unknown_controller_and_robot_are_clear_errors():
    with pytest.raises(ValueError, match="unknown controller 'nope'"):
        make_controller("nope", "pendubot")
    with pytest.raises(ValueError, match="exists for the pendubot and the crazyflie, not the acrobot"):
        make_controller("baseline", "acrobot")


def test_benchmark_has_the_spec_episodes():
    jobs = robustness.jobs(get_robot("pendubot").load_params("model_1.1"))
    count = {}
    for job in jobs:
        count[job.criterion.split(":")[0]] = count.get(job.criterion.split(":")[0], 0) + 1
    assert count == {
        "model": 10 * 21,
        "velocity_noise": 21 * 10,
        "torque_noise": 21 * 10,
        "torque_response": 21,
        "delay": 21,
        "perturbations": 50,
    }
    delays = sorted({j.imperfections.delay_s for j in jobs if j.criterion == "delay"})
    assert delays[0] == 0.0 and delays[-1] == pytest.approx(0.04) and len(delays) == 21
    pert = [j for j in jobs if j.criterion == "perturbations"]
    assert {j.imperfections.pulses_per_joint for j in pert} == {3} and len({j.seed for j in pert}) == 50


def test_model_sweep_changes_one_parameter_as_the_official_sweep_does():
    p = get_robot("pendubot").load_params("model_1.1")
    q = robustness.swept_params(p, "m2r2", 1.25 * p.m[1] * p.r[1])
    assert q.m == p.m and q.r[1] == pytest.approx(1.25 * p.r[1]) and q.r[0] == p.r[0]
    assert robustness.swept_params(p, "cf1", -0.2).cf == (-0.2, 0.0)
    assert robustness.swept_params(p, "Ir", 1e-4).Ir == 1e-4


def test_summary_scores_levels_and_majority_of_repetitions():
    p = get_robot("pendubot").load_params("model_1.1")
    off = Imperfections()
    results = []
    for level in range(21):
        for rep in range(10):  # levels 0..9 pass 6 of 10, the rest 5 of 10 (not a majority)
            ok = rep < (6 if level < 10 else 5)
            results.append((robustness.Job("velocity_noise", level, rep, p, off, 0), ok))
    for c in ("torque_noise", "torque_response", "delay"):
        results += [(robustness.Job(c, level, 0, p, off, 0), True) for level in range(21)]
    results += [(robustness.Job("model:m2", level, 0, p, off, 0), level < 7) for level in range(21)]
    results += [(robustness.Job("perturbations", k, 0, p, off, k), k < 25) for k in range(50)]
    s = robustness.summarise(results, 1.0)
    assert s["criteria"]["velocity_noise"]["score"] == pytest.approx(10 / 21)
    assert s["criteria"]["model"]["score"] == pytest.approx(7 / 21)
    assert s["criteria"]["perturbations"]["score"] == 0.5
    assert s["score"] == pytest.approx(np.mean([10 / 21, 1, 1, 1, 7 / 21, 0.5]))


def test_episode_success_needs_the_final_state_near_the_top():
    p = get_robot("pendubot").load_params("model_1.1")
    calm = robustness.Job("delay", 0, 0, p, Imperfections(), 0)
    assert robustness.run_episode("pendubot", PendubotEnergyLQR(), calm)
    hopeless = robustness.Job("torque_response", 0, 0, p, dataclasses.replace(Imperfections(), torque_response=0.05), 0)
    assert not robustness.run_episode("pendubot", PendubotEnergyLQR(), hopeless)


def test_benchmark_refuses_the_single_pendulum():
    with pytest.raises(ValueError, match="double pendulum"):
        robustness.run(lambda: None, "pendulum")


class _WindFirst(PendubotEnergyLQR):
    """The baseline after 0.2 s of full shoulder torque: it reaches the top, past the 540 degree stop."""

    def reset(self) -> None:
        super().reset()
        self.ticks = 0

    def act(self, obs: np.ndarray) -> np.ndarray:
        self.ticks += 1
        return np.array([1.0]) if self.ticks <= 100 else super().act(obs)


def test_benchmark_episodes_have_no_stops_and_score_the_final_state():
    # The competition's simulator has no joint stops: winding past 540 degrees is no failure there.
    job = robustness.Job("model:m2", 0, 0, get_robot("pendubot").load_params("model_1.1"), Imperfections(), 0)
    assert robustness.run_episode("pendubot", _WindFirst(), job)
