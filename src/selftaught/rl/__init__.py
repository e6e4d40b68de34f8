"""Jittable agents (value-based, SAC, the PPO learner), return targets, value losses,
networks, replay buffers and environments.

Pattern (PureJaxRL): `make_train(config) -> train(rng)`, pure, every loop a `lax.scan`;
run seeds with `jax.jit(jax.vmap(train))(keys)`.
"""
