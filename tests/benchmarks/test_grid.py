"""benchmarks/grid.py: a toy grid run in one go, interrupted and resumed, split into shards (in one process and in
worker processes) gives the same records."""

import json
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks.grid import (  # noqa: E402
    add_grid_arguments,
    append_record,
    cell_key,
    expand,
    launch_workers,
    parse_shard,
    pending,
    read_records,
    run_grid,
    shard_cells,
)

SPEC = {"seed": [0, 1, 2], "rate": [0.0, 0.4], "method": ["ce", "lilaw", "elr"]}


def toy_run(cell):
    """A deterministic function of the cell, standing in for a training run."""
    score = 0.9 - cell["rate"] / 2 + {"ce": 0.0, "lilaw": 0.01, "elr": 0.03}[cell["method"]] + cell["seed"] / 1000
    return {"test_accuracy": round(score, 6), "history": [score - 0.1, score]}


def by_key(records):
    return sorted(records, key=lambda r: cell_key(r, SPEC))


def test_expand_orders_cells_and_refuses_duplicates():
    cells = expand(SPEC)
    assert len(cells) == 18
    assert cells[:4] == [
        {"seed": 0, "rate": 0.0, "method": "ce"},
        {"seed": 0, "rate": 0.0, "method": "lilaw"},
        {"seed": 0, "rate": 0.0, "method": "elr"},
        {"seed": 0, "rate": 0.4, "method": "ce"},
    ]
    union = expand([{"seed": [0], "method": ["ce"]}, {"seed": [0, 1], "method": ["oracle"]}])
    assert union == [{"seed": 0, "method": "ce"}, {"seed": 0, "method": "oracle"}, {"seed": 1, "method": "oracle"}]
    with pytest.raises(ValueError, match="twice"):
        expand([{"seed": [0]}, {"seed": [0]}])
    with pytest.raises(ValueError, match="list of values"):
        expand({"method": "ce"})


def test_cell_key_is_canonical():
    assert cell_key({"b": 1, "a": (1, 2)}) == cell_key({"a": [1, 2], "b": 1}) == '{"a":[1,2],"b":1}'
    assert cell_key({"a": 1}) != cell_key({"a": 1.0})
    assert cell_key({"a": 1, "x": 5}, ["a"]) == cell_key({"a": 1})
    with pytest.raises(KeyError, match="lacks"):
        cell_key({"a": 1}, ["a", "b"])


def test_parse_and_shard():
    assert parse_shard("2/5") == (2, 5)
    for bad in ("5/5", "-1/2", "1", "a/b"):
        with pytest.raises(ValueError):
            parse_shard(bad)
    cells = expand(SPEC)
    shards = [shard_cells(cells, i, 4) for i in range(4)]
    assert sorted(map(cell_key, sum(shards, []))) == sorted(map(cell_key, cells))  # a partition
    assert {c["method"] for c in shards[0]} == {"ce", "lilaw", "elr"}  # interleaved: each shard gets every method


def test_run_resume_and_shards_give_the_same_records(tmp_path):
    cells = expand(SPEC)
    whole = run_grid(cells, toy_run, tmp_path / "whole.jsonl", log=None)
    assert len(whole) == 18 and by_key(read_records(tmp_path / "whole.jsonl")) == by_key(whole)
    assert whole[0] == {"seed": 0, "rate": 0.0, "method": "ce", "test_accuracy": 0.9, "history": [0.8, 0.9]}
    assert run_grid(cells, toy_run, tmp_path / "whole.jsonl", log=None) == []  # everything done: nothing runs

    # Interrupted after 7 runs, then resumed: each cell once, same records.
    calls = []

    def failing(cell):
        if len(calls) == 7:
            raise KeyboardInterrupt
        calls.append(cell)
        return toy_run(cell)

    with pytest.raises(KeyboardInterrupt):
        run_grid(cells, failing, tmp_path / "resumed.jsonl", log=None)
    assert len(read_records(tmp_path / "resumed.jsonl")) == 7
    assert len(pending(cells, read_records(tmp_path / "resumed.jsonl"))) == 11
    seen = []
    run_grid(cells, lambda c: seen.append(c) or toy_run(c), tmp_path / "resumed.jsonl", log=None)
    assert len(seen) == 11 and not any(c in calls for c in seen)
    assert by_key(read_records(tmp_path / "resumed.jsonl")) == by_key(whole)

    # Three shards into one file, in any order: the same records.
    for i in (2, 0, 1):
        run_grid(cells, toy_run, tmp_path / "sharded.jsonl", shard=(i, 3), log=None)
    assert by_key(read_records(tmp_path / "sharded.jsonl")) == by_key(whole)


def test_no_run_starts_after_max_minutes(tmp_path):
    import time

    def slow(cell):
        time.sleep(0.1)
        return toy_run(cell)

    cells = expand(SPEC)
    first = run_grid(cells, slow, tmp_path / "runs.jsonl", max_minutes=0.05 / 60, log=None)
    assert len(first) == 1  # the first run starts in time, the second would start after 0.05 s
    rest = run_grid(cells, toy_run, tmp_path / "runs.jsonl", log=None)
    assert len(rest) == 17
    assert by_key(read_records(tmp_path / "runs.jsonl")) == by_key([{**c, **toy_run(c)} for c in cells])


