"""The Deep Q-Network policy of Thonglek et al. (OLA 2019), trained with Stable-Baselines3 in the
simulator (:mod:`sparkscaler.rl.training`), plus an improved variant.

A decision maps the observation to the env's vector with the same encoding the env uses
(:mod:`sparkscaler.policies.encoding`, sized by the env config saved beside the model), applies
the variant's mask, takes the action of highest Q-value (what SB3's ``predict(deterministic=True)``
does for a DQN) and turns it into a worker count: the current size plus the action's signed
change, clipped to the trained env's [min_workers, max_workers]. The guard it runs behind is the
one it was trained behind (the env steps the same controller), so its cooldowns and
stabilisation are part of what the agent learned to expect.

The job fields of the observation (``finish_now``, ``finish_max``, ``work_left``) are projected
with the planner's :class:`~sparkscaler.models.job_knowledge.JobKnowledge`: the loop's runtime
model as its prior (:meth:`DqnPolicy.for_loop`), refitted on the finished jobs
(:meth:`DqnPolicy.fit`), as the planner's is. A variant that masks them ignores them.

A residual model (trained with ``action_base="planner"``, the ``residual`` variant) corrects a
planner: the policy runs a :class:`~sparkscaler.policies.planner.PlannerPolicy` built as the
loop's own planner would be (the loop's runtime model and provisioning delay, refitted on the
same finished jobs), shows its target to the network (the ``plan`` field) and applies the
action's change to that target. The reason names both.

Files: the SB3 zip and a JSON sidecar (``.json`` beside it) with the training metadata.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import numpy as np

from sparkscaler.core import Decision, JobRecord, Observation
from sparkscaler.models.job_knowledge import JobKnowledge
from sparkscaler.policies.base import Policy, PolicyParams
from sparkscaler.policies.encoding import OBS_NAMES, Encoding, action_target, observation_vector
from sparkscaler.policies.planner import PlannerPolicy

if TYPE_CHECKING:
    from sparkscaler.models.runtime_model import RuntimeModel


class DqnParams(PolicyParams):
    model_path: str | None = None
    """The SB3 zip written by ``sparkscaler train dqn``; its ``.json`` sidecar must be beside it."""


def sidecar_path(model_path: Path) -> Path:
    return Path(model_path).with_suffix(".json")


class DqnPolicy(Policy):
    name = "dqn"
    file_suffix = ".zip"
    Params = DqnParams

    @classmethod
    def for_loop(
        cls,
        params: Mapping[str, Any],
        *,
        runtime_model: RuntimeModel | None = None,
        provisioning_s: float = 0.0,
    ) -> Self:
        """Projects the job fields with the loop's runtime model as the prior; a residual
        model's planner plans with it and the loop's provisioning delay."""
        return cls(runtime_model=runtime_model, provisioning_s=provisioning_s, **params)

    def __init__(
        self,
        *,
        runtime_model: RuntimeModel | None = None,
        provisioning_s: float = 0.0,
        **params: Any,
    ) -> None:
        super().__init__(**params)
        self.model_: Any = None
        self.metadata_: dict[str, Any] | None = None
        self.encoding_: Encoding | None = None
        self.mask_: np.ndarray | None = None
        self.planner_: PlannerPolicy | None = None
        self.prior_ = runtime_model
        if self.params.model_path:
            self._load_model(Path(self.params.model_path))
        cpw = float(self.encoding_.cores_per_worker) if self.encoding_ else 1.0
        self.knowledge_ = JobKnowledge(prior=self.prior_, cores_per_worker=cpw).fit([])
        if self.metadata_ and self.metadata_["env_config"].get("action_base") == "planner":
            self.planner_ = PlannerPolicy.for_loop(
                {}, runtime_model=runtime_model, provisioning_s=provisioning_s
            )

    def fit(self, history: Sequence[JobRecord]) -> Self:
        """Refit the job knowledge the job fields are projected with (and a residual model's
        planner) on the finished jobs."""
        self.knowledge_ = JobKnowledge(
            prior=self.prior_, cores_per_worker=self.knowledge_.cores_per_worker
        ).fit(history)
        if self.planner_ is not None:
            self.planner_.fit(history)
        return self

    # ------------------------------------------------------------------ model
    def _load_model(self, path: Path) -> None:
        from stable_baselines3 import DQN

        if path.suffix != ".zip":
            path = path.with_suffix(".zip")
        meta_path = sidecar_path(path)
        for needed in (path, meta_path):
            if not needed.is_file():
                raise FileNotFoundError(
                    f"DQN model file {needed} not found (train one with `sparkscaler train dqn`)"
                )
        metadata = json.loads(meta_path.read_text())
        if metadata.get("name", "dqn") != self.name:
            raise ValueError(f"{meta_path} holds a {metadata.get('name')!r} policy, not 'dqn'")
        if list(metadata.get("obs_names", OBS_NAMES)) != list(OBS_NAMES):
            raise ValueError(
                f"{meta_path}: the model was trained on observation fields "
                f"{metadata.get('obs_names')}, this version maps {list(OBS_NAMES)}; retrain it"
            )
        encoding = Encoding.from_env_config(metadata["env_config"])
        # schedules are not needed to predict, and pickled ones may not load across versions
        # (and the replay buffer is set up afresh from n_steps, as when the model was made:
        # a saved n-step buffer class would only make SB3 warn that n_steps is ignored)
        custom = {
            "learning_rate": 0.0,
            "lr_schedule": lambda _: 0.0,
            "exploration_schedule": None,
            "replay_buffer_class": None,
        }
        model = DQN.load(path, device="cpu", custom_objects=custom)
        if model.action_space.n != encoding.n_actions:
            raise ValueError(
                f"{path}: {model.action_space.n} actions, but N = {encoding.max_workers} "
                f"needs {encoding.n_actions}"
            )
        self.model_ = model
        self.metadata_ = metadata
        self.encoding_ = encoding
        self.mask_ = np.asarray(metadata.get("obs_mask", [1.0] * len(OBS_NAMES)), np.float32)
        # the training run, not the zip's bytes (a saved copy has new zip timestamps)
        run = {k: v for k, v in metadata.items() if k != "params"}
        digest = hashlib.sha256(json.dumps(run, sort_keys=True).encode()).hexdigest()[:8]
        self.version = f"{metadata.get('variant', '?')}-{digest}"

    def vector(self, observation: Observation, plan: int | None = None) -> np.ndarray:
        """The masked observation vector the network sees (``plan``: a residual model's
        planner target)."""
        assert self.encoding_ is not None and self.mask_ is not None
        vector = observation_vector(observation, self.encoding_, self.knowledge_, plan)
        return vector * self.mask_

    def q_values(self, vector: np.ndarray) -> np.ndarray:
        import torch

        assert self.model_ is not None
        with torch.no_grad():
            tensor = torch.as_tensor(np.asarray(vector, dtype=np.float32)).reshape(1, -1)
            return self.model_.q_net(tensor)[0].cpu().numpy()

    def predict_action(self, vector: np.ndarray) -> int:
        """The greedy action for an (already masked) vector."""
        return int(np.argmax(self.q_values(vector)))

    # ------------------------------------------------------------------ policy
    def decide(self, observation: Observation) -> Decision:
        current = observation.workers
        if self.model_ is None or self.encoding_ is None:
            return self._decision(
                current,
                "no DQN model loaded (set policy.params.model_path to a model trained with "
                "`sparkscaler train dqn`); keeping the current size",
            )
        base = self.planner_.decide(observation) if self.planner_ is not None else None
        plan = base.target if base is not None else None
        q = self.q_values(self.vector(observation, plan))
        action = int(np.argmax(q))
        variant = self.metadata_.get("variant", "?") if self.metadata_ else "?"
        detail = f" (DQN {variant} variant, Q={q[action]:.3f})"
        target, words = action_target(action, current, self.encoding_, detail, base=plan)
        if base is None:
            return self._decision(target, words)
        return Decision(
            target=target,
            policy=self.name,
            reason=f"{words}; planner: {base.reason}",
            model_version=f"{self.version}+{base.model_version}",
            predicted_s=base.predicted_s,
            base_target=base.target,
        )

    # ------------------------------------------------------------------ files
    def save(self, path: Path) -> None:
        """Write the SB3 zip at ``path`` (a .zip) and the metadata beside it (``.json``)."""
        path = Path(path)
        if path.suffix != ".zip":
            raise ValueError(f"a DQN policy is saved as a .zip, not {path}")
        if self.model_ is None or self.metadata_ is None:
            raise ValueError("no DQN model to save: train one or load one first")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.model_.save(path)
        metadata = {**self.metadata_, "name": self.name, "params": {"model_path": str(path)}}
        sidecar_path(path).write_text(json.dumps(metadata, indent=2))

    @classmethod
    def load(cls, path: Path) -> Self:
        """Load from the zip or its ``.json`` sidecar."""
        return cls(model_path=str(Path(path).with_suffix(".zip")))
