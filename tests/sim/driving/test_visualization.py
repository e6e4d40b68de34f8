"""PNG of a state and GIF of a rollout are real images with the expected frame count."""

from PIL import Image

from selftaught.sim.driving import generator as gen
from selftaught.sim.driving import visualization as vz


def test_png_and_gif(tmp_path):
    st = gen.generate(0, gen.GeneratorConfig(num_objects=8))
    png = vz.plot_state(st, tmp_path / "s.png", t=20)
    with Image.open(png) as im:
        assert im.format == "PNG" and im.size[0] > 100
    gif = vz.animate_rollout(st, tmp_path / "r.gif", t0=10, t1=20, every=5)
    with Image.open(gif) as im:
        assert im.format == "GIF" and im.n_frames == 3
