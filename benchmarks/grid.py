"""The one grid runner of the benchmarks: a grid spec becomes cells, each cell one run, each run one JSON line.

    cells = expand({"seed": [0, 1, 2], "condition": ["clean", "uniform_40"], "method": ["ce", "lilaw"]})
    run_grid(cells, run_one, "results/x_runs.jsonl", shard=parse_shard("0/4"))   # run_one(cell) -> dict
    records = read_records("results/x_runs.jsonl")                               # what a --summary reads

- A cell is a flat dict of JSON values; its key (`cell_key`) is its canonical JSON, so the same cell is
  recognised across processes and sessions. A record is ``{**cell, **run_one(cell)}``.
- Resumable: cells whose key is already in the file are skipped, so an interrupted grid continues where it stopped.
- Sharded: ``shard=(i, n)`` runs every n-th cell starting at i of the full cell list (not of the cells left),
  so n processes that read the file at different moments still split the grid without overlap.
- Load-balanced: `launch_workers` starts n processes of a script that share a fresh claim folder (the
  ``BENCHMARK_GRID_CLAIMS`` variable) instead: each takes the next cell left that no other has claimed, in grid
  order, so a resumed grid with a few cells left still keeps every process busy and the first cells run first.
- Appends are whole lines under an exclusive lock, so any number of processes share one file.
"""

from __future__ import annotations

import fcntl
import hashlib
import itertools
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "add_grid_arguments",
    "append_record",
    "cell_key",
    "expand",
    "launch_workers",
    "parse_shard",
    "pending",
    "read_records",
    "run_grid",
    "shard_cells",
]

Cell = dict[str, Any]
CLAIMS_VARIABLE = "BENCHMARK_GRID_CLAIMS"


def expand(spec: Mapping[str, Sequence[Any]] | Sequence[Mapping[str, Sequence[Any]]]) -> list[Cell]:
    """The cells of a grid spec: the product of the value lists, the first key outermost.

    A list of specs gives the concatenation of their products (for grids that are not rectangular, e.g. a
    method only under some conditions). Duplicate cells are an error.
    """
    specs = [spec] if isinstance(spec, Mapping) else list(spec)
    cells: list[Cell] = []
    for one in specs:
        keys = list(one)
        for name, values in one.items():
            if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
                raise ValueError(f"Grid spec entry {name!r} must be a list of values, got {values!r}.")
        cells += [dict(zip(keys, values)) for values in itertools.product(*(one[k] for k in keys))]
    keys_seen: set[str] = set()
    for cell in cells:
        key = cell_key(cell)
        if key in keys_seen:
            raise ValueError(f"The grid spec gives the cell {key} twice.")
        keys_seen.add(key)
    return cells


