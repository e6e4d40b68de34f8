"""rl.loop helpers shared by the agent recipes."""

import numpy as np

from selftaught.rl.loop import run_chunks


def test_run_chunks_stacks_each_runs_metrics_into_a_curve():
    """run_chunks calls the chunk num_chunks times (with its index when asked) and returns
    the final carry and {metric: [runs, chunks]}."""
    def chunk(carry, i, scale):
        carry = carry + 1
        return carry, {"x": carry * scale * np.ones(3), "i": np.full(3, i)}

    carry, curves = run_chunks(chunk, 0, 4, "test", 2.0, index=True)
    assert carry == 4 and set(curves) == {"x", "i"}
    np.testing.assert_array_equal(curves["x"], np.tile([2.0, 4.0, 6.0, 8.0], (3, 1)))
    np.testing.assert_array_equal(curves["i"], np.tile([0, 1, 2, 3], (3, 1)))
    carry, curves = run_chunks(lambda c: (c * 2, {"y": np.array([c])}), 1, 3, "test")
    assert carry == 8 and curves["y"].tolist() == [[1, 2, 4]]
