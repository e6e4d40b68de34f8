"""Real Atari (gymnasium + ale-py, ROMs ship with ale-py) with the Atari-100k protocol,
driven by a host-side loop around the jitted BBF learner.

    pip install ale-py            # extra: atari (no opencv needed: resizing is in NumPy)
    out = train_bbf_atari(BBFConfig(env="ALE/Breakout", ...), steps=100_000, seed=0)

Protocol (Dopamine / BBF): frame skip 4 with a max over the last two frames, 84x84
grayscale (area resampling), 4 stacked frames, no sticky actions
(repeat_action_probability = 0), up to 30 no-op actions at the start of every episode,
episodes capped at 108k frames; during training a lost life ends the learning episode
(stored as terminal) while the game goes on; evaluation plays full games.
"""

from __future__ import annotations

import dataclasses
import time

import jax
import numpy as np

from selftaught.core.errors import ConfigError


def _area_matrix(n_out: int, n_in: int) -> np.ndarray:
    """[n_out, n_in] matrix averaging the input interval covered by each output pixel."""
    m = np.zeros((n_out, n_in), np.float32)
    scale = n_in / n_out
    for i in range(n_out):
        lo, hi = i * scale, (i + 1) * scale
        for j in range(int(np.floor(lo)), min(int(np.ceil(hi)), n_in)):
            m[i, j] = min(hi, j + 1) - max(lo, j)
    return m / m.sum(axis=1, keepdims=True)


def resize(frame_HxW: np.ndarray, size: int = 84) -> np.ndarray:
    ry = _area_matrix(size, frame_HxW.shape[0])
    rx = _area_matrix(size, frame_HxW.shape[1])
    return np.clip(ry @ frame_HxW.astype(np.float32) @ rx.T + 0.5, 0, 255).astype(np.uint8)


class AtariEnv:
    """One ALE game with the Atari-100k preprocessing. obs: uint8 [84, 84, 4]."""

    def __init__(self, game: str, seed: int, training: bool = True, frame_skip: int = 4,
                 noop_max: int = 30, stack: int = 4, max_frames: int = 108_000):
        try:
            import ale_py
            import gymnasium as gym
        except ImportError as exc:
            raise ConfigError("Atari needs ale-py: pip install ale-py (extra: atari)") from exc
        gym.register_envs(ale_py)
        game = game.removeprefix("ALE/")
        try:
            self.env = gym.make(f"ALE/{game}-v5", obs_type="grayscale", frameskip=1,
                                repeat_action_probability=0.0, full_action_space=False,
                                max_num_frames_per_episode=max_frames)
        except gym.error.Error as exc:
            raise ConfigError(f"unknown Atari game {game!r}: {exc}") from None
        self.ale = self.env.unwrapped.ale
        self.training, self.frame_skip, self.noop_max = training, frame_skip, noop_max
        self.num_actions = int(self.env.action_space.n)
        self.obs_shape = (84, 84, stack)
        self.rng = np.random.default_rng(seed)
        self.seed = seed
        self.frames: list[np.ndarray] = []
        self.lives = 0

    def _obs(self) -> np.ndarray:
        return np.stack(self.frames, axis=-1)

    def reset(self) -> np.ndarray:
        frame, _ = self.env.reset(seed=int(self.rng.integers(2**31)))
        for _ in range(int(self.rng.integers(1, self.noop_max + 1))):  # no-op starts
            frame, _, term, trunc, _ = self.env.step(0)
            if term or trunc:
                frame, _ = self.env.reset()
        self.lives = self.ale.lives()
        self.frames = [resize(frame)] * self.obs_shape[-1]
        return self._obs()

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, bool]:
        """-> (obs, reward, terminated_for_learning, game_over, truncated)."""
        total, last2 = 0.0, []
        term = trunc = False
        for _ in range(self.frame_skip):
            frame, r, term, trunc, _ = self.env.step(int(action))
            total += float(r)
            last2 = [*last2[-1:], frame]
            if term or trunc:
                break
        pooled = np.maximum(last2[0], last2[-1])
        self.frames = [*self.frames[1:], resize(pooled)]
        lives = self.ale.lives()
        life_lost = lives < self.lives
        self.lives = lives
        learn_terminal = bool(term or (self.training and life_lost))
        return self._obs(), total, learn_terminal, bool(term), bool(trunc)


@dataclasses.dataclass
class AtariResult:
    train_returns: list[float]
    eval_returns: list[float]
    env_steps: int
    seconds: float


def train_bbf_atari(config, steps: int, seed: int = 0, eval_episodes: int = 1,
                    eval_max_steps: int = 27_000) -> AtariResult:
    """Train BBF for `steps` agent steps on config.env ('ALE/<Game>') with a host loop,
    then evaluate `eval_episodes` full games (greedy, epsilon 0)."""
    from selftaught.core import config as cfglib
    from selftaught.rl.bbf import make_agent

    cfglib.validate(config)
    if not config.env.startswith("ALE/"):
        raise ConfigError(f"train_bbf_atari needs env='ALE/<Game>', got {config.env!r}")
    start = time.perf_counter()
    env = AtariEnv(config.env, seed, training=True)
    agent = make_agent(config, env=env, obs_scale=1.0 / 255.0)
    carry = agent.init_host(jax.random.PRNGKey(seed))
    policy, observe, reset = jax.jit(agent.policy), jax.jit(agent.observe), jax.jit(agent.reset)
    key = jax.random.PRNGKey(seed + 1)
    obs, ret, train_returns = env.reset(), 0.0, []
    for t in range(steps):
        key, k = jax.random.split(key)
        a = int(policy(carry, obs, k))
        nxt, r, learn_term, game_over, trunc = env.step(a)
        done = learn_term or trunc
        item = {"obs": obs, "action": np.int32(a), "reward": np.float32(np.sign(r)),
                "terminated": np.float32(learn_term), "done": np.float32(done),
                "next_obs": nxt}
        carry, _ = observe(carry, item)
        ret += r
        obs = nxt
        if game_over or trunc:
            train_returns.append(ret)
            obs, ret = env.reset(), 0.0
        steps_done = t + 1
        if (config.resets and steps_done % config.reset_every == 0
                and steps_done < config.reset_until):
            carry = reset(carry)
    eval_env = AtariEnv(config.env, seed + 10_000, training=False)
    eval_returns = []
    for _ in range(eval_episodes):
        obs, total = eval_env.reset(), 0.0
        for _ in range(eval_max_steps):
            key, k = jax.random.split(key)
            obs, r, _, over, trunc = eval_env.step(int(policy(carry, obs, k, 0.0)))
            total += r
            if over or trunc:
                break
        eval_returns.append(total)
    return AtariResult(train_returns, eval_returns, steps, time.perf_counter() - start)
