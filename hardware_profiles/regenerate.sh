#!/usr/bin/env bash
# Rebuild every calibrated hardware profile from the measurements in the repo (run from the repo root).
# h200 first: the others take what their own measurements lack from it (--like).
set -euo pipefail
cd "$(dirname "$0")/.."
# vLLM's published H100 all-reduce timings, one row per backend (calibration/collectives/README.md)
python -m simulator.fit.vllm_all_reduce_table calibration/collectives/vllm/pr24111_h100.csv \
  --out calibration/collectives/vllm/h100_vllm_backends.csv
# H200 NCCL: the H100 DGX's all-reduce and send/recv timings (Vidur; assumption: the same NCCL over the same
# NVLink 4 / NVSwitch at the same 450 GB/s per direction, which the single-GPU device cannot measure)
rlsim fit kernels --base h200 calibration/h200/shared calibration/h200/measured \
  calibration/vidur/network__h100_dgx__all_reduce.csv calibration/vidur/network__h100_dgx__send_recv.csv \
  --out hardware_profiles/h200.yaml
# H200: the H100's vLLM all-reduce curves (assumption: the same SM 9.0 kernels over the same NVLink 4 / NVSwitch)
rlsim fit collectives calibration/collectives/vllm/h100_vllm_backends.csv --profile hardware_profiles/h200.yaml \
  --out hardware_profiles/h200.yaml
rlsim fit kernels --base h100 calibration/vidur/compute__h100__meta-llama__Llama-2-7b-hf__mlp.csv \
  calibration/vidur/compute__h100__meta-llama__Llama-2-70b-hf__mlp.csv calibration/vidur/network__h100_dgx__all_reduce.csv \
  calibration/vidur/network__h100_dgx__send_recv.csv --like hardware_profiles/h200.yaml --out hardware_profiles/h100.yaml
rlsim fit collectives calibration/collectives/vllm/h100_vllm_backends.csv --profile hardware_profiles/h100.yaml \
  --out hardware_profiles/h100.yaml
rlsim fit kernels --base a100 calibration/vidur/compute__a100__meta-llama__Meta-Llama-3-8B__mlp.csv \
  calibration/vidur/compute__a100__meta-llama__Meta-Llama-3-70B__mlp.csv --like hardware_profiles/h200.yaml \
  --out hardware_profiles/a100.yaml
rlsim fit kernels --base b200 --like hardware_profiles/h200.yaml --out hardware_profiles/b200.yaml
rlsim fit kernels --base gb200 --like hardware_profiles/h200.yaml --out hardware_profiles/gb200.yaml
