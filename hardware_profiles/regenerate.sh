#!/usr/bin/env bash
# Rebuild every calibrated hardware profile from the measurements in the repo (run from the repo root).
# h200 first: the others take what their own measurements lack from it (--like).
set -euo pipefail
cd "$(dirname "$0")/.."
rlsim fit kernels --base h200 calibration/h200/shared calibration/h200/measured --out hardware_profiles/h200.yaml
rlsim fit kernels --base h100 calibration/vidur/compute__h100__meta-llama__Llama-2-7b-hf__mlp.csv \
  calibration/vidur/compute__h100__meta-llama__Llama-2-70b-hf__mlp.csv calibration/vidur/network__h100_dgx__all_reduce.csv \
  calibration/vidur/network__h100_dgx__send_recv.csv --like hardware_profiles/h200.yaml --out hardware_profiles/h100.yaml
rlsim fit kernels --base a100 calibration/vidur/compute__a100__meta-llama__Meta-Llama-3-8B__mlp.csv \
  calibration/vidur/compute__a100__meta-llama__Meta-Llama-3-70B__mlp.csv --like hardware_profiles/h200.yaml \
  --out hardware_profiles/a100.yaml
rlsim fit kernels --base b200 --like hardware_profiles/h200.yaml --out hardware_profiles/b200.yaml
rlsim fit kernels --base gb200 --like hardware_profiles/h200.yaml --out hardware_profiles/gb200.yaml
