"""The real-time loop under a fake clock: deadlines, overruns, watchdog, e-stop, safety; and the
simulated device reproducing the env exactly."""

import dataclasses
import math
import sys

import numpy as np
import pytest

from hardware.backends.sim_device import SimDevice
from hardware.clock import FakeClock
from hardware.device import Command, Device, DeviceError, Lifecycle, LifecycleError, SpecMismatchError, State
from hardware.loop import ControlLoop
from hardware.safety import EStop, Fault, SafetyConfig
from sim.env import RobotEnv
from sim.robots import get_robot
from sim.robots.spec import Channel
from sim.simulated import SimulatedRobot
from sim.tasks.swingup import SwingUp

ROBOT = get_robot("pendubot")
PARAMS = ROBOT.load_params("model_1.1")
SPEC = ROBOT.spec(PARAMS)
PERIOD_NS = 10_000_000  # 100 Hz


class MockDevice(Device):
    """Copies commands into state (for one part's unit test), with fault switches."""

    def __init__(self, clock: FakeClock, spec=SPEC):
        super().__init__(spec)
        self.clock = clock
        self.state = np.zeros(len(spec.state))
        self.seq = 0
        self.frozen = False
        self.fail_read = False
        self.written: list[np.ndarray] = []
        self.compute_ns = 0  # how long each read "takes" on the fake clock

    def _read(self) -> State:
        if self.fail_read:
            raise DeviceError("cable unplugged")
        self.clock.advance(self.compute_ns)
        if not self.frozen:
            self.seq += 1
        return State(self.clock.now_ns(), self.seq, self.state.copy())

    def _write(self, command: Command) -> Command:
        self.written.append(command.values.copy())
        return command


class ConstantPolicy:
    def __init__(self, action):
        self.action = np.asarray(action, dtype=float)

    def act(self, obs):
        return self.action


def make_loop(device, policy=None, clock=None, **safety):
    device.configure(SPEC)
    device.activate()
    return ControlLoop(
        device,
        policy or ConstantPolicy([0.0]),
        SwingUp(ROBOT, PARAMS).binding(100.0, damping=0.5),
        rate_hz=100.0,
        clock=clock or device.clock,
        safety=SafetyConfig(**safety),
    )


def test_ticks_start_on_absolute_deadlines_without_drift():
    clock = FakeClock(start_ns=123)
    device = MockDevice(clock)
    device.compute_ns = 3_000_000  # 3 ms of work per tick, well inside the period
    loop = make_loop(device)
    stats = loop.run(ticks=100)
    starts = loop.timing_ns()[:, 1]
    np.testing.assert_array_equal(starts, 123 + np.arange(100) * PERIOD_NS)
    assert stats["missed_deadlines"] == 0 and stats["jitter_us"]["max"] == 0.0
    assert stats["period_us"]["p50"] == 10_000.0


def test_an_overrun_skips_the_missed_deadlines_and_counts_them():
    clock = FakeClock()
    device = MockDevice(clock)
    loop = make_loop(device, max_missed_deadlines=100)
    original = device._read

    def slow_once():
        if device.seq == 4:  # the 5th tick takes 25 ms: deadlines at 50 and 60 ms are missed
            clock.advance(25_000_000)
        return original()

    device._read = slow_once
    stats = loop.run(ticks=8)
    deadlines = loop.timing_ns()[:, 0] // 1_000_000
    assert deadlines.tolist() == [0, 10, 20, 30, 40, 70, 80, 90]
    assert stats["missed_deadlines"] == 2 and not stats["faults"]


def test_watchdog_faults_after_exactly_k_consecutive_misses():
    clock = FakeClock()
    device = MockDevice(clock)
    device.compute_ns = 15_000_000  # every tick overruns by half a period: one deadline missed per tick
    loop = make_loop(device, max_missed_deadlines=3)
    loop.run(ticks=6)
    # Ticks are numbered by period: they run at 0, 2, 4, 6 (1, 3, 5 missed); the third miss is seen at 6.
    assert [f.tick for f in loop.faults][:1] == [6] and "3 consecutive missed deadlines" in loop.faults[0].reason


