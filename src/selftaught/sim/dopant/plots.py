"""Rate-map heatmaps (PNG, Agg backend): truth vs learned, error and ensemble spread."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from selftaught.sim.dopant.lattice import NEIGHBOURS_3x2  # noqa: E402
from selftaught.stats import save_figure  # noqa: E402


def plot_rate_maps(path: Path, extent: float, panels: dict[str, np.ndarray], *,
                   marks: dict[str, np.ndarray] | None = None, title: str = "") -> Path:
    """One heatmap per panel (n x n arrays over [−extent, extent]², row = y); the Si at the
    origin, its neighbours as circles, and `marks` (label → (k, 2) points) as crosses."""
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.6), dpi=110,
                             squeeze=False)
    for ax, (label, img) in zip(axes[0], panels.items()):
        im = ax.imshow(np.asarray(img), origin="lower", cmap="viridis",
                       extent=(-extent, extent, -extent, extent))
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
        ax.plot(0, 0, "o", color="orange", ms=9, mec="k", label="Si")
        ax.plot(NEIGHBOURS_3x2[:, 0], NEIGHBOURS_3x2[:, 1], "o", color="white", ms=7, mec="k",
                label="C neighbours")
        for (name, pts), style in zip((marks or {}).items(), ("r+", "mx", "c*")):
            pts = np.asarray(pts).reshape(-1, 2)
            ax.plot(pts[:, 0], pts[:, 1], style, ms=9, mew=2, label=name)
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("x (Å)")
        ax.set_ylabel("y (Å)")
    axes[0][0].legend(fontsize=7, loc="lower left")
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)
