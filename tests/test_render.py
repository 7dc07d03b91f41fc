"""Pictures: the envs render offscreen (render_mode="rgb_array"), `s2r rollout` writes a video and a
PNG of its episode, `s2r deploy` and `s2r log plot` a PNG with the faults marked."""

import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest

import sim  # noqa: F401 (registers the envs)
from s2r.cli import main

PIL = pytest.importorskip("PIL.Image", reason="videos need the render extra (pillow, imageio)")
pytest.importorskip("matplotlib", reason="plots need matplotlib (the calibrate extra)")


def _renders() -> str | None:
    """Why offscreen rendering does not work here, or None if it does."""
    env = gym.make("s2r/Pendulum-v0", render_mode="rgb_array")
    env.reset(seed=0)
    try:
        env.render()
    except RuntimeError as exc:
        return str(exc)
    finally:
        env.close()
    return None


@pytest.fixture(scope="module")
def offscreen():
    why = _renders()
    if why:
        pytest.skip(f"no offscreen OpenGL on this machine: {why}")


def test_the_env_renders_what_its_plant_does(offscreen):
    env = gym.make("s2r/Pendubot-v0", render_mode="rgb_array")
    env.reset(seed=0)
    hanging = env.render()
    for _ in range(50):
        env.step(np.ones(1))
    swinging = env.render()
    env.close()
    assert hanging.shape == (480, 640, 3) and hanging.dtype == np.uint8
    assert np.abs(hanging.astype(int) - swinging).sum() > 1000, "the picture follows the robot"
    plain = gym.make("s2r/Pendubot-v0")
    plain.reset(seed=0)
    assert plain.render() is None  # no render mode: nothing drawn
    from sim.env import RobotEnv

    with pytest.raises(ValueError, match="render_mode 'ansi'"):
        RobotEnv("pendubot", render_mode="ansi")


def test_the_envs_are_made_without_importing_sim_first():
    code = "import gymnasium as gym; e = gym.make('sim:s2r/Acrobot-v0'); print(e.reset(seed=0)[0].shape)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "(7,)", out.stderr


@pytest.mark.parametrize("suffix", [".gif", ".mp4"])
def test_rollout_writes_a_video_and_a_plot_of_its_episode(offscreen, tmp_path, capsys, suffix):
    video, plot = tmp_path / f"swingup{suffix}", tmp_path / "swingup.png"
    assert main(["rollout", "--controller", "baseline", "--video", str(video), "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    assert f"video written to {video}" in out and f"plot written to {plot}" in out
    assert PIL.open(plot).size == (990, 770)
    if suffix == ".gif":
        gif = PIL.open(video)
        durations = []
        for k in range(gif.n_frames):  # identical frames (the top held still) are merged, their times added
            gif.seek(k)
            durations.append(gif.info["duration"])
        assert sum(durations) == 251 * 40, "10 s at 25 frames a second"
    else:
        import imageio.v2 as imageio

        frames = imageio.mimread(video, memtest=False)
        assert len(frames) == 251 and frames[0].shape == (480, 640, 3)


def _red(path) -> int:
    """Red pixels (the faults' colour) in a PNG."""
    r, g, b = np.moveaxis(np.asarray(PIL.open(path).convert("RGB")).astype(int), 2, 0)
    return int(((r > 150) & (g < 110) & (b < 110)).sum())


def test_deploy_and_log_plot_write_the_run_with_its_faults_marked(tmp_path, capsys):
    from test_log import PENDUBOT_SPEC, record

    from hardware.apps.log import RunLog
    from hardware.safety import Fault

    deployed, log, faulty = tmp_path / "deploy.png", tmp_path / "run.mcap", tmp_path / "faulty.png"
    deploy = ["deploy", "--policy", "baseline", "--lockstep", "--params", "model_1.1", "--no-imperfections"]
    deploy += ["--log", str(log)]
    assert main([*deploy, "--plot", str(deployed)]) == 0
    assert f"plot written to {deployed}" in capsys.readouterr().out and PIL.open(deployed).size == (990, 770)
    assert _red(deployed) == 0, "no fault, no red"
    run = RunLog(tmp_path / "faulty.mcap", PENDUBOT_SPEC, {"run": {"robot": "pendubot"}})
    for k in range(500):
        run.on_tick(record(k, Fault(k, "stale state: sequence 300 unchanged for over 50 ms") if k == 300 else None))
    run.close()
    assert main(["log", "plot", str(tmp_path / "faulty.mcap"), "--out", str(faulty), "--json"]) == 0
    assert '"faults": 1' in capsys.readouterr().out
    assert _red(faulty) > 500, "the fault is a red line across the three plots"
