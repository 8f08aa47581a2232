"""What the benchmarks share: a throw-away local cluster on free ports, stopped on every exit."""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import signal
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil

from sparkscaler.backends.local import LocalCluster
from sparkscaler.config import Config

RESULTS = Path(__file__).parent / "results"


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


# A benchmark stopped with SIGTERM unwinds like Ctrl-C, so its cluster is stopped on the way out.
signal.signal(signal.SIGTERM, _interrupt)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bench_config(
    state_dir: Path, policy_params: dict[str, Any] | None = None, **scaling: Any
) -> Config:
    return Config.model_validate(
        {
            "state_dir": str(state_dir),
            "cluster": {
                "master_port": _free_port(),
                "master_ui_port": _free_port(),
                "worker_ui_port": _free_port(),
                "worker_cores": 1,
                "worker_memory": "1g",
            },
            "scaling": {"min_workers": 1, "max_workers": 4, **scaling},
            "policy": {"name": "dra", "params": policy_params or {}},
        }
    )


@contextlib.contextmanager
def throwaway_cluster(workers: int, **scaling: Any) -> Iterator[tuple[Config, LocalCluster]]:
    with tempfile.TemporaryDirectory(prefix="sparkscaler-bench-") as tmp:
        cfg = bench_config(Path(tmp), **scaling)
        cluster = LocalCluster(cfg.cluster, cfg.state_dir)
        try:
            cluster.start(workers)
            yield cfg, cluster
        finally:
            cluster.stop()


def machine() -> dict[str, Any]:
    return {
        "cpus": psutil.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def save(name: str, result: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **result}, indent=2))
    return path


def add_dqn_training_options(parser: argparse.ArgumentParser) -> None:
    """The DQN training options the benchmarks that train one share."""
    parser.add_argument(
        "--cost-weight", type=float, default=None, help="the cost-sla reward's worker-time weight"
    )
    parser.add_argument(
        "--hyperparameters",
        type=json.loads,
        default=None,
        metavar="JSON",
        help="SB3 DQN settings over sparkscaler.rl.training.DQN_KWARGS, e.g. '{\"n_steps\": 10}'",
    )
    parser.add_argument(
        "--train-seed",
        type=int,
        default=None,
        help="the DQN training's seed (default: --seed); the jobs it is evaluated on keep --seed, "
        "so runs that differ only here measure how much one training run is luck",
    )


def train_seed(args: argparse.Namespace) -> int:
    """``--train-seed``, else ``--seed``."""
    return args.seed if args.train_seed is None else args.train_seed
