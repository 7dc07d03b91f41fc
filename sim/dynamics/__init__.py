"""Reference equations of motion in closed form, one module per robot kind: what the MuJoCo models are
checked against and what the classical baselines are designed on."""
