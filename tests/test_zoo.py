"""The shipped policies: each names the config, command and commit that trained it, and its model card's
figures are the evaluation measured on it."""

from __future__ import annotations

import dataclasses
import json
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from policies import runtime

ROOT = Path(__file__).resolve().parent.parent
ZOO = ROOT / "policies" / "zoo"
NAMES = sorted(p.stem for p in ZOO.glob("*.json"))
CARD = (ZOO / "README.md").read_text()


def card_section(name: str) -> str:
    """The model card's section on zoo:NAME, whitespace folded."""
    match = re.search(rf"^## zoo:{re.escape(name)}\n(.*?)(?=^## |\Z)", CARD, re.M | re.S)
    assert match, f"policies/zoo/README.md has no section '## zoo:{name}'"
    return " ".join(match.group(1).split())


def training_command(name: str) -> tuple[runtime.OnnxPolicy, list[str]]:
    policy = runtime.load_policy(f"zoo:{name}")
    return policy, shlex.split(policy.meta["provenance"]["command"])


def option(argv: list[str], flag: str) -> str | None:
    return argv[argv.index(flag) + 1] if flag in argv else None


def test_each_robot_has_a_shipped_policy():
    assert {"acrobot", "crazyflie-figure8", "crazyflie-hover", "pendubot", "pendulum"} <= set(NAMES)
    assert all((ZOO / f"{name}.onnx").exists() for name in NAMES)


def test_no_training_run_is_in_the_repository():
    # A shipped policy is its artifact and the provenance below; runs (checkpoints, logs) stay out.
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: nothing to say what the repository holds")
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    runs = [f for f in tracked.splitlines() if f.endswith((".zip", ".pkl", "run.json")) or "tfevents" in f]
    assert not runs, runs[:5]


@pytest.mark.parametrize("name", NAMES)
def test_a_shipped_policy_names_the_config_command_and_commit_that_trained_it(name):
    pytest.importorskip("stable_baselines3", reason="reading training configs needs the train extra")
    from policies.config import default_config_path, load_config

    policy, argv = training_command(name)
    provenance = policy.meta["provenance"]
    assert argv[:2] == ["s2r", "train"]
    robot = option(argv, "--robot") or argv[2]  # early commands named the robot first
    assert robot == policy.robot
    config = (
        ROOT / option(argv, "--config") if "--config" in argv else default_config_path(robot, option(argv, "--algo"))
    )
    cfg = load_config(robot, config)
    changes = {
        key: int(option(argv, flag)) for key, flag in (("n_timesteps", "--steps"), ("seed", "--seed")) if flag in argv
    }
    # The config file in the tree is still the one the policy was trained with.
    assert dataclasses.replace(cfg, **changes).as_dict() == provenance["config"]
    commit, dirty = re.fullmatch("([0-9a-f]{40})(-dirty)?", provenance["git_commit"]).groups()
    if dirty:  # its source is not all in the history: the card must say so
        assert f"trained from a working tree with changes beyond {commit[:7]}" in card_section(name)
    if (ROOT / ".git").exists():
        known = subprocess.run(["git", "cat-file", "-e", f"{commit}^{{commit}}"], cwd=ROOT)
        assert known.returncode == 0, f"commit {commit} is not in the history"
    # The model card gives the same command, less the --no-progress of a background run.
    assert " ".join(a for a in argv if a != "--no-progress") in card_section(name)


@pytest.mark.parametrize("name", NAMES)
def test_a_shipped_policys_card_states_the_evaluation_measured_on_it(name):
    policy = runtime.load_policy(f"zoo:{name}")
    record = json.loads((ROOT / "bench" / "results" / f"zoo_{name}_eval.json").read_text())
    assert record["target"] == f"zoo:{name}" and record["episodes"] == 100 and record["seed"] == 0
    assert record["sha256"] == policy.meta["graph"]["sha256"]  # measured on this graph, not an earlier one
    success = record["metrics"]["success"]["mean"]
    assert f"success {success:.0%}" in card_section(name)
    assert "s2r eval zoo:" + name in card_section(name)


@pytest.mark.slow
def test_zoo_pendulum_retrains_from_its_card_and_meets_its_figures(tmp_path):
    pytest.importorskip("stable_baselines3", reason="training needs the train extra")
    from s2r.cli import main

    _, argv = training_command("pendulum")
    argv[argv.index("--out") + 1] = str(tmp_path / "run")
    assert main(argv[1:]) == 0
    assert main(["export", str(tmp_path / "run")]) == 0
    out = tmp_path / "eval.json"
    assert main(["eval", str(tmp_path / "run" / "policy.json"), "--episodes", "100", "--out", str(out)]) == 0
    shipped = json.loads((ROOT / "bench" / "results" / "zoo_pendulum_eval.json").read_text())["metrics"]
    again = json.loads(out.read_text())["metrics"]
    assert again["success"]["mean"] >= shipped["success"]["mean"] - 0.05
