"""Top-down pictures: a PNG of one state and an animated GIF of a rollout (matplotlib + Pillow)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from selftaught.sim.driving.datatypes import ROAD_EDGE_TYPES, SimulatorState


def _np(tree):
    import jax

    return jax.tree.map(np.asarray, tree)


def _draw(ax, state: SimulatorState, t: int, view: float = 60.0, title: str | None = None):
    from matplotlib.patches import Polygon

    rg = state.roadgraph_points
    v = rg.valid
    edge = v & np.isin(rg.types, ROAD_EDGE_TYPES)
    lane = v & ~edge
    ax.scatter(rg.x[lane], rg.y[lane], s=0.3, c="#bbbbbb", zorder=1)
    ax.scatter(rg.x[edge], rg.y[edge], s=0.6, c="#333333", zorder=1)
    p = state.sdc_paths
    for k in range(p.x.shape[0]):
        m = p.valid[k]
        if m.any():
            ax.plot(p.x[k, m], p.y[k, m], lw=1.2 if p.on_route[k] else 0.6,
                    c="#2ca02c" if p.on_route[k] else "#9edae5", zorder=2)  # fmt: skip
    tl = state.log_traffic_light
    for k in range(tl.x.shape[0]):
        if tl.valid[k, t]:
            ax.plot(tl.x[k, t], tl.y[k, t], "s", ms=4, zorder=3,
                    c="#d62728" if tl.state[k, t] in (1, 4, 7) else "#2ca02c")  # fmt: skip
    sim, log = state.sim_trajectory, state.log_trajectory
    from selftaught.sim.driving.datatypes import box_corners

    corners = np.asarray(box_corners(sim.x[:, t], sim.y[:, t], sim.yaw[:, t],
                                     sim.length[:, t], sim.width[:, t]))  # fmt: skip
    sdc = int(np.argmax(state.object_metadata.is_sdc))
    ctrl = state.object_metadata.is_controlled
    for i in range(sim.x.shape[0]):
        if not sim.valid[i, t]:
            continue
        color = "#ff7f0e" if i == sdc else ("#1f77b4" if ctrl[i] else "#7f7f7f")
        ax.add_patch(Polygon(corners[i], closed=True, fc=color, ec="k", lw=0.4, zorder=4))
    lv = log.valid[sdc]
    ax.plot(log.x[sdc, lv], log.y[sdc, lv], ":", c="#ff7f0e", lw=0.8, zorder=3)
    cx, cy = sim.x[sdc, t], sim.y[sdc, t]
    ax.set_xlim(cx - view, cx + view)
    ax.set_ylim(cy - view, cy + view)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title or f"t = {t}", fontsize=8)


def plot_state(state: SimulatorState, path, t: int | None = None, title: str | None = None):
    """Write a top-down PNG of an unbatched state at timestep t (default: its current one)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from selftaught.stats import save_figure

    state = _np(state)
    t = int(state.timestep) if t is None else t
    fig, ax = plt.subplots(figsize=(5, 5), dpi=110)
    _draw(ax, state, t, title=title)
    return save_figure(fig, path)


def animate_rollout(
    state: SimulatorState, path, t0: int = 0, t1: int | None = None, every: int = 2, fps: int = 10
):
    """Write an animated GIF of the sim trajectory of an unbatched (final) state."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    state = _np(state)
    t1 = int(state.timestep) if t1 is None else t1
    frames = []
    fig, ax = plt.subplots(figsize=(4, 4), dpi=80)
    for t in range(t0, t1 + 1, every):
        ax.clear()
        _draw(ax, state, t)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        buf.seek(0)
        frames.append(Image.open(buf).convert("P", palette=Image.ADAPTIVE))
    plt.close(fig)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=int(1000 / fps * every),
                   loop=0)  # fmt: skip
    return Path(path)
