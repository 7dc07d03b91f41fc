"""Write bench/README.md from bench/results/*.json, so the figures it states are the ones measured.

python bench/readme.py           # rewrite bench/README.md
python bench/readme.py --check   # exit 1 if bench/README.md is not what the results say
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).parent
RESULTS = HERE / "results"


def _load(name: str) -> dict:
    return json.loads((RESULTS / f"{name}.json").read_text())


def _env_throughput() -> str:
    r = _load("env_throughput")
    s, ratio = r["steps_per_s"], r["ratio_per_round"]
    return f"""## Environment throughput

`python bench/env_throughput.py` (needs `pip install -e ".[bench]"`) steps {r["s2r_env"]} and the
peer, {r["peer_env"]}, both at {r["physics_dt_s"]} s RK4 physics and {1 / r["control_dt_s"]:.0f} Hz
control, alternating {r["rounds"]} rounds of {r["steps_per_round"]:,} steps in one process.

| env | steps/s | us/step |
|---|---|---|
| s2r | {s["s2r"]:,.0f} | {r["us_per_step"]["s2r"]:.1f} |
| dm_control | {s["dm_control"]:,.0f} | {r["us_per_step"]["dm_control"]:.1f} |
| five bare `mj_step` calls | {s["raw_mj_step_x5"]:,.0f} | {r["us_per_step"]["raw_mj_step_x5"]:.1f} |

s2r runs at **{r["ratio_s2r_over_dm_control"]:.2f}x dm_control** (per round {ratio["min"]:.2f}x to
{ratio["max"]:.2f}x). The imperfections act per physics step as the robustness benchmark defines them,
so the env drives MuJoCo one physics step at a time from Python.
"""


def _policy_latency() -> str:
    r = _load("policy_latency")
    lat, ratio, train = r["latency"], r["ratio_over_runtime_p50"], r["training_env_steps_per_s"]
    rows = [
        ("s2r deploy runtime (onnxruntime)", "runtime"),
        ("the runtime on SB3's straight deterministic graph", "runtime_sb3_graph"),
        ("torch forward", "torch"),
        ("SB3 `predict`", "sb3_predict"),
    ]
    table = "\n".join(
        f"| {label} | {lat[key]['p50_us']:.1f} | {lat[key]['p99_us']:.1f} | "
        + ("1.0x" if key == "runtime" else f"{ratio[key]:.1f}x")
        + " |"
        for label, key in rows
    )
    return f"""## Policy latency

`python bench/policy_latency.py`: one observation at a time through a {r["policy"]},
{r["calls"]:,} calls each.

| path | p50 us | p99 us | p50 / runtime's |
|---|---|---|---|
{table}

The runtime is **{ratio["sb3_predict"]:.1f}x faster than SB3 `predict`** at p50. Training throughput on
`s2r/Pendubot-v0` with its imperfections: PPO {train["ppo"]:.0f}, SAC {train["sac"]:.0f}, TD3
{train["td3"]:.0f} env steps/s.
"""


def _loop_timing() -> str:
    r = _load("loop_timing")
    o, j, ratio = r["overhead_us"], r["jitter_us"], r["ratio_naive_over_s2r_p99_jitter"]
    return f"""## Loop timing

`python bench/loop_timing.py` ({r["policy"]} on the {r["robot"]}, {r["rounds"]} rounds). A tick's own
work (read, checks, observation, ONNX policy, safety filter, write), ticks back to back:

| device | p50 us | p99 us |
|---|---|---|
| echo, no log | {o["echo_no_log"]["p50"]:.0f} | {o["echo_no_log"]["p99"]:.0f} |
| echo, MCAP log on | {o["echo"]["p50"]:.0f} | {o["echo"]["p99"]:.0f} |
| simulated robot in lock-step (physics included) | {o["sim_lockstep"]["p50"]:.0f} | {o["sim_lockstep"]["p99"]:.0f} |

Real-time jitter (tick start - deadline), s2r's loop against a `time.sleep(period)` loop with the same
work in the same run:

| rate | s2r p99 us | sleep loop p99 us | ratio |
|---|---|---|---|
| 500 Hz | {j["500Hz"]["s2r"]["p99"]:.1f} | {j["500Hz"]["naive_sleep"]["p99"]:.0f} | **{ratio["500Hz"]:.0f}x lower** |
| 1 kHz | {j["1000Hz"]["s2r"]["p99"]:.1f} | {j["1000Hz"]["naive_sleep"]["p99"]:.0f} | **{ratio["1000Hz"]:.0f}x lower** |
"""


def _serial_latency() -> str:
    r = _load("serial_latency")
    rt, rates = r["round_trip_us"], r["loop_rates"]
    rows = "\n".join(
        f"| {hz} Hz | {v['missed_deadlines']} | {len(v['faults'])} | {v['jitter_us']['p99']:.0f} |"
        for hz, v in rates.items()
    )
    ours, raw = rt["s2r_protocol_via_emulator"], rt["raw_pty_echo"]
    return f"""## Serial latency

