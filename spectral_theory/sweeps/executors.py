"""Where tasks run: in this process, in a local process pool, or on a ``dask.distributed``
cluster (a ``LocalCluster`` started here, or an existing scheduler). Every executor yields
``(key, result)`` as tasks finish; the driver alone writes results, so workers need no shared
file system (``docs/sweeps.md``, "Running on a cluster").
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import Any

from ..errors import SpecError

__all__ = ["SweepError", "open_executor", "parse_cluster", "run_tasks"]


class SweepError(RuntimeError):
    """The sweep stopped before every task finished (a lost process pool, a task the cluster
    gave up on): what is saved stays saved, and running the same sweep again resumes it."""


def parse_cluster(text: Any) -> int:
    """The worker count of ``local:N``."""
    if not isinstance(text, str) or not text.startswith("local:"):
        raise SpecError("--cluster", text, "must be local:N (a dask LocalCluster of N worker processes)")
    try:
        n = int(text.split(":", 1)[1])
    except ValueError:
        n = 0
    if n < 1:
        raise SpecError("--cluster", text, "must be local:N with N an integer >= 1")
    return n


class _Serial:
    label = "serial"
    dashboard = None

    def run(self, fn: Callable, tasks: list[tuple[str, tuple]]) -> Iterator[tuple[str, Any]]:
        for key, args in tasks:
            yield key, fn(*args)


class _Pool:
    """A local process pool that survives a lost worker process: when one dies (killed, out of
    memory), the pool is broken for every task in flight, so a new pool is started and the
    tasks not yet finished are submitted again, at most :attr:`restarts` times in one run
    (dask's ``distributed.scheduler.allowed-failures`` plays this part on a cluster). Tasks
    are pure (the same arguments give the same result), so a task run twice gives the same
    rows, and the driver writes each batch once."""

    dashboard = None
    #: new pools started after a lost worker before the sweep stops (resumable) with SweepError
    restarts = 3

    def __init__(self, workers: int):
        from concurrent.futures import ProcessPoolExecutor

        self.workers = workers
        self.label = f"process pool of {workers} workers"
        self.pool = ProcessPoolExecutor(max_workers=workers)
        #: pools started again after a lost worker in this run
        self.restarted = 0

    def run(self, fn: Callable, tasks: list[tuple[str, tuple]]) -> Iterator[tuple[str, Any]]:
        from concurrent.futures import ProcessPoolExecutor, as_completed
        from concurrent.futures.process import BrokenProcessPool

        pending = dict(tasks)  # key -> args, in submission order
        while pending:
            futures = {self.pool.submit(fn, *args): key for key, args in pending.items()}
            broken: BaseException | None = None
            try:
                for f in as_completed(futures):
                    try:
                        res = f.result()
                    except BrokenProcessPool as err:
                        broken = err
                        break
                    except Exception as err:
                        raise SweepError(f"a task failed in the process pool ({type(err).__name__}: {err})") \
                            from err
                    key = futures.pop(f)
                    del pending[key]
                    yield key, res
            finally:
                if broken is None:
                    for f in futures:
                        f.cancel()
            if broken is None:
                return
            # a worker process died: keep what finished, start a new pool for the rest
            for f, key in list(futures.items()):
                if f.done() and not f.cancelled() and f.exception() is None:
                    del pending[key]
                    yield key, f.result()
            self.pool.shutdown(wait=True, cancel_futures=True)
            if self.restarted >= self.restarts:
                raise SweepError(f"a worker process of the process pool died {self.restarted + 1} times "
                                 f"({broken}); {len(pending)} tasks were not finished") from broken
            self.restarted += 1
            sys.stderr.write(f"spectral-theory: a worker process of the process pool died ({broken}); "
                             f"{len(pending)} unfinished tasks go to a new pool\n")
            sys.stderr.flush()
            self.pool = ProcessPoolExecutor(max_workers=self.workers)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


class _Dask:
    def __init__(self, client: Any, label: str, own: list[Any]):
        self.client = client
        self.label = label
        self._own = own
        try:
            self.dashboard = client.dashboard_link if client.scheduler_info().get("services", {}).get(
                "dashboard") else None
        except Exception:  # noqa: BLE001 - no dashboard
            self.dashboard = None

    def run(self, fn: Callable, tasks: list[tuple[str, tuple]]) -> Iterator[tuple[str, Any]]:
        from distributed import as_completed

        futures = {}
        for key, args in tasks:
            fut = self.client.submit(fn, *args, key=f"spectral-theory-{fn.__name__}-{key}", pure=False)
            futures[fut] = key
        try:
            for fut in as_completed(list(futures)):
                try:
                    res = fut.result()
                except Exception as err:
                    raise SweepError(f"a task failed on the dask cluster ({type(err).__name__}: {err})") from err
                yield futures.pop(fut), res
                fut.release()
        finally:
            for fut in futures:
                with contextlib.suppress(Exception):
                    fut.cancel()

    def close(self) -> None:
        for obj in self._own:
            with contextlib.suppress(Exception):
                obj.close()


@contextlib.contextmanager
def open_executor(*, workers: int | None = None, cluster: str | None = None, scheduler: str | None = None,
                  client: Any = None, dashboard: bool = True, announce: bool = True) -> Iterator[Any]:
    """The executor a sweep runs on (at most one of ``workers`` > 1: a process pool;
    ``cluster = "local:N"``: a dask ``LocalCluster`` of N processes with one thread each, on
    127.0.0.1; ``scheduler = "tcp://HOST:PORT"``: an existing dask scheduler; ``client``: a
    ``dask.distributed.Client``); serial otherwise. With a cluster, the dashboard's link is
    printed on standard error (``dashboard=False``: none started for a LocalCluster)."""
    given = [k for k, v in (("workers", workers if workers not in (None, 1) else None), ("cluster", cluster),
                            ("scheduler", scheduler), ("client", client)) if v is not None]
    if len(given) > 1:
        raise SpecError(given[1], locals()[given[1]], f"choose one executor; {given[0]} was given too")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise SpecError("workers", workers, "must be an integer >= 1")
    ex: Any
    if cluster is not None or scheduler is not None or client is not None:
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise SpecError("cluster" if cluster else "scheduler", cluster or scheduler,
                            "needs dask.distributed: pip install \".[sweeps]\"") from None
        own: list[Any] = []
        if cluster is not None:
            n = parse_cluster(cluster)
            import logging

            lc = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                              dashboard_address=":0" if dashboard else None, silence_logs=logging.ERROR)
            client = Client(lc)
            own = [client, lc]
            label = f"dask LocalCluster of {n} workers"
        elif scheduler is not None:
            if not isinstance(scheduler, str) or "://" not in scheduler:
                raise SpecError("scheduler", scheduler, "must be a dask scheduler address such as tcp://HOST:PORT")
            try:
                client = Client(scheduler, timeout="20s")
            except (OSError, TimeoutError) as err:
                raise SpecError("scheduler", scheduler, f"cannot be reached ({err})") from None
            own = [client]
            label = f"dask scheduler {scheduler}"
        else:
            label = "dask client"
        ex = _Dask(client, label, own)
        if announce and dashboard and ex.dashboard:
            try:
                import bokeh  # noqa: F401

                note = ""
            except ImportError:
                note = " (its pages need bokeh: pip install bokeh)"
            sys.stderr.write(f"spectral-theory: dask dashboard: {ex.dashboard}{note}\n")
            sys.stderr.flush()
    elif workers is not None and workers > 1:
        ex = _Pool(workers)
    else:
        ex = _Serial()
    try:
        yield ex
    finally:
        close = getattr(ex, "close", None)
        if close is not None:
            close()


def run_tasks(fn: Any, tasks: list, on_result: Any, *, total: int, progress: bool | None, label: str,
              unit: str, idle_label: str, executor: dict[str, Any]) -> str:
    """Run ``tasks`` (``(key, args)`` pairs) by ``fn`` on the executor ``open_executor(**executor)``
    opens, calling ``on_result(key, result)`` for each as it arrives (which saves it: an
    interrupted run keeps what was done) and advancing a progress bar (``montecarlo.Progress``)
    over ``total`` items by what ``on_result`` returns. ``progress=None``: a bar when standard
    error is a terminal and there is work. Returns the executor's label, ``idle_label`` when there
    were no tasks (no executor is opened then)."""
    from ..montecarlo import Progress

    if progress is None:
        progress = sys.stderr.isatty() and total > 0
    bar = Progress(max(total, 1), bool(progress), label=label)
    if not tasks:
        return idle_label
    with open_executor(**executor) as ex:
        try:
            for k, (key, result) in enumerate(ex.run(fn, tasks)):
                bar.advance(on_result(key, result), f"{k + 1}/{len(tasks)} {unit}")
        finally:
            bar.close()
        return ex.label
