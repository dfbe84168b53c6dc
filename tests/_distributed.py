"""Distributed tests: starting a worker script under torchrun (two CPU processes, gloo) or as one process, keeping
its output in a log (a failure shows the log's end); and, inside a worker, the stop-and-resume run and the
per-rank result file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def run_logged(command: list[str], *, cwd: Path, log: Path, timeout: int = 600) -> None:
    """Run ``command`` with its output in ``log``; fail with the log's last lines unless it exits with 0."""
    with open(log, "w") as file:
        process = subprocess.run(command, cwd=cwd, env=ENV, stdout=file, stderr=subprocess.STDOUT, timeout=timeout)
    assert process.returncode == 0, log.read_text()[-4000:]


def torchrun(worker: Path, *args: object, log: Path, processes: int = 2) -> None:
    """``worker`` under ``torch.distributed.run``; ``--standalone`` picks a free port (a fixed one collides with
    other test runs on the machine). The worker must end through :func:`end_worker` (or :func:`write_rank_result`):
    one that reaches the interpreter's shutdown fails now and then, so it is refused every time."""
    source = worker.read_text()
    assert "end_worker(" in source or "write_rank_result(" in source, f"{worker} must end with end_worker()"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes),
               str(worker), *map(str, args)]  # fmt: skip
    run_logged(command, cwd=worker.parent, log=log)


def two_processes_and_one(worker: Path, tmp_path: Path, *, batch: int = 8) -> tuple[list[dict], dict]:
    """``worker <folder> <per-device batch>`` under two processes with ``batch`` and as one process with twice it
    (the same global batch). Returns the two ranks' ``rank<r>.json`` and the single process's ``rank0.json``."""
    two, one = tmp_path / "two", tmp_path / "one"
    two.mkdir(), one.mkdir()
    torchrun(worker, two, batch, log=tmp_path / "two.log")
    run_logged([sys.executable, str(worker), str(one), str(2 * batch)], cwd=worker.parent, log=tmp_path / "one.log")
    ranks = [json.loads((two / f"rank{r}.json").read_text()) for r in range(2)]
    return ranks, json.loads((one / "rank0.json").read_text())


def resume_after_a_stop(make: Callable[..., Any], output_dir: str, *, step: int = 5) -> tuple[Any, list[str]]:
    """In a worker: ``make(output_dir, callbacks=[StopAfter(step)])`` trained until it stops after step ``step``'s
    checkpoint, then ``make(output_dir)`` resumed from that checkpoint. Returns the resumed (trained) trainer and the
    checkpoint's file names."""
    from conftest import StopAfter

    make(output_dir, callbacks=[StopAfter(step)]).train()
    resumed = make(output_dir)
    checkpoint = os.path.join(output_dir, f"checkpoint-{step}")
    resumed.train(resume_from_checkpoint=checkpoint)
    return resumed, sorted(os.listdir(checkpoint))


def write_rank_result(out: str, result: dict) -> None:
    """In a worker: ``result`` as ``<out>/rank<RANK>.json``, then the worker ended (:func:`end_worker`)."""
    with open(os.path.join(out, f"rank{os.environ.get('RANK', '0')}.json"), "w") as file:
        json.dump(result, file)
    end_worker()


def end_worker() -> None:
    """In a worker, once its results are written: close the process group (if any) and exit with 0 at once.

    Skipping the interpreter's shutdown is deliberate. A gloo worker thread may still hold the last reference to a
    collective's Python-owned tensor (Trainer's final ``all_gather`` of the FLOP count) when the main thread
    reaches shutdown; that thread then needs the GIL, is ended by the finalising interpreter, and the process dies
    with SIGABRT ("terminate called without an active exception") after everything was saved. It is a race in
    torch, about one start in fifteen on two busy cores; ``os._exit`` leaves it no window.
    """
    import torch.distributed

    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
