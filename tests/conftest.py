import os

os.environ.setdefault("SELFTAUGHT_QUIET", "1")
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

# The numerics policy of the tests (selftaught.core.device): deterministic GPU ops (XLA reads
# XLA_FLAGS when its backend starts, so before any test computes) and full-float32 matmuls, so
# that comparisons of two computations hold on a GPU as on the CPU (where every precision
# setting computes the same float32 products).
from selftaught.core import device  # noqa: E402

device.configure("highest", deterministic_gpu=True)