def test_stale_state_trips_the_estop_after_the_timeout():
    clock = FakeClock()
    device = MockDevice(clock)
    loop = make_loop(device, stale_timeout_s=0.025)
    original = device._read

    def freezing_read():
        device.frozen = device.seq >= 3  # the sequence stops at 3, first read at 20 ms
        return original()

    device._read = freezing_read
    loop.run(ticks=8)
    # Unchanged since 20 ms: 30 ms stale at 50 ms (tick 5) is the first reading past 25 ms.
    assert loop.faults[0].tick == 5 and "stale state: sequence 3 unchanged for over 25 ms" in loop.faults[0].reason
    assert loop.estop.tripped
    assert len(loop.faults) == 1, "a condition that lasts is one fault, not one per tick"


def test_a_frozen_sensor_is_caught_but_a_robot_at_rest_is_not():
    clock = FakeClock()
    device = MockDevice(clock)  # fresh sequence numbers every read, values never change
    device.state = np.array([0.3, -0.2, 0.5, 0.0])  # ...while saying the shoulder turns at 0.5 rad/s
    loop = make_loop(device, frozen_timeout_s=0.035)
    loop.run(ticks=8)
    # The values first seen at 0 ms are over 35 ms old at 40 ms (tick 4).
    assert [(f.tick, f.reason.split(":")[0]) for f in loop.faults] == [(4, "frozen sensor")]

    at_rest = MockDevice(FakeClock())  # hanging still, commanded nothing: identical values are right
    loop = make_loop(at_rest, frozen_timeout_s=0.035)
    loop.run(ticks=50)
    assert loop.faults == []

    pushed = MockDevice(FakeClock())  # at rest, but pushed with 1.2 N m: a live robot would move
    loop = make_loop(pushed, policy=ConstantPolicy([0.2]), frozen_timeout_s=0.035, frozen_min_command=1.0)
    loop.run(ticks=8)
    assert loop.faults and loop.faults[0].reason.startswith("frozen sensor")


def test_estop_latches_until_reset_and_commands_the_safe_state():
    clock = FakeClock()
    device = MockDevice(clock)
    loop = make_loop(device, ConstantPolicy([1.0]), max_slew_per_s=1e9)
    device.state = np.array([0.0, 0.0, 15.0, 0.0])
    loop.run(ticks=1)
    loop.estop.trip(Fault(1, "operator e-stop"))
    loop.run(ticks=2)
    # Damping, within the torque limit, reached at the robot's own rate limit (a safety config of
    # 1e9 N m/s does not raise it): 6 N m per 10 ms tick.
    np.testing.assert_allclose(device.written[-2:], [[0.0, 0.0], [-6.0, 0.0]])
    device.state = np.array([0.0, 0.0, 1.0, 2.0])  # the state is fine: still latched
    loop.run(ticks=3)
    assert loop.estop.tripped and loop.faults == []
    np.testing.assert_allclose(device.written[-1], [-0.5, 0.0])  # damping on the actuated shoulder only
    loop.estop.reset()
    loop.run(ticks=2)
    np.testing.assert_allclose(device.written[-1], [6.0, 0.0])


class Blinding:
    """Makes the MockDevice's state untrustworthy from its 5th read on, in one of several ways."""

    def __init__(self, device: MockDevice, how: str):
        self.device, self.how, self.reads = device, how, 0
        self.original = device._read

    def __call__(self) -> State:
        self.reads += 1
        if self.reads < 5 or self.how == "never":
            self.device.state[0] += 0.01  # a live sensor: the reading moves
        elif self.how == "stale":
            self.device.frozen = True  # the sequence stops: nothing new arrives
        elif self.how == "infinite velocity":
            self.device.state = np.array([0.1, 0.0, np.inf, 0.0])
        elif self.how == "out of range":
            self.device.state = np.array([10.07, 0.0, 15.0, 0.0])  # past the 9.42 rad stop
        elif self.how == "frozen sensor":
            self.device.state = np.array([0.3, 0.2, 4.2, -1.0])  # the same reading every time
        return self.original()


