"""Symbolic regression on the Nguyen benchmark (Uy et al. 2011).

Programs map x (type S) to y with ops {+, -, *, /, sin, cos, exp, log} (protected
division and log, see ops.py). Fitness = -NRMSE on the sample points, NRMSE = RMSE /
std(y), floored at -10 (a program that is off by more than ten standard deviations is
as bad as any other); 0 is a perfect fit.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from selftaught.core.errors import UnknownNameError
from selftaught.evolve import ops
from selftaught.evolve.program import BatchInterpreter, Program, Space

# name: (formula, function, low, high, points)
NGUYEN = {
    "nguyen1": ("x^3 + x^2 + x", lambda x: x**3 + x**2 + x, -1.0, 1.0, 20),
    "nguyen2": ("x^4 + x^3 + x^2 + x", lambda x: x**4 + x**3 + x**2 + x, -1.0, 1.0, 20),
    "nguyen3": ("x^5 + ... + x", lambda x: x**5 + x**4 + x**3 + x**2 + x, -1.0, 1.0, 20),
    "nguyen4": ("x^6 + ... + x", lambda x: sum(x**k for k in range(1, 7)), -1.0, 1.0, 20),
    "nguyen5": ("sin(x^2) cos(x) - 1", lambda x: np.sin(x**2) * np.cos(x) - 1, -1.0, 1.0, 20),
    "nguyen6": ("sin(x) + sin(x + x^2)", lambda x: np.sin(x) + np.sin(x + x**2), -1.0, 1.0, 20),
    "nguyen7": ("log(x + 1) + log(x^2 + 1)", lambda x: np.log(x + 1) + np.log(x**2 + 1),
                0.0, 2.0, 20),
    "nguyen8": ("sqrt(x)", np.sqrt, 0.0, 4.0, 20),
}


def equation(name: str):
    if name not in NGUYEN:
        raise UnknownNameError("Nguyen equation", name, list(NGUYEN))
    return NGUYEN[name]


@dataclasses.dataclass(frozen=True)
class SymRegTask:
    """A picklable evaluation task (see backends.py) for one Nguyen equation."""

    equation: str = "nguyen2"
    num_nodes: int = 8
    seed: int = 0  # draws the sample points

    @property
    def space(self) -> Space:
        return Space(inputs=(("x", ops.S),), ops=ops.SYMREG_OPS, output_type=ops.S,
                     num_nodes=self.num_nodes)

    def points(self) -> tuple[np.ndarray, np.ndarray]:
        _, fn, lo, hi, n = equation(self.equation)
        x = np.sort(np.random.default_rng([self.seed, 7]).uniform(lo, hi, n)).astype(np.float32)
        return x, fn(x.astype(np.float64)).astype(np.float32)

    def build(self):
        x, y = self.points()
        run = BatchInterpreter(self.space)
        scale = float(np.std(y)) or 1.0

        def evaluate(programs: list[Program]) -> np.ndarray:
            out = run(programs, {"x": x}).astype(np.float64)
            nrmse = np.sqrt(np.mean((out - y) ** 2, axis=1)) / scale
            return np.maximum(-np.nan_to_num(nrmse, nan=1e9), -10.0)

        return evaluate