`python bench/serial_latency.py` (the emulator in its own process on a pseudo-terminal, {r["samples"]:,}
samples): a command's round trip through the s2r protocol p50 {ours["p50"]:.0f} us / p99
{ours["p99"]:,.0f} us, against a raw pty echo p50 {raw["p50"]:.0f} / p99 {raw["p99"]:.0f} us measured
alternately in the same run: **{r["ratio_p50"]:.1f}x the bare transport at p50, {r["ratio_p99"]:.1f}x at
p99**. The pendubot's LQR over serial, {r["seconds_per_rate"]:g} s per rate:

| rate | missed deadlines | faults | jitter p99 us |
|---|---|---|---|
{rows}
"""


def _flight_links() -> str:
    r = _load("flight_links")
    names = {"msp": "MSP (pty)", "crtp": "CRTP (cflib, UDP)", "ros2": "ROS 2 (Cyclone DDS)"}
    bare = {"msp": "raw pty echo", "crtp": "raw UDP echo", "ros2": "raw UDP echo"}
    rows, rates = [], []
    for link, v in r["links"].items():
        ours, peer = v["round_trip_us"]["link"], v["round_trip_us"]["bare_transport"]
        rows.append(
            f"| {names[link]} | {ours['p50']:.0f} / {ours['p99']:,.0f} | {bare[link]} {peer['p50']:.0f} / "
            f"{peer['p99']:,.0f} | **{v['ratio_p50']:.1f}x** / {v['ratio_p99']:.1f}x |"
        )
        cells = " | ".join(f"{x['missed_deadlines']} / {len(x['faults'])}" for x in v["loop_rates"].values())
        rates.append(f"| {names[link]} | {cells} |")
    hz = list(next(iter(r["links"].values()))["loop_rates"])
    return f"""## Quadrotor links

