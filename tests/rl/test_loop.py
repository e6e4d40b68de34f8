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


def test_run_chunks_observe_adds_measures_of_each_chunks_final_carry():
    """observe(carry) sees the carry after each chunk; its measures become curves too."""
    seen = []

    def observe(carry):
        seen.append(carry)
        return {"twice": np.array([2 * carry, -2 * carry])}

    carry, curves = run_chunks(lambda c: (c + 1, {"c": np.array([c, c])}), 10, 3, "test",
                               observe=observe)
    assert seen == [11, 12, 13] and carry == 13
    assert curves["c"].tolist() == [[10, 11, 12], [10, 11, 12]]
    assert curves["twice"].tolist() == [[22, 24, 26], [-22, -24, -26]]


def test_run_chunks_divergence_policy_names_where_step_and_lr():
    """`finite`: a non-finite mean of the last chunk's metric raises DivergedError naming
    the cell, the runs' last env step and a lower lr; a NaN elsewhere in the curve, or no
    `finite`, passes (an lr sweep keeps its diverged runs as data)."""
    import pytest

    from selftaught.core.errors import DivergedError

    def chunk(c):
        loss = np.array([1.0, np.nan if c >= 2 else 1.0])
        return c + 1, {"loss": loss, "env_steps": np.full(2, 100 * (c + 1))}

    with pytest.raises(DivergedError, match=r"loss became nan in cell A at step 300; "
                                            r"lower the learning rate \(now 0.003, try 0.001\)"):
        run_chunks(chunk, 0, 3, "test", finite="loss", where="cell A", lr=3e-3)
    _, curves = run_chunks(chunk, 0, 3, "test")  # no policy: the NaN is data
    assert np.isnan(curves["loss"][1, 2])
    run_chunks(chunk, 0, 2, "test", finite="loss", where="cell A", lr=3e-3)  # finite at the end
    with pytest.raises(DivergedError, match="in test at step 7;"):  # explicit step, default where
        run_chunks(chunk, 0, 3, "test", finite="loss", step=7)
