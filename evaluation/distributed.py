"""Several processes, one evaluation: jax.distributed set up from the command line, and the collectives
the runner needs (agreeing on the command, barriers), each failing in one line instead of hanging.

    spec = DistributedSpec("10.0.0.1:8476", num_processes=4, process_id=i, timeout_s=300)
    with joined(spec):             # before anything touches a JAX backend
        agree("eval settings", {...})  # every process must have been started with the same command
        barrier("data prepared")

The processes exchange no model arrays: process p evaluates the samples with index % N == p on its local
devices and writes its own prediction shard; the barriers only order the run directory's writes. JAX's
recoverable mode is on, so a process that dies does not take the others down with it; a survivor's
next collective fails (gloo reports the lost connection at once) and becomes a UserError naming the
barrier. Losing process 0 (it hosts JAX's coordination service) aborts the others at once, by JAX, and
so would process 0 leaving first at the end: joined() makes it leave last.
`timeout_s` bounds the wait for every process to join and the silence after which a peer counts as dead.
"""

from __future__ import annotations

import hashlib
import json
import time
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from common.errors import UserError

AUTO = "auto"  # let jax.distributed detect the cluster (SLURM, Cloud TPU, MPI, ...)


@dataclass(frozen=True)
class DistributedSpec:
    coordinator: str  # "host:port" of process 0, or AUTO
    num_processes: int | None = None  # required unless coordinator is AUTO
    process_id: int | None = None  # required unless coordinator is AUTO
    timeout_s: int = 300

    def __post_init__(self):
        if self.coordinator != AUTO:
            if self.num_processes is None or self.process_id is None:
                raise UserError("--coordinator HOST:PORT needs --num-processes and --process-id too "
                                f"(or --coordinator {AUTO} on a cluster jax.distributed detects)")
            if self.num_processes < 1 or not 0 <= self.process_id < self.num_processes:
                raise UserError(f"--process-id {self.process_id} must be in [0, --num-processes {self.num_processes})")
        if self.timeout_s < 1:
            raise UserError(f"--distributed-timeout {self.timeout_s} must be at least 1 second")


def initialize(spec: DistributedSpec) -> None:
    """jax.distributed.initialize for this process; a coordinator that never answers, or processes that
    never all join within spec.timeout_s, is a UserError."""
    import jax

    jax.config.update("jax_enable_recoverability", True)
    kwargs = {} if spec.coordinator == AUTO else {
        "coordinator_address": spec.coordinator, "num_processes": spec.num_processes, "process_id": spec.process_id}
    try:
        jax.distributed.initialize(**kwargs, initialization_timeout=spec.timeout_s,
                                   heartbeat_timeout_seconds=spec.timeout_s, shutdown_timeout_seconds=spec.timeout_s)
    except (RuntimeError, ValueError) as e:
        raise UserError(f"jax.distributed.initialize failed ({_first_line(e)}); start all --num-processes processes "
                        "with the same --coordinator, each with its own --process-id") from None


class Disagreement(UserError):
    """Raised by agree() on every process at once (so, unlike a lost peer, all of them are still there)."""


@contextmanager
def joined(spec: DistributedSpec):
    """initialize(spec) for the body. On the way out, when every process ends alike (the body returns, or
    agree() failed everywhere), processes 1..N-1 shut down first and process 0, which hosts the
    coordination service, waits for them (at most spec.timeout_s) before shutting down: a process whose
    shutdown finds the service gone is aborted by JAX. After any other error the peers are not leaving
    together, so nobody waits."""
    initialize(spec)
    try:
        yield
    except Disagreement:
        _leave_in_order(spec.timeout_s)
        raise
    else:
        _leave_in_order(spec.timeout_s)


def _leave_in_order(timeout_s: float, poll_s: float = 0.05) -> None:
    import jax
    from jax._src import distributed as jax_distributed

    if jax.process_index() == 0:
        client = jax_distributed.global_state.client
        everyone = list(range(jax.process_count()))  # the request must name the asking process too
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and set(client.get_live_nodes(everyone)) - {0}:
            time.sleep(poll_s)
    jax.distributed.shutdown()


def _first_line(e: Exception) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:200]


def _collective(name: str, fn, *args):
    """fn(*args), a JAX cross-process collective; a lost peer becomes a UserError naming `name`."""
    try:
        return fn(*args)
    except (RuntimeError, ValueError) as e:
        raise UserError(f"lost a peer process at '{name}' ({_first_line(e)}); when every process has stopped, "
                        "rerun all of them with the same command to resume") from None


def barrier(name: str) -> None:
    """Waits until every process reaches the barrier `name` (a no-op in a single process)."""
    import jax
    from jax.experimental import multihost_utils

    if jax.process_count() > 1:
        _collective(name, multihost_utils.sync_global_devices, name)


def digest(settings: dict) -> int:
    """A 31-bit digest of a JSON-able dict (what agree() compares across processes: int32, which JAX
    carries without x64)."""
    raw = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).digest()
    return int.from_bytes(raw[:4], "little") >> 1


def agree(name: str, settings: dict) -> None:
    """Raises a UserError on every process unless all processes pass equal `settings` (a no-op in a
    single process): one process started with a different command stops them all, in one line."""
    import jax
    from jax.experimental import multihost_utils

    if jax.process_count() == 1:
        return
    mine = np.array([digest(settings)], np.int32)
    everyone = np.asarray(_collective(name, multihost_utils.process_allgather, mine)).reshape(-1)
    differ = [p for p, d in enumerate(everyone) if d != everyone[0]]
    if differ:
        raise Disagreement(f"{name}: process(es) {', '.join(map(str, differ))} were started with other arguments than "
                        "process 0; start every process with the same command (only --process-id differs)")
