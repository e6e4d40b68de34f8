"""The driving simulator (the Waymax system) in JAX: datatypes, dynamics, metrics, agents,
environments, a WOMD TFRecord loader, a procedural scenario generator and visualisation.

All functions act on one unbatched scenario; `jax.vmap` them over a batch of scenarios.
"""