`python bench/flight_links.py` ({r["samples"]:,} samples a link, each emulator in a process of its own):
a request's round trip through each link's stack (an MSP request and reply; a CRTP echo through cflib;
a Twist through s2r's DDS transport to an echo participant and back) against its bare transport's echo,
measured alternately in the same run, us p50 / p99:

| link | round trip | bare transport | ratio p50 / p99 |
|---|---|---|---|
{chr(10).join(rows)}

The geometric baseline (rates level) flying each emulated vehicle, {r["seconds_per_rate"]:g} s per rate,
missed deadlines / faults:

| link | {" | ".join(f"{h} Hz" for h in hz)} |
|---|{"---|" * len(hz)}
{chr(10).join(rates)}
"""


def _calibration_time() -> str:
    r = _load("calibration_time")
    fits = "\n".join(
        f"| {f['samples']:,} | {f['wall_s']:.1f} | {f['rollout_batches']} | {f['ms_per_batch']:.0f} |" for f in r["fit"]
    )
    b = r["rollout_batch"]
    return f"""## Calibration time

`python bench/calibration_time.py` (known-truth pendubot recordings at 100 Hz; fitting m2, b1, cf1 and
the delay):

| samples | wall s | rollout batches | ms per batch |
|---|---|---|---|
{fits}

One batch of k-step windows ({b["windows"]} windows, {b["physics_steps"]:,} physics steps) through s2r's
predictor, which steps the plant from Python so that Coulomb friction is the spec's cf atan(100 dq),
against the same windows through `mujoco.rollout` on the frictionless model, where both compute the same
states: {b["median_ms"]["s2r"]:.0f} against {b["median_ms"]["mujoco.rollout"]:.0f} ms,
**{b["s2r_over_rollout"]:.1f}x mujoco.rollout**.
"""


def _quadrotor_env() -> str:
    r = _load("quadrotor_env")
    s, ratio, a = r["steps_per_s"], r["ratio_per_round"], r["agreement"]
    return f"""## Quadrotor environment throughput

`python bench/quadrotor_env.py` steps {r["s2r_env"]} and the peer, {r["peer_env"]}, at
{1 / r["control_dt_s"]:.0f} Hz control with resets ({r["s2r_resets"]} in s2r's episodes), alternating
{r["rounds"]} rounds of {r["steps_per_round"]:,} steps in one process.

| env | control steps/s | us/step |
|---|---|---|
| s2r | {s["s2r"]:,.0f} | {r["us_per_step"]["s2r"]:.1f} |
| l2f | {s["l2f"]:,.0f} | {r["us_per_step"]["l2f"]:.1f} |

l2f runs at **{r["ratio_l2f_over_s2r"]:.1f}x s2r** (per round {ratio["min"]:.1f}x to {ratio["max"]:.1f}x):
one C++ RK4 step per control step against five MuJoCo steps driven from Python, with the rotor model,
the imperfections and the observation computed per step in Python.

From the same states (l2f's own start distribution) and rotor commands, on l2f's default vehicle, over
1 s ({r["agreement_episodes"]} episodes), the worst differences from l2f are
{a["closed_form_position_m"] * 1e3:.2f} mm and {a["closed_form_rates"]:.1e} rad/s for s2r's closed-form
model (`sim/dynamics/quadrotor.py`, the same 0.01 s RK4 step) and {a["mujoco_position_m"] * 1e3:.2f} mm and
{a["mujoco_rates"]:.1e} rad/s for its MuJoCo plant. l2f integrates with its J_inv, which in its defaults
is not the inverse of its J (up to 6% off); the comparison uses the inertia 1 / J_inv.
"""


def _training_speed() -> str:
    r = _load("training_speed")
    thresholds = r["thresholds"]
    rows = "\n".join(
        f"| {robot} | {t['steps_per_s']['dummy']:,.0f} ({t['envs']['dummy']}) | "
        f"{t['steps_per_s']['subproc']:,.0f} ({t['envs']['subproc']}) | {t['steps_per_s']['batched']:,.0f} "
        f"({t['envs']['batched']}) | {t['ratio_batched_over_dummy']:.0f}x | {t['ratio_batched_over_subproc']:.0f}x |"
        for robot, t in r["env_throughput"].items()
    )
    ppo = r["ppo_end_to_end"]
    learners = ", ".join(
        f"{u['algo'].upper() if u['algo'] == 'sac' else 'CrossQ'} {u['gradient_steps_per_s']:.0f} ({u['config']})"
        for u in r["off_policy_updates"]
    )
    per_env, batched = ppo["per_env"], ppo["batched"]
    curves = "\n".join(
        f"| {c['label']} | "
        + " | ".join("-" if c["time_to"][str(t)] is None else f"{c['time_to'][str(t)]:.0f}" for t in thresholds)
        + " |"
        for c in r["time_to_target"]
    )
    return f"""## Training speed

`python bench/training_speed.py` steps each robot under its training conditions (default
imperfections and randomisation) with random actions on the batched path (`sim.batched`) and on the
MuJoCo env under SB3's DummyVecEnv and SubprocVecEnv (one process per core), alternating
{r["rounds"]} rounds in one process; env steps/s (envs):

| robot | MuJoCo, DummyVecEnv | MuJoCo, SubprocVecEnv | batched | batched / Dummy | batched / Subproc |
|---|---|---|---|---|---|
{rows}

PPO on the pendubot end to end, each path with its shipped config: {per_env["config"]}
{per_env["env_steps_per_s"]:,.0f} env steps/s ({per_env["n_envs"]} MuJoCo envs), {batched["config"]}
{batched["env_steps_per_s"]:,.0f} ({batched["n_envs"]} batched): **{ppo["ratio_batched_over_per_env"]:.1f}x**.
With the batch the learner takes {batched["update_s"] / batched["wall_s"]:.0%} of the time
({batched["learner_samples_per_s"]:,.0f} samples/s through its epochs, {batched["learner_minibatches_per_s"]:.1f}
minibatches of {batched["batch_size"]:,} per second). The off-policy learners' gradient steps/s with
the pendulum's configs: {learners}; at one gradient step per env step they cannot use the batch's
throughput.

Time to target: wall time (s, evaluations included) until an evaluation reaches each success rate,
per run (`bench/results/training_speed.png` draws the curves):

| run | {" | ".join(f"{t:.0%}" for t in thresholds)} |
|---|{"---|" * len(thresholds)}
{curves}
"""


def render() -> str:
    sections = [
        _env_throughput(),
        _training_speed(),
        _quadrotor_env(),
        _policy_latency(),
        _loop_timing(),
        _serial_latency(),
        _flight_links(),
        _calibration_time(),
    ]
    head = """# Benchmarks

Each benchmark measures s2r beside a peer in one run and writes its figures to `bench/results/`; this
page is generated from those files (`python bench/readme.py`), so what it says is what was measured.
The machine is a shared 2-core VM: absolute figures move with its load, the ratios much less.
"""
    return "\n".join([head, *sections])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    text, path = render(), HERE / "README.md"
    if args.check:
        if not path.exists() or path.read_text() != text:
            print("bench/README.md does not match bench/results/: run python bench/readme.py", file=sys.stderr)
            return 1
        return 0
    path.write_text(text)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
