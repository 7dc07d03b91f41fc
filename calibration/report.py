"""The sim2real gap report: one self-contained HTML page (plots inline as SVG) and its JSON.

The page is built from small sections, each a function of the report's data
(the same mapping written as JSON), so every figure on the page is a number
in the JSON.
"""

from __future__ import annotations

import html
import io
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from calibration.gap import ModelUnderTest, analyse
from calibration.predict import Prediction
from calibration.recording import Recording
from sim import strict_json
from sim.robots import Robot

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 72em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; display: block; overflow-x: auto; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td.text { text-align: left; }
.note { color: #666; font-size: 0.9em; }
figure { margin: 0 0 1.5em; }
"""


def build(
    robot: Robot,
    recordings: list[Recording],
    models: dict[str, ModelUnderTest],
    sources: dict[str, str],
    score_gap: dict[str, Any] | None = None,
    calibrations: dict[str, dict[str, Any]] | None = None,
    stride_s: float = 0.1,
    progress: Callable[[str], None] | None = None,
) -> tuple[dict[str, Any], list[dict[str, Prediction]]]:
    """Analyse every recording against every model; returns the report data and, per recording,
    each model's predictions. progress(recording name) is called as each is done."""
    data: dict[str, Any] = {
        "robot": robot.name,
        "models": {name: {"params": sources[name], "delay_s": m.delay_s} for name, m in models.items()},
        "recordings": [],
        "calibrations": calibrations or {},
        "score_gap": score_gap,
    }
    predictions = []
    for rec in recordings:
        result, preds = analyse(robot, rec, models, stride_s=stride_s)
        data["recordings"].append(result)
        predictions.append(preds)
        if progress:
            progress(rec.name)
    data["summary"] = {
        name: {
            "mean_normalised_kstep_error": float(
                np.mean([r["models"][name]["normalised_kstep_error"] for r in data["recordings"]])
            )
        }
        for name in models
    }
    return data, predictions


def write(
    out: str | Path, data: dict[str, Any], recordings: list[Recording], predictions: list[dict[str, Prediction]]
) -> tuple[Path, Path]:
    """Write report.html and report.json into directory `out`; returns their paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    json_path, html_path = out / "report.json", out / "report.html"
    json_path.write_text(strict_json.dumps(data))
    body = [_summary(data)]
    if data.get("score_gap"):
        body.append(_score_gap(data["score_gap"]))
    for name, cal in data.get("calibrations", {}).items():
        body.append(_calibration(name, cal))
    for rec, result, preds in zip(recordings, data["recordings"], predictions, strict=True):
        body.append(_recording(rec, result, preds))
    page = (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>s2r sim2real gap: {html.escape(data['robot'])}</title><style>{_STYLE}</style></head>"
        f"<body><h1>Sim2real gap: {html.escape(data['robot'])}</h1>{''.join(body)}</body></html>"
    )
    html_path.write_text(page)
    return html_path, json_path


def _table(header: list[str], rows: list[list[Any]]) -> str:
    def cell(v: Any) -> str:
        if v is None:
            return "<td>-</td>"
        if isinstance(v, float):
            return f"<td>{'inf' if math.isinf(v) else f'{v:.4g}'}</td>"
        return f"<td class='text'>{html.escape(str(v))}</td>"

    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(cell(v) for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _summary(data: dict[str, Any]) -> str:
    names = list(data["models"])
    models = [[name, m["params"], 1000 * m["delay_s"]] for name, m in data["models"].items()]
    rows = [[r["recording"], *[r["models"][n]["normalised_kstep_error"] for n in names]] for r in data["recordings"]]
    means = [data["summary"][n]["mean_normalised_kstep_error"] for n in names]
    rows.append(["mean", *means])
    rows.append([f"mean / {names[0]}", *[m / means[0] for m in means]])
    return (
        "<h2>Summary</h2>"
        + _table(["model", "parameters", "torque delay, ms"], models)
        + "<p>Normalised k-step prediction error: the simulator restarts from the measured "
        "state at windows along each run and replays the recorded torques for up to "
        f"{max(r['horizon_s'][-1] for r in data['recordings']):.2f} s; the error is the RMS over windows, "
        "horizons and state channels of (predicted - measured) / the channel's standard deviation in the run. "
        "Lower is closer to the robot.</p>" + _table(["recording", *names], rows)
    )


def _score_gap(gap: dict[str, Any]) -> str:
    rows = [[k, v] for k, v in gap.items() if isinstance(v, (int, float, str))]
    return "<h2>Task score gap</h2>" + _table(["", "value"], rows)


def _calibration(name: str, cal: dict[str, Any]) -> str:
    rows = [
        [p, e["start"], e["value"], e["ci95"], e["note"] or "identified"] for p, e in cal.get("estimates", {}).items()
    ]
    before_after = cal.get("normalised_kstep_error", {})
    return (
        f"<h2>Calibration: {html.escape(name)}</h2><p>Fitted on {html.escape(', '.join(cal.get('recordings', [])))}; "
        f"normalised k-step error on the fitted windows {before_after.get('before', float('nan')):.4g} -> "
        f"{before_after.get('after', float('nan')):.4g}.</p>"
        + _table(["parameter", "start", "estimate", "95 % CI half width", "identifiability"], rows)
    )


def _recording(rec: Recording, result: dict[str, Any], preds: dict[str, Prediction]) -> str:
    names = list(result["models"])
    rows = [
        [c, *[result["models"][n]["rmse"][c] for n in names], *[result["models"][n]["nrmse"][c] for n in names]]
        for c in result["channels"]
    ]
    header = ["channel", *[f"RMSE {n}" for n in names], *[f"NRMSE {n}" for n in names]]
    d = result["delay"]
    if d["estimate_s"] is None:
        delay = "no estimate (the actuated joints' torque or motion never changes)"
        delay_plot = ""
    else:
        delay = f"<b>{1000 * d['estimate_s']:.1f} ms</b> (peak correlation {d['peak_correlation']:.2f})"
        delay_plot = _figure(_plot_delay(d), "cross-correlation of commanded and motion-implied torque")
    return (
        f"<h2>Recording {html.escape(result['recording'])}</h2>"
        f"<p>{result['samples']} samples over {result['duration_s']:.2f} s "
        f"(every {1000 * result['sample_period_s']:.1f} ms), "
        f"{result['windows']} windows. Delay from command to response (cross-correlation): {delay}.</p>"
        + _table(header, rows)
        + '<p class="note">RMSE over all windows and horizons, in rad and rad/s; NRMSE divides by the '
        "channel's standard deviation in the run.</p>"
        + _figure(_plot_kstep(result), "k-step RMSE against prediction horizon")
        + _figure(_plot_windows(rec, preds), "measured run (black) and the predicted windows of each model")
        + delay_plot
    )


def _figure(svg: str, caption: str) -> str:
    return f"<figure>{svg}<figcaption class='note'>{html.escape(caption)}</figcaption></figure>"


def _svg(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg") :]  # drop the XML prolog and doctype: the SVG sits inside HTML


def _pyplot() -> Any:
    try:
        import matplotlib
    except ModuleNotFoundError:
        raise ModuleNotFoundError("the report's plots need matplotlib: pip install 's2r[calibrate]'") from None

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams["svg.fonttype"] = "path"  # no font files to fetch
    return plt


def _plot_kstep(result: dict[str, Any]) -> str:
    plt = _pyplot()
    channels = result["channels"]
    cols = len(channels) // 2
    fig, axes = plt.subplots(2, cols, figsize=(5 * cols, 6), squeeze=False, layout="constrained")
    h = np.asarray(result["horizon_s"])
    for i, c in enumerate(channels):
        ax = axes[i // cols][i % cols]
        for name, m in result["models"].items():
            ax.plot(h, m["kstep_rmse"][c], label=name)
        ax.set_title(c)
        ax.set_xlabel("horizon, s")
        ax.set_ylabel("RMSE, " + ("rad" if c.endswith("position") else "rad/s"))
        ax.grid(alpha=0.3)
    axes[0][0].legend()
    return _svg(fig)


def _plot_windows(rec: Recording, preds: dict[str, Prediction]) -> str:
    plt = _pyplot()
    n = rec.n
    fig, axes = plt.subplots(n, 1, figsize=(10, 2.6 * n), sharex=True, squeeze=False, layout="constrained")
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for j in range(n):
        ax = axes[j][0]
        ax.plot(rec.T, rec.X[:, j], color="black", linewidth=1.0, label="measured")
        for c, (name, pred) in enumerate(preds.items()):
            for w, start in enumerate(pred.starts[::2]):
                t = rec.T[start] + pred.horizon_s
                ax.plot(
                    t,
                    pred.predicted[2 * w, :, j],
                    color=colours[c % len(colours)],
                    linewidth=0.8,
                    label=name if w == 0 else None,
                )
        ax.set_ylabel(f"q{j + 1}, rad")
        ax.grid(alpha=0.3)
    axes[0][0].legend(loc="upper right")
    axes[-1][0].set_xlabel("time, s")
    return _svg(fig)


def _plot_delay(d: dict[str, Any]) -> str:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 2.8), layout="constrained")
    ax.plot(1000 * np.asarray(d["lags_s"]), d["correlation"], marker=".")
    ax.axvline(1000 * d["estimate_s"], color="tab:red", linestyle="--")
    ax.set_xlabel("lag, ms")
    ax.set_ylabel("correlation")
    ax.grid(alpha=0.3)
    return _svg(fig)
