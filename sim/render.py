"""Videos of episodes: frames from the env's offscreen renderer (the MJCF's "front" camera), written as
a GIF (Pillow) or an MP4 (imageio with its bundled ffmpeg), at the episode's own speed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from sim.env import RobotEnv

FORMATS = (".gif", ".mp4")


def record_episode(
    act: Callable[[np.ndarray], np.ndarray], env: RobotEnv, seed: int, fps: float = 25.0
) -> tuple[list[np.ndarray], float, dict[str, Any]]:
    """Run one seeded episode of `env` (made with render_mode="rgb_array") under `act`, keeping a
    frame every 1/fps s or so. Returns the frames ((height, width, 3) uint8), the frame rate they
    were kept at (Hz: the control rate over a whole number of steps) and the final step's info."""
    every = max(1, round(env.control_rate_hz / fps))
    obs, info = env.reset(seed=seed)
    frames = [env.render()]
    steps, done = 0, False
    while not done:
        obs, _, terminated, truncated, info = env.step(act(obs))
        steps += 1
        done = terminated or truncated
        if steps % every == 0 or done:
            frames.append(env.render())
    return frames, env.control_rate_hz / every, info


def write_video(frames: list[np.ndarray], path: str | Path, fps: float) -> Path:
    """Write `frames` as a GIF or an MP4, by `path`'s suffix; returns the path."""
    path = Path(path)
    if path.suffix.lower() not in FORMATS:
        raise ValueError(f"{path}: a video is {' or '.join(FORMATS)}")
    if path.suffix.lower() == ".gif":
        from PIL import Image

        images = [Image.fromarray(f) for f in frames]
        # GIF delays are in centiseconds: a frame rate that needs finer steps plays a little slower.
        images[0].save(path, save_all=True, append_images=images[1:], duration=round(1000 / fps, -1), loop=0)
    else:
        import imageio.v2 as imageio

        imageio.mimwrite(path, frames, fps=fps, codec="libx264", quality=7, macro_block_size=16)
    return path
