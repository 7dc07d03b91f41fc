"""Calibration wall time against the number of samples fitted, and the cost of its rollouts.

Part 1: `calibration.identify.calibrate` fits elbow.m, shoulder.b, shoulder.cf and the delay to
simulated pendubot recordings (100 Hz, known truth) of growing length; wall
time, rollout batches and time per batch against samples.

Part 2, the peer: one rollout batch (every k-step window of a 10 s
recording) through s2r's predictor, which steps `sim.plant.Plant` from
Python so that Coulomb friction is the spec's cf atan(100 dq), against the
same windows through `mujoco.rollout` (C, one thread), which can only apply
precomputed forces. Model 1.1 (no friction) so that both compute the same
thing; the bench checks they agree. Rounds alternate and the figure is the
median ratio, so a noisy machine slows both alike.

    pip install -e ".[dev]"
    python bench/calibration_time.py [--rounds 7] [--out bench/results/calibration_time.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import statistics
import sys
import time
from pathlib import Path

import mujoco
import numpy as np
from mujoco import rollout

from calibration.identify import calibrate
from calibration.predict import PHYSICS_DT, Predictor, applied_torque, horizon_samples, window_starts
from calibration.recording import simulated_recording
from sim.robots import get_robot

ROBOT = get_robot("pendubot")
NOMINAL = ROBOT.load_params("model_1.0")


def excitation(t: float) -> np.ndarray:
    """Shoulder torque, N m: swings the pendubot through much of its range."""
    return np.array([2.0 * np.sin(2 * np.pi * 0.6 * t) + 1.0 * np.sin(2 * np.pi * 1.7 * t + 1.0), 0.0])


def fit_times(seconds: list[float]) -> list[dict]:
    truth = NOMINAL.replace(m=(NOMINAL.m[0], NOMINAL.m[1] * 1.1), b=(0.05, NOMINAL.b[1]), cf=(0.25, NOMINAL.cf[1]))
    rows = []
    for s in seconds:
        rec = simulated_recording(ROBOT, truth, excitation, s, delay_s=0.02, velocity_noise=0.05)
        cal = calibrate(ROBOT, NOMINAL, [rec], ["elbow.m", "shoulder.b", "shoulder.cf", "delay"], start_delay_s=0.005)
        rows.append(
            {
                "samples": len(rec.T),
                "seconds_of_data": s,
                "wall_s": cal.wall_s,
                "rollout_batches": cal.evaluations,
                "ms_per_batch": 1000 * cal.wall_s / cal.evaluations,
                "m2_error_pct": 100 * abs(cal.params.m[1] / truth.m[1] - 1),
                "delay_error_ms": 1000 * abs(cal.delay_s - 0.02),
            }
        )
        print(f"{len(rec.T):6d} samples: {cal.wall_s:6.2f} s, {cal.evaluations} batches", file=sys.stderr)
    return rows


def rollout_peer(rounds: int) -> dict:
    params = ROBOT.load_params("model_1.1")
    rec = simulated_recording(ROBOT, params, excitation, 10.0)
    k = horizon_samples(rec, 0.3)
    starts = window_starts(rec, k, 0.15)
    predictor = Predictor(ROBOT, params)

    model = ROBOT.build_model(params)
    data = mujoco.MjData(model)
    steps = int(np.ceil((rec.T[k] - rec.T[0]) / PHYSICS_DT - 1e-9))
    spec = mujoco.mjtState.mjSTATE_FULLPHYSICS.value
    initial = np.empty((len(starts), mujoco.mj_stateSize(model, spec)))
    forces = np.empty((len(starts), steps, model.nv))
    for w, i in enumerate(starts):
        mujoco.mj_resetData(model, data)
        data.qpos[:], data.qvel[:] = rec.X[i, :2], rec.X[i, 2:]
        mujoco.mj_getState(model, data, initial[w], spec)
        forces[w] = applied_torque(rec, rec.T[i] + PHYSICS_DT * np.arange(steps), 0.0)

    def s2r() -> np.ndarray:
        return predictor.predict(rec, params, starts, k).predicted

    def peer() -> np.ndarray:
        state, _ = rollout.rollout(
            model, data, initial, forces, control_spec=mujoco.mjtState.mjSTATE_QFRC_APPLIED.value
        )
        return state

    # Same physics: the peer's state at the k-th sample's physics step matches the predictor's.
    state = peer()
    qpos_end = state[:, -1, 1:3]
    ours = s2r()[:, -1, :2]
    if not np.allclose(qpos_end, ours, atol=1e-9):
        raise RuntimeError("mujoco.rollout and the predictor disagree")
    times: dict[str, list[float]] = {"s2r": [], "mujoco.rollout": []}
    for _ in range(rounds):
        for name, fn in (("s2r", s2r), ("mujoco.rollout", peer)):
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    median = {name: statistics.median(v) for name, v in times.items()}
    return {
        "windows": len(starts),
        "physics_steps": len(starts) * steps,
        "median_ms": {name: 1000 * v for name, v in median.items()},
        "s2r_over_rollout": median["s2r"] / median["mujoco.rollout"],
        "agree_at_1e-9": bool(np.allclose(qpos_end, ours, atol=1e-9)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "calibration_time.json")
    args = parser.parse_args()
    logging.getLogger("absl").setLevel(logging.ERROR)
    result = {
        "machine": {
            "python": platform.python_version(),
            "processor": platform.processor(),
            "mujoco": mujoco.__version__,
        },
        "fit": fit_times([2.0, 4.0, 8.0, 16.0]),
        "rollout_batch": rollout_peer(args.rounds),
    }
    print(f"{'samples':>8} {'wall s':>8} {'batches':>8} {'ms/batch':>9}")
    for row in result["fit"]:
        print(f"{row['samples']:8d} {row['wall_s']:8.2f} {row['rollout_batches']:8d} {row['ms_per_batch']:9.1f}")
    peer = result["rollout_batch"]
    print(
        f"one batch ({peer['windows']} windows, {peer['physics_steps']} physics steps): "
        f"s2r {peer['median_ms']['s2r']:.1f} ms, mujoco.rollout {peer['median_ms']['mujoco.rollout']:.1f} ms, "
        f"ratio {peer['s2r_over_rollout']:.1f}x"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