@pytest.mark.parametrize("how", ["stale", "infinite velocity", "out of range", "frozen sensor"])
def test_a_blind_safe_state_applies_no_torque_and_gets_there_at_the_slew_limit(how):
    """Blind (the reading cannot be trusted), the pendulum's safe state is zero torque, reached at the
    slew limit: never a damping torque computed from a stale, infinite or frozen reading."""
    clock = FakeClock()
    device = MockDevice(clock)
    device.state = np.array([0.1, 0.0, 15.0, 0.0])  # swinging fast: damping would ask for -6 N m
    device._read = Blinding(device, how)
    loop = make_loop(device, ConstantPolicy([1.0]), max_slew_per_s=200.0, stale_timeout_s=0.02, frozen_timeout_s=0.02)
    loop.run(ticks=40)
    shoulder = np.array([w[0] for w in device.written])
    assert shoulder[:4].tolist() == [2.0, 4.0, 6.0, 6.0] and loop.estop.tripped, loop.faults
    fault = loop.faults[0].tick
    after = shoulder[fault:]
    assert (np.abs(np.diff(shoulder)) <= 2.0 + 1e-12).all(), "every command, the safe state's too, is slew-limited"
    assert (np.diff(np.abs(after)) <= 0).all() and after[3:].tolist() == [0.0] * (len(after) - 3), after


def test_a_device_with_a_firmware_failsafe_is_handed_over_when_blind_and_sent_nothing_more():
    clock = FakeClock()
    device = MockDevice(clock)
    device.firmware_failsafe = "levels out, then cuts its motors"
    device.state = np.array([0.1, 0.0, 1.0, 0.0])
    device._read = Blinding(device, "stale")
    loop = make_loop(device, ConstantPolicy([1.0]), stale_timeout_s=0.02)
    loop.run(ticks=20)
    assert loop.estop.tripped and "stale state" in loop.faults[0].reason
    assert device.lifecycle is Lifecycle.FAULT  # the loop stops: the firmware has the robot now
    written = len(device.written)
    assert written <= loop.faults[0].tick, "no command after the loop went blind"
    device.deactivate()
    assert len(device.written) == written


def test_a_trusted_fault_is_not_handed_over():
    clock = FakeClock()
    device = MockDevice(clock)
    device.firmware_failsafe = "levels out, then cuts its motors"
    device.state = np.array([0.1, 0.0, 1.0, 0.0])
    loop = make_loop(device, ConstantPolicy([float("nan")]))
    loop.run(ticks=5)
    assert loop.estop.tripped and "non-finite action" in loop.faults[0].reason
    assert device.lifecycle is Lifecycle.ACTIVE and len(device.written) == 5  # the host's safe state, sent


def test_the_safe_state_damps_only_from_a_reading_it_trusts_and_is_slew_limited():
    clock = FakeClock()
    device = MockDevice(clock)
    device.state = np.array([0.1, 0.0, 15.0, 0.0])
    device._read = Blinding(device, "never")  # a live reading throughout
    policy = ConstantPolicy([1.0])
    loop = make_loop(device, policy, max_slew_per_s=200.0)
    loop.run(ticks=3)
    policy.action = np.array([np.nan])  # the policy fails; the reading is fresh and fine
    loop.run(ticks=8)
    assert "non-finite action" in loop.faults[0].reason
    assert [w[0] for w in device.written] == [2.0, 4.0, 6.0, 4.0, 2.0, 0.0, -2.0, -4.0, -6.0, -6.0, -6.0]


def test_a_failed_read_faults_and_the_device_needs_reconfiguring():
    clock = FakeClock()
    device = MockDevice(clock)
    loop = make_loop(device)
    device.fail_read = True
    stats = loop.run(ticks=5)
    assert "device read failed: cable unplugged" in stats["faults"][0]["reason"]
    assert device.lifecycle is Lifecycle.FAULT and stats["estop"]
    assert stats["ticks"] == 1  # nothing more can be sent to a faulted device: the loop stops