def cell_key(cell: Mapping[str, Any], fields: Iterable[str] | None = None) -> str:
    """The stable identity of a cell (or of the record of one, restricted to ``fields``): canonical JSON.

    Values compare as JSON: a tuple equals the list it is written as, but ``1`` and ``1.0`` are different cells.
    """
    if fields is not None:
        missing = [f for f in fields if f not in cell]
        if missing:
            raise KeyError(f"The record lacks the cell fields {missing}: {dict(cell)}")
        cell = {f: cell[f] for f in fields}
    return json.dumps(cell, sort_keys=True, separators=(",", ":"))


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` -> ``(i, n)`` with ``0 <= i < n``."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise ValueError(f"A shard is written i/n (e.g. 0/4 for the first of 4), got {text!r}.") from None
    if not 0 <= index < count:
        raise ValueError(f"Shard {text!r}: need 0 <= i < n.")
    return index, count


def shard_cells(cells: Sequence[Cell], index: int, count: int) -> list[Cell]:
    """Every ``count``-th cell starting at ``index``: with the method innermost, every shard gets a mix of methods."""
    return list(cells[index::count])


def read_records(path: str | os.PathLike[str], *, required: Sequence[str] = ()) -> list[dict[str, Any]]:
    """The records of a JSONL file (none if it does not exist), each checked to carry ``required`` keys.

    A last line cut off by a killed process is ignored (its run counts as not done); any other unreadable line is
    an error naming it.
    """
    path = Path(path)
    if not path.exists():
        return []
    text = path.read_text()
    lines = text.split("\n")
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            if number == len(lines) and not text.endswith("\n"):
                break  # an interrupted append; the next append starts a new line
            raise ValueError(f"{path}, line {number}: not a JSON record ({error}). Remove or repair the line.") from None
        missing = [k for k in required if k not in record]
        if missing:
            raise ValueError(f"{path}, line {number}: the record lacks {missing}.")
        records.append(record)
    return records


def append_record(path: str | os.PathLike[str], record: Mapping[str, Any]) -> None:
    """Append ``record`` as one JSON line, under an exclusive lock, after a newline if the file lacks its last one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = (json.dumps(record, allow_nan=True) + "\n").encode()
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            data = b"\n" + data
        os.write(fd, data)
    finally:
        os.close(fd)  # releases the lock


def pending(cells: Sequence[Cell], records: Iterable[Mapping[str, Any]]) -> list[Cell]:
    """The cells without a record, records matched on the cells' own fields; a field a record lacks reads as
    ``None`` (so a field added to a grid with the value ``None`` keeps the older records)."""
    if not cells:
        return []
    fields = list(cells[0])
    done = {cell_key({f: record.get(f) for f in fields}) for record in records}
    return [c for c in cells if cell_key(c) not in done]


def run_grid(
    cells: Sequence[Cell],
    run_one: Callable[[Cell], Mapping[str, Any]],
    path: str | os.PathLike[str],
    *,
    shard: tuple[int, int] = (0, 1),
    max_minutes: float | None = None,
    claims: str | os.PathLike[str] | None = None,
    log: Callable[[str], None] | None = print,
) -> list[dict[str, Any]]:
    """Run this shard's cells that have no record in ``path`` yet, appending ``{**cell, **run_one(cell)}`` after
    each; returns the new records. No run starts after ``max_minutes`` (the grid resumes from there).

    With ``claims`` (a folder; default: the ``BENCHMARK_GRID_CLAIMS`` variable that `launch_workers` sets) the
    shard is ignored: every process goes through all the cells left in grid order and runs those whose claim
    file it creates first. ``run_one`` may not return a cell field with another value (the record would no
    longer name its cell).
    """
    fields = set().union(*cells) if cells else set()
    if any(set(c) != fields for c in cells):
        raise ValueError("Every cell of a grid needs the same fields; give a missing one an explicit value (e.g. None).")
    claims = claims if claims is not None else os.environ.get(CLAIMS_VARIABLE) or None
    mine = list(cells) if claims else shard_cells(cells, *shard)
    todo = pending(mine, read_records(path))
    if log:
        where = "claiming from the cells left" if claims else f"shard {shard[0]}/{shard[1]}"
        log(f"{where}: {len(mine)} cells, {len(mine) - len(todo)} done, {len(todo)} to run")
    new = []
    deadline = None if max_minutes is None else time.perf_counter() + 60 * max_minutes
    for number, cell in enumerate(todo, 1):
        if deadline is not None and time.perf_counter() > deadline:
            if log:
                log(f"stopped after {max_minutes} minutes: {len(todo) - number + 1} cells not started")
            break
        if claims and not _claim(Path(claims), cell):
            continue
        start = time.perf_counter()
        result = dict(run_one(dict(cell)))
        clash = {k: (cell[k], result[k]) for k in cell if k in result and result[k] != cell[k]}
        if clash:
            raise ValueError(f"run_one returned cell fields with other values (cell, returned): {clash}")
        record = {**cell, **result}
        append_record(path, record)
        new.append(record)
        if log:
            log(f"[{number}/{len(todo)}] {cell_key(cell)} in {time.perf_counter() - start:.1f} s")
    return new


def _claim(folder: Path, cell: Mapping[str, Any]) -> bool:
    """Whether this process is the first to claim ``cell`` (an exclusive create of a file named by its key)."""
    folder.mkdir(parents=True, exist_ok=True)
    name = hashlib.sha1(cell_key(cell).encode()).hexdigest()
    try:
        os.close(os.open(folder / name, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
    except FileExistsError:
        return False
    return True


def add_grid_arguments(parser: Any) -> None:
    """``--shard i/n``, ``--workers N`` and ``--summary`` on an `argparse.ArgumentParser`."""
    parser.add_argument("--shard", type=parse_shard, default=(0, 1), metavar="I/N",
                        help="Run only the I-th of N interleaved parts of the grid (0-based).")  # fmt: skip
    parser.add_argument("--workers", type=int, default=0, metavar="N",
                        help="Start N processes, one per shard, each with one thread, and wait for them.")  # fmt: skip
    parser.add_argument("--summary", action="store_true", help="Only read the records and write the tables.")
    parser.add_argument("--max-minutes", type=float, help="Start no run after this many minutes (resume later).")


def launch_workers(
    argv: Sequence[str],
    workers: int,
    *,
    log_dir: str | os.PathLike[str],
    progress: Callable[[], str] | None = None,
    interval: float = 30.0,
    env: Mapping[str, str] | None = None,
) -> int:
    """Start ``workers`` processes ``python argv… --shard i/workers`` (one thread each) and wait for all; they
    share a fresh claim folder ``log_dir/claims`` (see `run_grid`), so they split the cells left evenly.

    ``argv`` is the script and its arguments without ``--workers``/``--shard``. Each worker's output goes to
    ``log_dir/worker<i>.log``; ``progress()`` (e.g. a count of records) is printed every ``interval`` seconds.
    Returns 0 when every worker succeeded, else the first non-zero exit status (after printing the failed
    workers' last log lines).
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}.")
    argv = _without_grid_options(argv)
    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    claims = log_dir / "claims"
    shutil.rmtree(claims, ignore_errors=True)  # claims of an earlier launch: their cells either have records or rerun
    child_env = {**os.environ, **(env or {}), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                 CLAIMS_VARIABLE: str(claims)}  # fmt: skip
    procs = []
    for i in range(workers):
        log = (log_dir / f"worker{i}.log").open("w")
        cmd = [sys.executable, *argv, "--shard", f"{i}/{workers}"]
        procs.append((subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=child_env), log))
    start = next_report = time.perf_counter()
    while any(p.poll() is None for p, _ in procs):
        time.sleep(min(1.0, interval))
        if progress and time.perf_counter() >= next_report + interval:
            next_report += interval
            running = sum(p.poll() is None for p, _ in procs)
            print(f"{next_report - start:6.0f} s: {running} workers running; {progress()}", flush=True)
    status = 0
    for i, (p, log) in enumerate(procs):
        log.close()
        if p.returncode:
            status = status or p.returncode
            tail = (log_dir / f"worker{i}.log").read_text().splitlines()[-20:]
            print(f"worker {i} failed (exit {p.returncode}); last lines of {log_dir / f'worker{i}.log'}:", *tail, sep="\n")
    print(f"{workers} workers done in {time.perf_counter() - start:.0f} s", flush=True)
    return status


def _without_grid_options(argv: Sequence[str]) -> list[str]:
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in ("--workers", "--shard"):
            skip = True
        elif not arg.startswith(("--workers=", "--shard=")):
            out.append(arg)
    return out
