"""selftaught: a JAX laboratory for learning systems that improve from their own experience."""

__version__ = "0.1.0"
