"""The shipped policies: each is the export of a committed run, trained by the command it names."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import numpy as np
import pytest

from policies import runtime

ROOT = Path(__file__).resolve().parent.parent
NAMES = sorted(p.stem for p in (ROOT / "policies" / "zoo").glob("*.json"))


def training_command(policy: runtime.OnnxPolicy) -> tuple[list[str], Path]:
    """The shipped policy's `s2r train` command, split, and the run directory it wrote."""
    argv = shlex.split(policy.meta["provenance"]["command"])
    return argv, ROOT / argv[argv.index("--out") + 1]


def test_each_robot_of_the_pendulum_family_has_a_shipped_policy():
    assert NAMES == ["acrobot", "pendubot", "pendulum"]


@pytest.mark.parametrize("name", NAMES)
def test_a_shipped_policy_names_the_run_and_command_that_trained_it(name):
    policy = runtime.load_policy(f"zoo:{name}")
    argv, run = training_command(policy)
    assert argv[:3] == ["s2r", "train", name]
    assert json.loads((run / "run.json").read_text())["command"] == policy.meta["provenance"]["command"]
    # The model card gives the same command, less the --no-progress the shipped runs were started with.
    card = " ".join((ROOT / "policies" / "zoo" / "README.md").read_text().split())
    assert " ".join(a for a in argv if a != "--no-progress") in card


@pytest.mark.parametrize("name", NAMES)
def test_a_shipped_policy_acts_as_its_runs_checkpoint_exported_now(name, tmp_path):
    pytest.importorskip("torch", reason="exporting needs the train extra")
    from policies.export import export

    shipped = runtime.load_policy(f"zoo:{name}")
    _, run = training_command(shipped)
    again = runtime.load_policy(export(run, tmp_path / name, checkpoint=shipped.meta["provenance"]["checkpoint"]))
    # Artifacts written before the winding existed leave it out: it is off in them.
    assert again.meta["observation"] == {"winding": False, **shipped.meta["observation"]}
    assert {k: again.meta["env"][k] for k in shipped.meta["env"]} == shipped.meta["env"]
    rng = np.random.default_rng(0)
    for obs in rng.uniform(-1.0, 1.0, (200, shipped.meta["observation"]["size"])).astype(np.float32):
        np.testing.assert_allclose(again.act(obs), shipped.act(obs), atol=1e-5)