def test_nan_action_faults_and_never_reaches_the_device():
    clock = FakeClock()
    device = MockDevice(clock)
    loop = make_loop(device, ConstantPolicy([np.nan]))
    stats = loop.run(ticks=2)
    assert "non-finite action" in stats["faults"][0]["reason"]
    assert all(np.all(np.isfinite(w)) for w in device.written)


def test_an_action_of_the_wrong_size_faults_instead_of_crashing_the_tick():
    clock = FakeClock()
    device = MockDevice(clock)
    stats = make_loop(device, ConstantPolicy([0.5, 0.5])).run(ticks=3)
    assert "policy returned an action of shape (2,); the robot takes 1" in stats["faults"][0]["reason"]
    assert all(w[0] == 0.0 for w in device.written)


def test_channels_are_mapped_by_name_and_extra_state_channels_ignored():
    """A device that lists the elbow first and has a temperature channel: the loop still sees and
    sends spec order, and the passive elbow never gets the shoulder's torque."""
    shoulder_p, elbow_p, shoulder_v, elbow_v = SPEC.state
    temperature = Channel("board.temperature", "degC", -40.0, 125.0)
    provided = SPEC.__class__(
        "board", (elbow_p, shoulder_p, temperature, elbow_v, shoulder_v), SPEC.command[::-1], 100.0, 500.0
    )
    clock = FakeClock()
    device = MockDevice(clock, spec=provided)
    device.state = np.array([0.2, 3.0, 31.5, -1.0, 0.5])  # elbow, shoulder, temperature, elbow, shoulder
    loop = make_loop(device, ConstantPolicy([1.0]), max_slew_per_s=1e9)
    assert device.channels.ignored == ("board.temperature",)
    loop.run(ticks=2)
    np.testing.assert_array_equal(device.read().values, [3.0, 0.2, 0.5, -1.0])
    np.testing.assert_array_equal(device.written[-1], [0.0, 6.0])  # the device's order: elbow, shoulder
    extra = SPEC.__class__("board", SPEC.state, SPEC.command + (Channel("wrist.effort", "N m", -1, 1),), 100.0, 500.0)
    with pytest.raises(SpecMismatchError, match="wrist.effort .* refusing to drive an actuator"):
        MockDevice(FakeClock(), spec=extra).configure(SPEC)
    twice = SPEC.__class__("board", SPEC.state + SPEC.state[:1], SPEC.command, 100.0, 500.0)
    with pytest.raises(SpecMismatchError, match="shoulder.position twice"):
        MockDevice(FakeClock(), spec=twice).configure(SPEC)


def test_policy_exception_faults_instead_of_crashing():
    class Broken:
        def act(self, obs):
            raise RuntimeError("boom")

    clock = FakeClock()
    device = MockDevice(clock)
    stats = make_loop(device, Broken()).run(ticks=2)
    assert "policy failed: RuntimeError: boom" in stats["faults"][0]["reason"]


def test_commands_are_limited_and_slew_limited():
    clock = FakeClock()
    device = MockDevice(clock)
    loop = make_loop(device, ConstantPolicy([1.0]), max_slew_per_s=200.0)  # 2 N m per 10 ms tick
    loop.run(ticks=4)
    assert [w[0] for w in device.written] == [2.0, 4.0, 6.0, 6.0]
    assert all(w[1] == 0.0 for w in device.written)  # passive elbow: no friction compensation asked for


def test_leaving_the_envelope_faults():
    clock = FakeClock()
    device = MockDevice(clock)
    loop = make_loop(device)
    device.state = np.array([0.0, 0.0, 25.0, 0.0])
    stats = loop.run(ticks=1)
    assert "20.0 rad/s" in stats["faults"][0]["reason"]


def test_lifecycle_guards_say_what_to_do():
    device = MockDevice(FakeClock())
    with pytest.raises(LifecycleError, match="call activate\\(\\) first"):
        device.read()
    with pytest.raises(LifecycleError, match="call configure\\(\\) first"):
        device.activate()
    device.configure(SPEC)
    device.activate()
    device.fail_read = True
    with pytest.raises(DeviceError):
        device.read()
    assert device.lifecycle is Lifecycle.FAULT
    device.configure(SPEC)  # recovers from FAULT without a restart
    device.activate()
    device.fail_read = False
    assert device.read().seq == 1
    device.close()
    device.close()
    assert device.lifecycle is Lifecycle.FINALIZED


