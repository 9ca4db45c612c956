"""Tasks as Ray tasks: on a local Ray instance started on the fly, or on an existing cluster
(``address``). The only module of the package that imports ``ray`` (an optional extra:
``pip install .[ray]``).

Each task asks Ray for ``task.cpus`` CPUs and runs :func:`rbfi.sweeps.engine.execute`, which
pins torch to that many threads, as the local engine does. A task that raises is reported, not
fatal; a worker that dies is reported the same way.
"""

from __future__ import annotations

import os
import traceback

from rbfi.sweeps.engine import Engine, Outcome, execute

INSTALL = "pip install 'rbfi[ray]'  (Ray 2.x)"
LOCAL_OBJECT_STORE_BYTES = 256 * 1024**2  # tasks exchange nothing big: files carry results


def _ray():
    try:
        import ray
    except ImportError:
        raise ValueError(f"--ray needs Ray: {INSTALL}") from None
    return ray


class RayEngine(Engine):
    """Ray tasks; ``address=None`` starts a local instance with ``num_cpus`` CPUs."""

    name = "ray"

    def __init__(self, address: str | None = None, num_cpus: int | None = None) -> None:
        self.address = address
        self.num_cpus = num_cpus
        self.slots = 1
        self._refs: dict = {}
        self._remote = None
        self._started_here = False

    def start(self) -> None:
        ray = _ray()
        if not ray.is_initialized():
            kwargs = dict(include_dashboard=False, log_to_driver=False, logging_level="ERROR")
            if self.address:
                try:
                    ray.init(address=self.address, **kwargs)
                except (ConnectionError, RuntimeError, ValueError) as exc:
                    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                    raise ValueError(
                        f"cannot join the Ray cluster at {self.address}: {first} (a cluster "
                        f"with token authentication, the default from Ray 2.59, needs "
                        f"RAY_AUTH_MODE=token and its token in ~/.ray/auth_token or "
                        f"RAY_AUTH_TOKEN)"
                    ) from None
            else:
                ray.init(
                    num_cpus=self.num_cpus or os.cpu_count(),
                    object_store_memory=LOCAL_OBJECT_STORE_BYTES,
                    **kwargs,
                )
                self._started_here = True

        def run(fn, payload, root, cpus):
            try:
                execute(fn, payload, root, cpus)
                return None
            except Exception as exc:  # noqa: BLE001 - reported to the scheduler
                return traceback.format_exception_only(type(exc), exc)[-1].strip()

        self._remote = ray.remote(run)
        self._cpus = int(ray.cluster_resources().get("CPU", 1))
        self.slots = max(1, self._cpus)

    def submit(self, task, root: str) -> None:
        if task.cpus > self._cpus:
            raise ValueError(
                f"task {task.id} asks for {task.cpus} CPUs, the Ray cluster has {self._cpus}"
            )
        self.slots = max(1, self._cpus // task.cpus)
        ref = self._remote.options(num_cpus=task.cpus, max_retries=0).remote(
            task.fn, task.payload, str(root), task.cpus
        )
        self._refs[ref] = task.id

    def wait(self) -> list[Outcome]:
        ray = _ray()
        finished, _ = ray.wait(list(self._refs), num_returns=1)
        outcomes = []
        for ref in finished:
            task_id = self._refs.pop(ref)
            try:
                error = ray.get(ref)
            except Exception as exc:  # noqa: BLE001 - a dead worker, an unpicklable error
                error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0]}"
            outcomes.append(Outcome(task_id, error))
        return outcomes

    def stop(self) -> None:
        if self._started_here:
            _ray().shutdown()
            self._started_here = False
