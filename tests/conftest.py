import os

os.environ.setdefault("SELFTAUGHT_QUIET", "1")
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