def test_configure_refuses_a_device_that_does_not_match_the_spec():
    wrong_unit = SPEC.__class__(
        SPEC.name,
        (Channel("shoulder.position", "deg", -540, 540),) + SPEC.state[1:],
        SPEC.command,
        SPEC.control_rate_hz,
        SPEC.max_control_rate_hz,
    )
    with pytest.raises(SpecMismatchError, match="unit 'deg'"):
        MockDevice(FakeClock(), spec=wrong_unit).configure(SPEC)
    missing = SPEC.__class__(SPEC.name, SPEC.state[:3], SPEC.command, 100.0, 500.0)
    with pytest.raises(SpecMismatchError, match="lacks state channel 'elbow.velocity'"):
        MockDevice(FakeClock(), spec=missing).configure(SPEC)
    weak = SPEC.__class__(
        SPEC.name, SPEC.state, (Channel("shoulder.effort", "N m", -3, 3), SPEC.command[1]), 100.0, 500.0
    )
    with pytest.raises(SpecMismatchError, match="exceed the device's"):
        MockDevice(FakeClock(), spec=weak).configure(SPEC)


def test_estop_reset_is_explicit():
    e = EStop()
    e.trip(Fault(3, "first"))
    e.trip(Fault(4, "second"))
    assert e.fault.reason == "first"
    e.reset()
    assert not e.tripped


@pytest.mark.parametrize("friction_compensation, winding", [(False, False), (True, False), (False, True)])
def test_lockstep_deploy_reproduces_the_env_episode_exactly(friction_compensation, winding):
    """Same seed, same imperfections: the loop over SimDevice and env.step see identical states,
    also when the loop, not the env, drives the passive joint's friction compensation, and
    identical observations with the joints' winding in them."""
    from policies.baselines import PendubotEnergyLQR

    options = dict(params="model_1.0", imperfections=True, randomization="double_pendulum", t_final=10.0)
    env = RobotEnv(
        "pendubot",
        control_rate_hz=500,
        action_history=0,
        observe_winding=winding,
        friction_compensation=friction_compensation,
        **options,
    )
    policy = PendubotEnergyLQR()
    obs, _ = env.reset(seed=5)
    env_obs = [obs]
    for _ in range(1000):
        obs, *_ = env.step(policy.act(obs))
        env_obs.append(obs)
    _, env_X, env_U = env.plant.trajectory()

    device = SimDevice(SimulatedRobot("pendubot", 500, **options), mode="lockstep", seed=5)
    # The env has no rate limit: the robot's (600 N m/s) would clip the swing-up's torque steps.
    unlimited = tuple(dataclasses.replace(c, max_rate=math.inf) for c in SPEC.command)
    device.configure(dataclasses.replace(SPEC, command=unlimited))
    device.activate()
    loop_obs = []
    binding = SwingUp(
        ROBOT, ROBOT.load_params("model_1.0"), friction_compensation=friction_compensation, observe_winding=winding
    ).binding(500.0, 0.5)
    original = binding.observe

    def observe(values, past, t, memory):
        o = original(values, past, t, memory)
        loop_obs.append(o)
        return o

    loop = ControlLoop(
        device,
        PendubotEnergyLQR(),
        dataclasses.replace(binding, observe=observe),
        rate_hz=500.0,
        clock=FakeClock(),
        safety=SafetyConfig(max_slew_per_s=math.inf),
        action_history=0,
    )
    stats = loop.run(ticks=1001)
    _, X, U = device.plant.env.plant.trajectory()
    np.testing.assert_array_equal(np.array(loop_obs), np.array(env_obs))
    np.testing.assert_array_equal(X[: len(env_X)], env_X)
    np.testing.assert_array_equal(U[: len(env_U) - 1], env_U[:-1])
    assert not stats["faults"]
    assert (np.abs(U[:, 1]).max() > 0.1) == friction_compensation  # the passive elbow's motor
    assert len(loop_obs[0]) == (8 if winding else 6)


