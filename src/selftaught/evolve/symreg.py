"""Symbolic regression on the Nguyen benchmark (Uy et al. 2011).

Programs map x (type S; Nguyen-9..12 also read a second variable y) to the target with
ops {+, -, *, /, sin, cos, exp, log} (protected division and log, see ops.py). Fitness =
-NRMSE on the sample points, NRMSE = RMSE / std(y), floored at -10 (a program that is off
by more than ten standard deviations is as bad as any other); 0 is a perfect fit.
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
    # two variables, x and y each drawn from U[0, 1] at 20 points (Uy et al. 2011)
    "nguyen9": ("sin(x) + sin(y^2)", lambda x, y: np.sin(x) + np.sin(y**2), 0.0, 1.0, 20),
    "nguyen10": ("2 sin(x) cos(y)", lambda x, y: 2 * np.sin(x) * np.cos(y), 0.0, 1.0, 20),
    "nguyen11": ("x^y", lambda x, y: x**y, 0.0, 1.0, 20),
    "nguyen12": ("x^4 - x^3 + y^2/2 - y", lambda x, y: x**4 - x**3 + y**2 / 2 - y,
                 0.0, 1.0, 20),
}
TWO_VARIABLES = ("nguyen9", "nguyen10", "nguyen11", "nguyen12")
"""the equations of x and y (the others are of x alone)"""


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
    def variables(self) -> tuple[str, ...]:
        return ("x", "y") if self.equation in TWO_VARIABLES else ("x",)

    @property
    def space(self) -> Space:
        return Space(inputs=tuple((v, ops.S) for v in self.variables), ops=ops.SYMREG_OPS,
                     output_type=ops.S, num_nodes=self.num_nodes)

    def points(self) -> tuple[np.ndarray, np.ndarray]:
        """(x [n] sorted, or [n, 2] for the equations of x and y; target [n])."""
        _, fn, lo, hi, n = equation(self.equation)
        rng = np.random.default_rng([self.seed, 7])
        if len(self.variables) == 2:
            x = rng.uniform(lo, hi, (n, 2)).astype(np.float32)
            return x, fn(*x.astype(np.float64).T).astype(np.float32)
        x = np.sort(rng.uniform(lo, hi, n)).astype(np.float32)
        return x, fn(x.astype(np.float64)).astype(np.float32)

    def inputs(self) -> tuple[dict, np.ndarray]:
        """({variable: values [n]}, target [n]): the interpreter's inputs."""
        x, y = self.points()
        return ({v: np.ascontiguousarray(x.reshape(len(y), -1)[:, k])
                 for k, v in enumerate(self.variables)}, y)

    def build(self):
        inputs, y = self.inputs()
        run = BatchInterpreter(self.space)
        scale = float(np.std(y)) or 1.0

        def evaluate(programs: list[Program]) -> np.ndarray:
            out = run(programs, inputs).astype(np.float64)
            nrmse = np.sqrt(np.mean((out - y) ** 2, axis=1)) / scale
            return np.maximum(-np.nan_to_num(nrmse, nan=1e9), -10.0)

        return evaluate