def test_pending_reads_a_missing_field_as_none():
    records = [{"seed": 0, "method": "ce", "acc": 0.9}, {"seed": 1, "method": "ce", "batch": 8, "acc": 0.8}]
    cells = expand({"seed": [0, 1], "method": ["ce"], "batch": [None, 8]})
    assert pending(cells, records) == [{"seed": 0, "method": "ce", "batch": 8}, {"seed": 1, "method": "ce", "batch": None}]


def test_run_one_may_not_change_the_cell(tmp_path):
    with pytest.raises(ValueError, match="other values"):
        run_grid([{"method": "ce"}], lambda c: {"method": "sce"}, tmp_path / "x.jsonl", log=None)
    with pytest.raises(ValueError, match="same fields"):
        run_grid([{"method": "ce"}, {"method": "ce", "seed": 1}], toy_run, tmp_path / "x.jsonl", log=None)


def test_cut_off_last_line_is_a_run_not_done(tmp_path):
    path = tmp_path / "runs.jsonl"
    append_record(path, {"seed": 0, "x": 1})
    with path.open("a") as f:
        f.write('{"seed": 1, "x"')  # a process killed mid-write
    assert read_records(path) == [{"seed": 0, "x": 1}]
    append_record(path, {"seed": 1, "x": 2})  # starts on a new line
    assert path.read_text().splitlines()[-1] == '{"seed": 1, "x": 2}'
    with pytest.raises(ValueError, match="line 2"):
        read_records(path)  # the broken line is no longer the last: an error naming it
    assert read_records(tmp_path / "missing.jsonl") == []
    append_record(tmp_path / "other.jsonl", {"a": 1})
    with pytest.raises(ValueError, match=r"line 1: the record lacks \['b'\]"):
        read_records(tmp_path / "other.jsonl", required=["b"])


def test_worker_processes_split_the_grid(tmp_path):
    script = tmp_path / "toy_grid.py"
    script.write_text(textwrap.dedent(f"""
        import argparse, os, sys
        sys.path.insert(0, {str(ROOT)!r})
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from benchmarks.grid import add_grid_arguments, expand, launch_workers, run_grid
        from test_grid import SPEC, toy_run

        parser = argparse.ArgumentParser()
        parser.add_argument("--out")
        add_grid_arguments(parser)
        args = parser.parse_args()
        if args.workers:
            sys.exit(launch_workers(sys.argv[1:], args.workers, log_dir=os.path.dirname(args.out)))
        assert os.environ["OMP_NUM_THREADS"] == "1"
        run_grid(expand(SPEC), toy_run, args.out, shard=args.shard)
    """))
    out = tmp_path / "runs.jsonl"
    assert launch_workers([str(script), "--out", str(out), "--workers", "9"], 3, log_dir=tmp_path) == 0
    records = read_records(out)
    assert by_key(records) == by_key([{**c, **toy_run(c)} for c in expand(SPEC)])
    assert len(records) == len({cell_key(r, SPEC) for r in records})  # no cell ran twice
    assert "claiming from the cells left: 18 cells," in (tmp_path / "worker1.log").read_text()
    # A failing worker makes the launcher fail.
    assert launch_workers([str(script), "--out", str(tmp_path)], 2, log_dir=tmp_path / "bad") != 0


def test_claims_split_the_cells_left_without_overlap(tmp_path):
    cells = expand(SPEC)
    out = tmp_path / "runs.jsonl"
    left = [cells[0], cells[3], cells[6]]  # a resumed grid whose 3 cells left all fall in shard 0/3's share
    for cell in cells:
        if cell not in left:
            append_record(out, {**cell, **toy_run(cell)})
    claims, second = tmp_path / "claims", []

    def first_run(cell):  # while the first process runs its first cell, a second one starts
        if not second:
            second.append(run_grid(cells, toy_run, out, shard=(1, 3), claims=claims, log=None))
        return toy_run(cell)

    first = run_grid(cells, first_run, out, shard=(0, 3), claims=claims, log=None)
    # Each process takes the next unclaimed cell in grid order: the work is split, and none runs twice.
    assert [cell_key(r, SPEC) for r in first] == [cell_key(left[0])]
    assert [cell_key(r, SPEC) for r in second[0]] == [cell_key(c) for c in left[1:]]
    assert by_key(read_records(out)) == by_key([{**c, **toy_run(c)} for c in cells])
    # Without claims, shard 1/3 would have had nothing to run and shard 0/3 all three, one after another.
    assert pending(shard_cells(cells, 1, 3), read_records(out)[:15]) == []
    assert len(pending(shard_cells(cells, 0, 3), read_records(out)[:15])) == 3


def test_grid_arguments():
    import argparse

    parser = argparse.ArgumentParser()
    add_grid_arguments(parser)
    args = parser.parse_args(["--shard", "1/4", "--summary"])
    assert (args.shard, args.workers, args.summary, args.max_minutes) == ((1, 4), 0, True, None)
    assert json.loads(cell_key({"shard": list(args.shard)})) == {"shard": [1, 4]}
