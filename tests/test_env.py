"""The Gymnasium environment: API conformance, the paper's action set, rewards, episodes."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from sparkscaler.policies.encoding import OBS_NAMES, action_delta, delta_action
from sparkscaler.rl.env import ENV_ID, EnvConfig, SparkClusterEnv
from sparkscaler.sim.workload import FixedDurations, JobSpec, Stage


class OneJob:
    """A job source that always gives the same hand-built job."""

    def __init__(self, tasks: int, seconds: float, size_gb: float = 1.0) -> None:
        self.spec = JobSpec(0, "one", 0.0, (Stage(0, tasks, FixedDurations(seconds)),), size_gb)

    def sample(self, rng: np.random.Generator) -> JobSpec:
        return self.spec


def make_env(**kw: object) -> SparkClusterEnv:
    return SparkClusterEnv(EnvConfig(**kw))  # type: ignore[arg-type]


def rollout(env: SparkClusterEnv, seed: int, actions: list[int]) -> list[tuple]:
    obs, info = env.reset(seed=seed)
    steps: list[tuple] = [(obs.tolist(), info)]
    for a in actions:
        obs, reward, terminated, truncated, info = env.step(a)
        steps.append((obs.tolist(), reward, terminated, truncated, info))
        if terminated or truncated:
            break
    return steps


# ---------------------------------------------------------------------------------- API
def test_gymnasium_check_env_passes_on_the_registered_env() -> None:
    env = gym.make(ENV_ID)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped)
    # the only complaint allowed: an ansi renderer has no frame rate
    assert all("render_fps" in str(w.message) for w in caught), [str(w.message) for w in caught]
    env.close()


def test_sb3_check_env_passes() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sb3_check_env(gym.make(ENV_ID).unwrapped, warn=True)
    assert not caught, [str(w.message) for w in caught]


def test_make_passes_keyword_settings_through() -> None:
    env = gym.make(ENV_ID, max_workers=4, reward="cost-sla").unwrapped
    assert isinstance(env, SparkClusterEnv)
    assert env.config.max_workers == 4 and env.config.reward == "cost-sla"
    assert env.action_space.n == 7
    assert env.observation_space.shape == (len(OBS_NAMES),) == (17,)


@pytest.mark.parametrize("n", range(2, 11))
def test_action_space_has_2n_minus_1_actions(n: int) -> None:
    assert make_env(max_workers=n).action_space.n == 2 * (n - 1) + 1


@pytest.mark.parametrize("n", range(2, 11))
def test_actions_follow_the_paper_order_and_invert(n: int) -> None:
    deltas = [action_delta(a, n) for a in range(2 * (n - 1) + 1)]
    assert deltas == [0, *range(1, n), *(-y for y in range(1, n))]
    assert [delta_action(d, n) for d in deltas] == list(range(2 * (n - 1) + 1))


def test_invalid_settings_and_actions_are_refused() -> None:
    with pytest.raises(ValueError, match="max_workers"):
        EnvConfig(max_workers=1)
    with pytest.raises(ValueError, match="min_workers"):
        EnvConfig(min_workers=3, initial_workers=2)
    with pytest.raises(ValueError, match="reward"):
        EnvConfig(reward="speed")  # type: ignore[arg-type]
    env = make_env(max_workers=3)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="not in"):
        env.step(5)


# ---------------------------------------------------------------------------------- bounds
def test_scale_out_past_the_maximum_is_clipped() -> None:
    env = make_env(max_workers=3, initial_workers=3, jobs_per_episode=0)
    env.reset(seed=0)
    _, reward, *_ = env.step(delta_action(1, 3))
    state = env.sim.cluster_state()  # type: ignore[union-attr]
    assert (state.alive_workers, state.provisioning_workers) == (3, 0)
    # node term for 3 workers and no move: 1 - 2 (3 + 0 - 1) / 2 = -1; everything else 0
    assert reward == pytest.approx(-1 / 8)


def test_scale_in_past_the_minimum_is_clipped() -> None:
    env = make_env(max_workers=5, min_workers=1, initial_workers=2, jobs_per_episode=0)
    env.reset(seed=0)
    _, reward, *_ = env.step(delta_action(-4, 5))
    assert env.sim.cluster_state().alive_workers == 1  # type: ignore[union-attr]
    # x = 2, y clipped to -1: 1 - 2 (2 - 1 - 1) / 4 = 1
    assert reward == pytest.approx(1 / 8)


def test_partial_scale_out_is_clipped_to_the_maximum_and_provisions() -> None:
    env = make_env(max_workers=5, initial_workers=2, jobs_per_episode=0, provisioning="vm")
    env.reset(seed=0)
    obs, reward, *_ = env.step(delta_action(4, 5))
    state = env.sim.cluster_state()  # type: ignore[union-attr]
    assert (state.alive_workers, state.provisioning_workers) == (2, 3)
    names = dict(zip(OBS_NAMES, obs.tolist(), strict=True))
    assert names["workers"] == pytest.approx(2 / 5)
    assert names["provisioning"] == pytest.approx(3 / 5)
    # x = 2, y clipped to +3: 1 - 2 (2 + 3 - 1) / 4 = -1
    assert reward == pytest.approx(-1 / 8)


# ---------------------------------------------------------------------------------- rewards
def test_paper_reward_on_an_idle_cluster_of_one_worker() -> None:
    env = make_env(max_workers=5, initial_workers=1, jobs_per_episode=0)
    obs, _ = env.reset(seed=0)
    assert obs[:6].tolist() == [0.0] * 6
    _, reward, terminated, truncated, _ = env.step(0)
    # node 1, six resources 0, slack 0: 1/8
    assert reward == pytest.approx(1 / 8)
    assert terminated and not truncated


def test_paper_reward_with_a_running_job_by_hand() -> None:
    """One 1-core worker of 1024 MB runs one of the job's tasks at t = 30 s:
    cu .90, cs .06, mt 1 GB x 1024 x 0.5 / 1024 MB = .5, ma 0.3, bi bo 0 (a single-stage job),
    slack (300 - 30) / 300 = .9, node 1 - 2 (1 + 0 - 1) / 4 = 1."""
    env = make_env(max_workers=5, initial_workers=1, deadline_s=300.0, jobs=OneJob(2, 100.0))
    env.reset(seed=0)
    obs, reward, terminated, _, info = env.step(0)
    names = dict(zip(OBS_NAMES, obs.tolist(), strict=True))
    assert names["cu"] == pytest.approx(0.9)
    assert names["slack"] == pytest.approx(0.9)
    assert names["backlog"] == pytest.approx(1 / 5)  # one pending task per 5 slots
    assert info["pending_tasks"] == 1 and info["time_s"] == 30.0
    expected = (1 + 0.9 + 0.06 + 0.5 + 0.3 + 0 + 0 + 0.9) / 8
    assert reward == pytest.approx(expected)
    assert not terminated


def test_paper_cost_reward_is_the_paper_terms_less_one() -> None:
    """The same eight terms as ``paper``, shifted so that no step pays: each step is in [-2, 0]."""
    rewards = {}
    for reward in ("paper", "paper-cost"):
        env = make_env(max_workers=5, deadline_s=300.0, jobs=OneJob(2, 100.0), reward=reward)
        env.reset(seed=0)
        rewards[reward] = [env.step(a)[1] for a in (0, 2, 0)]
    assert rewards["paper-cost"] == pytest.approx([r - 1.0 for r in rewards["paper"]])
    assert all(-2.0 <= r <= 0.0 for r in rewards["paper-cost"])


def _fixed_return(reward: str, action: int) -> tuple[float, int]:
    """The return and length of an episode that repeats ``action``: a job of 8 tasks of 60 s
    against T = 240 s, on N = 4 workers that start in 60-120 s."""
    env = make_env(
        max_workers=4, deadline_s=240.0, provisioning="vm", jobs=OneJob(8, 60.0), reward=reward
    )
    env.reset(seed=0)
    total, steps, done = 0.0, 0, False
    while not done:
        _, r, terminated, truncated, info = env.step(action)
        total, steps, done = total + r, steps + 1, terminated or truncated
    return total, info["misses"]


def test_paper_reward_pays_more_for_missing_the_deadline_on_one_worker() -> None:
    """The paper reward's problem (docs/dqn.md): every step pays, so the slow episode on one
    worker that misses T returns more than the fast one on N that meets it; ``paper-cost``
    ranks them the other way."""
    stay, stay_missed = _fixed_return("paper", 0)
    go, go_missed = _fixed_return("paper", delta_action(3, 4))
    assert stay_missed == 1 and go_missed == 0
    assert stay > go
    assert _fixed_return("paper-cost", 0)[0] < _fixed_return("paper-cost", delta_action(3, 4))[0]


def test_cost_sla_reward_pays_for_workers_and_one_penalty_per_missed_job() -> None:
    env = make_env(
        max_workers=4,
        initial_workers=2,
        interval_s=30.0,
        reward="cost-sla",
        cost_weight=2.0,
        miss_penalty=10.0,
        deadline_s=50.0,
        jobs=OneJob(1, 100.0),
    )
    env.reset(seed=0)
    cost = 2 / 4 * 30 / 3600 * 2.0
    rewards, ends = [], []
    for _ in range(4):
        _, reward, terminated, truncated, info = env.step(0)
        rewards.append(reward)
        ends.append((terminated, truncated))
    # 30 s: in time; 60 s: past the 50 s deadline; later steps: no second penalty, and the
    # job (100 s + executor start-up) ends by 120 s
    assert rewards == pytest.approx([-cost, -cost - 10.0, -cost, -cost])
    assert ends == [(False, False)] * 3 + [(True, False)]
    assert info["misses"] == 1 and info["jobs_done"] == 1


def test_cost_sla_reward_counts_provisioning_workers() -> None:
    env = make_env(
        max_workers=4, initial_workers=1, reward="cost-sla", jobs_per_episode=0, provisioning="vm"
    )
    env.reset(seed=0)
    _, reward, *_ = env.step(delta_action(2, 4))
    assert reward == pytest.approx(-3 / 4 * 30 / 3600)


# ---------------------------------------------------------------------------------- episodes
def test_episode_terminates_when_the_job_is_done() -> None:
    env = make_env(initial_workers=2, interval_s=30.0, jobs=OneJob(2, 40.0))
    env.reset(seed=0)
    flags = [env.step(0)[2:4] for _ in range(2)]
    # 40 s tasks after a 4-6 s executor start-up: done between 30 and 60 s
    assert flags == [(False, False), (True, False)]
    assert env.sim.idle  # type: ignore[union-attr]


def test_episode_truncates_at_max_episode_s() -> None:
    env = make_env(interval_s=30.0, max_episode_s=90.0, jobs=OneJob(1, 10_000.0))
    env.reset(seed=0)
    flags = [env.step(0)[2:4] for _ in range(3)]
    assert flags == [(False, False), (False, False), (False, True)]


def test_same_seed_same_trajectory() -> None:
    actions = np.random.default_rng(0).integers(0, 9, size=60).tolist()
    a = rollout(make_env(), 7, actions)
    b = rollout(make_env(), 7, actions)
    assert len(a) > 3
    assert a == b
    assert rollout(make_env(), 8, actions) != a


def test_reset_without_seed_and_reset_reseeds() -> None:
    env = make_env()
    obs, info = env.reset()
    assert env.observation_space.contains(obs) and info["time_s"] == 0.0
    first = rollout(env, 3, [1, 0, 2, 0, 5])
    env.reset()
    env.step(1)
    assert rollout(env, 3, [1, 0, 2, 0, 5]) == first


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"max_workers": 3, "reward": "cost-sla", "arrival_rate_per_hour": 30.0},
        {"max_workers": 8, "cores_per_worker": 2, "decommission_timeout_s": 5.0},
        {"max_workers": 4, "min_workers": 0, "initial_workers": 0, "provisioning": "vm"},
    ],
)
def test_observations_stay_in_the_space_on_random_rollouts(settings: dict) -> None:
    env = make_env(max_episode_s=1800.0, **settings)
    env.action_space.seed(1)
    for episode in range(3):
        obs, _ = env.reset(seed=episode)
        assert env.observation_space.contains(obs)
        done = False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
            assert env.observation_space.contains(obs), obs
            assert np.isfinite(reward)
            done = terminated or truncated
        assert env.sim.now <= 1800.0 + env.config.interval_s  # type: ignore[union-attr]


def test_render_ansi() -> None:
    env = SparkClusterEnv(render_mode="ansi")
    env.reset(seed=0)
    text = env.render()
    assert text is not None and text.startswith("cu=") and "weekday=" in text
    assert SparkClusterEnv().render() is None
