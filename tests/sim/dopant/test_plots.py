import matplotlib.pyplot as plt
import numpy as np

from selftaught.sim.dopant import plots


def test_rate_map_legend_names_every_marker(tmp_path, monkeypatch):
    captured = {}
    monkeypatch.setattr(plt, "close", lambda fig: captured.setdefault("fig", fig))
    plots.plot_rate_maps(tmp_path / "m.png", 2.0, {"a": np.ones((5, 5)), "b": np.zeros((5, 5))},
                         marks={"human prior": np.zeros((3, 2))})
    legend = captured["fig"].axes[0].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["Si", "C neighbours", "human prior"]
    assert (tmp_path / "m.png").stat().st_size > 0