def test_friction_compensation_cancels_the_modelled_friction_within_the_passive_allowance():
    params = ROBOT.load_params("model_1.0")
    binding = SwingUp(ROBOT, params, friction_compensation=True).binding(100.0, 0.5)
    slow = np.array([np.pi, 0.0, 0.0, 0.5])
    # cf2 atan(50) + b2 0.5 on the elbow; the shoulder keeps the action's torque
    np.testing.assert_allclose(binding.to_command(np.array([0.5]), slow), [3.0, 0.12 * np.arctan(50.0) + 0.0005])
    sticky = SwingUp(ROBOT, dataclasses.replace(params, cf=(0.16, 0.8)), friction_compensation=True).binding(100.0, 0.5)
    assert sticky.to_command(np.zeros(1), -slow)[1] == -0.5  # never beyond the passive motor's allowance
    assert ROBOT.spec(params).command[1].high == 0.5
    without = SwingUp(ROBOT, params).binding(100.0, 0.5)
    assert without.to_command(np.array([0.5]), slow)[1] == 0.0


def test_realtime_settings_fail_soft_with_a_warning():
    import os

    from hardware.loop import apply_realtime_settings

    before = os.sched_getaffinity(0)
    warnings = apply_realtime_settings(priority=10_000, cpus={10_000})  # neither exists
    assert any("SCHED_FIFO" in w for w in warnings) and any("affinity" in w for w in warnings)
    assert os.sched_getaffinity(0) == before and os.sched_getscheduler(0) == os.SCHED_OTHER
    import gc

    assert gc.get_freeze_count() > 0  # the one setting that always applies
    gc.unfreeze()


def test_an_interrupt_inside_a_tick_leaves_the_statistics_consistent():
    class InterruptedAtThird:
        calls = 0

        def act(self, obs):
            self.calls += 1
            if self.calls == 3:
                raise KeyboardInterrupt
            return np.zeros(1)

    clock = FakeClock()
    loop = make_loop(MockDevice(clock), InterruptedAtThird())
    with pytest.raises(KeyboardInterrupt):
        loop.run(ticks=10)
    stats = loop.stats()
    assert stats["ticks"] == 2 and stats["period_us"]["p50"] == 10_000.0


def test_an_interrupt_on_any_line_of_the_loop_leaves_the_statistics_consistent():
    # Ctrl-C raises wherever the loop happens to be; raise it on each line of run() in turn.
    code = ControlLoop.run.__code__
    lines = sorted({line for _, _, line in code.co_lines() if line is not None and line > code.co_firstlineno})
    for target in lines:
        hits = []

        def trace(frame, event, arg, target=target, hits=hits):
            if frame.f_code is not code:
                return None
            if event == "line" and frame.f_lineno == target:
                hits.append(target)
                if len(hits) == 3:
                    raise KeyboardInterrupt
            return trace

        loop = make_loop(MockDevice(FakeClock()))
        sys.settrace(trace)
        try:
            loop.run(ticks=5)
        except KeyboardInterrupt:
            pass
        finally:
            sys.settrace(None)
        stats = loop.stats()
        assert loop.timing_ns().shape == (stats["ticks"], 3), f"line {target}"


def test_deploy_collects_garbage_before_it_arms_the_device():
    """A full collection takes about 0.1 s with the deploy's libraries loaded: inside the window
    between arming and the first command it would trip a firmware's 100 ms host timeout."""
    import gc

    from hardware.apps.deploy import DeployOptions, deploy
    from policies.baselines import PendubotEnergyLQR

    class Recording(SimDevice):
        def _on_activate(self):
            self.frozen_at_arm = gc.get_freeze_count()
            super()._on_activate()

    gc.unfreeze()
    device = Recording(SimulatedRobot("pendubot", 500, params="model_1.1"), mode="lockstep")
    options = DeployOptions("pendubot", 500.0, duration_s=0.1, mode="lockstep", params="model_1.1", action_history=0)
    try:
        deploy(PendubotEnergyLQR(), options, device=device)
    finally:
        gc.unfreeze()
    assert device.frozen_at_arm > 0
