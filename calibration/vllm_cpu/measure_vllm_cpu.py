"""Measure vLLM V1's per-iteration CPU cost on the critical path, as a function of running sequences.

vLLM's real engine (scheduler, KV-cache manager, output processor, LLM.generate loop) runs on the CPU; only the
model executor is replaced by a stand-in whose "GPU" step is a sleep of --gpu-ms milliseconds in a worker thread
(time.sleep releases the GIL, as a CUDA launch does). What the wall clock shows beyond that sleep is the CPU time
the engine leaves exposed per iteration. Requests are token-id prompts (NeMo-RL passes token ids and skips the
tokenizer) asking for the sampled token's logprob (SamplingParams(logprobs=0), as NeMo-RL's vLLM worker does),
generating exactly --tokens tokens each (ignore_eos), so every iteration after the first decodes all B sequences.

Not measured: the model runner's own CPU work (input preparation, sampler bookkeeping) and Ray/IPC to TP workers.

Set-up (CPU only; vLLM is imported but never touches a GPU):
  python3 -m venv /tmp/vlenv && . /tmp/vlenv/bin/activate
  pip install torch==2.13.0            # CPU build
  pip install --no-deps vllm==0.17.1   # the vLLM NeMo-RL r0.6 most likely ran (workloads/published/nemo_rl_recipes.md sec. 0)
  pip install regex cachetools psutil numpy msgspec pyzmq "transformers<5" tokenizers cloudpickle blake3 pydantic \
      pyyaml filelock cbor2 pybase64 prometheus_client tqdm einops py-cpuinfo requests sentencepiece setproctitle \
      openai-harmony gguf partial-json-parser lark==1.2.2 diskcache ijson watchfiles python-json-logger fastapi \
      "openai<2.25.0" aiohttp pillow depyf==0.20.0 "mistral_common>=1.9.1" tiktoken lm-format-enforcer==0.11.3 \
      llguidance xgrammar
  pip install --no-deps compressed-tensors==0.13.0
Run:
  python calibration/vllm_cpu/measure_vllm_cpu.py --out calibration/vllm_cpu/vllm_cpu_overhead.csv
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import tempfile
import time
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from python_speed_probe import cpu_name  # this folder (the script's own directory is on sys.path)


def _llama8b_config_dir() -> str:
    """A local HF config.json of Llama-3.1-8B's shape (no weights are read: the executor is a stand-in)."""
    d = tempfile.mkdtemp(prefix="rlsim-vllm-cpu-")
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096,
           "intermediate_size": 14336, "num_attention_heads": 32, "num_key_value_heads": 8,
           "num_hidden_layers": 32, "vocab_size": 128256, "max_position_embeddings": 131072,
           "rms_norm_eps": 1e-5, "rope_theta": 500000.0, "torch_dtype": "bfloat16", "bos_token_id": 128000,
           "eos_token_id": [128001, 128008, 128009], "hidden_act": "silu", "tie_word_embeddings": False,
           "head_dim": 128, "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                             "original_max_position_embeddings": 8192, "rope_type": "llama3"}}
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f)
    return d


def _install_cpu_platform() -> None:
    import vllm.platforms as platforms
    from vllm.platforms.cpu import CpuPlatform

    class StandInPlatform(CpuPlatform):
        @classmethod
        def import_kernels(cls) -> None:  # no compiled kernels are needed: nothing runs on a device
            pass

        @classmethod
        def check_and_update_config(cls, vllm_config) -> None:
            # the CPU platform turns async scheduling off; keep what the caller asked for, as on a GPU
            asked = vllm_config.scheduler_config.async_scheduling
            super().check_and_update_config(vllm_config)
            vllm_config.scheduler_config.async_scheduling = asked
            os.environ["VLLM_WORKER_MULTIPROC_METHOD"] = "fork"  # the engine-core process keeps these patches

    platforms._current_platform = StandInPlatform()


def _executor_class():
    import torch
    from vllm.v1.executor.abstract import Executor
    from vllm.v1.kv_cache_interface import FullAttentionSpec
    from vllm.v1.outputs import EMPTY_MODEL_RUNNER_OUTPUT, LogprobsLists, ModelRunnerOutput

    gpu_s = float(os.environ["RLSIM_FAKE_GPU_MS"]) / 1e3

    class StandInExecutor(Executor):
        """Answers the engine's calls; a step "runs" for gpu_s seconds in a worker thread."""
        uses_ray = False
        supports_pp = False

        def _init_executor(self) -> None:
            rng = np.random.default_rng(0)
            n = 4096
            self.toks = rng.integers(1000, 100000, size=(n, 1)).astype(np.int32)
            self.tok_lists = [[int(t)] for t in self.toks[:, 0]]
            self.lps = rng.random((n, 1)).astype(np.float32)
            self.ranks = np.ones(n, dtype=np.int32)
            self.pool = ThreadPoolExecutor(max_workers=1)
            self.pending: list = []
            # vLLM 0.11.x's ModelRunnerOutput has two more required fields (empty for plain generation, as its GPU
            # runner leaves them); later versions give them defaults or dropped them
            required = {f.name for f in dataclasses.fields(ModelRunnerOutput)
                        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
            self.older_fields = {k: v for k, v in (("prompt_logprobs_dict", {}), ("pooler_output", []))
                                 if k in required}
            # and takes each request's sampled tokens as a numpy array (its scheduler calls .tolist()), where later
            # versions take lists
            sampled = next(f for f in dataclasses.fields(ModelRunnerOutput) if f.name == "sampled_token_ids")
            if "ndarray" in str(sampled.type):
                self.tok_lists = list(self.toks)

        @property
        def max_concurrent_batches(self) -> int:
            return 2 if self.vllm_config.scheduler_config.async_scheduling else 1

        def collective_rpc(self, method, timeout=None, args=(), kwargs=None, non_block=False):
            name = method if isinstance(method, str) else getattr(method, "__name__", "")
            res = {"determine_available_memory": lambda: 40 * 2**30,
                   "get_kv_cache_spec": self._kv_spec,
                   "get_supported_tasks": lambda: ("generate",)}.get(name, lambda: None)()
            out = [res]
            if non_block:
                f: Future = Future()
                f.set_result(out)
                return f
            return out

        def _kv_spec(self):
            hf = self.vllm_config.model_config.hf_config
            bs = self.vllm_config.cache_config.block_size
            return {f"model.layers.{i}.self_attn.attn": FullAttentionSpec(
                block_size=bs, num_kv_heads=hf.num_key_value_heads, head_size=128, dtype=torch.bfloat16)
                for i in range(hf.num_hidden_layers)}

        def _run(self, so):
            time.sleep(gpu_s)
            req_ids = list(so.num_scheduled_tokens.keys())
            n = len(req_ids)
            # the sampled tokens and their logprobs, as the GPU model runner hands them back (precomputed, so
            # that the stand-in adds next to no CPU time of its own)
            lp = LogprobsLists(logprob_token_ids=self.toks[:n], logprobs=self.lps[:n],
                               sampled_token_ranks=self.ranks[:n])
            return ModelRunnerOutput(req_ids=req_ids, req_id_to_index={r: i for i, r in enumerate(req_ids)},
                                     sampled_token_ids=self.tok_lists[:n], logprobs=lp, **self.older_fields)

        def execute_model(self, scheduler_output, non_block=False):
            if scheduler_output.total_num_scheduled_tokens == 0:
                res = EMPTY_MODEL_RUNNER_OUTPUT  # nothing to run: the real runner answers at once
            else:
                self.pending.append(self.pool.submit(self._run, scheduler_output))
                res = None  # sample_tokens() collects the step
            if non_block:
                f: Future = Future()
                f.set_result(res)
                return f
            return res

        def sample_tokens(self, grammar_output, non_block=False):
            fut = self.pending.pop(0)
            return fut if non_block else fut.result()

        def check_health(self) -> None:
            pass

        def shutdown(self) -> None:
            self.pool.shutdown(wait=False)

    return StandInExecutor


def run_one(batch: int, tokens: int, async_scheduling: bool) -> float:
    """Seconds per iteration (wall) for `batch` sequences generating `tokens` tokens each."""
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt

    from vllm.v1.executor.abstract import Executor

    stand_in = _executor_class()
    # the engine asks for the "uni" (single-process) executor, whose async-scheduling path vLLM allows; it gets the
    # stand-in instead
    Executor.get_class = staticmethod(lambda vllm_config: stand_in)
    llm = LLM(model=_llama8b_config_dir(), skip_tokenizer_init=True, distributed_executor_backend="uni",
              max_model_len=4096, enforce_eager=True, load_format="dummy", max_num_seqs=max(batch, 1), block_size=16,
              max_num_batched_tokens=max(16384, batch * 131), async_scheduling=async_scheduling,
              enable_prefix_caching=True, disable_log_stats=False)
    prompts = [TokensPrompt(prompt_token_ids=list(range(1000 + i, 1130 + i))) for i in range(batch)]
    sp = SamplingParams(max_tokens=tokens, ignore_eos=True, logprobs=0, temperature=1.0)
    llm.generate(prompts[: min(batch, 8)], SamplingParams(max_tokens=8, ignore_eos=True), use_tqdm=False)
    t0 = time.perf_counter()
    outs = llm.generate(prompts, sp, use_tqdm=False)
    wall = time.perf_counter() - t0
    assert all(len(o.outputs[0].token_ids) == tokens for o in outs)
    del llm
    return wall / tokens


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--batches", default="1,16,64,128,256,512")
    ap.add_argument("--tokens", type=int, default=200)
    ap.add_argument("--gpu-ms", type=float, default=10.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--multiprocessing", default="0,1", help="VLLM_ENABLE_V1_MULTIPROCESSING values to run")
    ap.add_argument("--async-scheduling", default="0,1", help="async_scheduling values to run (0 off, 1 on)")
    args = ap.parse_args()
    os.environ["RLSIM_FAKE_GPU_MS"] = str(args.gpu_ms)
    _install_cpu_platform()
    import vllm

    rows = []
    # multiprocessing 0: the engine core runs in the caller's process (NeMo-RL's vllm.LLM workers set
    # VLLM_ENABLE_V1_MULTIPROCESSING=0); 1: in its own process, as AsyncLLM always runs it
    for mp in args.multiprocessing.split(","):
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = mp
        for async_sched in (bool(int(a)) for a in args.async_scheduling.split(",")):
            for b in (int(x) for x in args.batches.split(",")):
                per = sorted(run_one(b, args.tokens, async_sched) for _ in range(args.repeats))
                med = per[len(per) // 2]
                rows.append({"vllm": vllm.__version__, "multiprocessing": int(mp),
                             "async_scheduling": int(async_sched), "batch": b, "tokens": args.tokens,
                             "gpu_s": args.gpu_ms / 1e3, "iteration_s": round(med, 7),
                             "exposed_cpu_s": round(med - args.gpu_ms / 1e3, 7), "cpu": cpu_name()})
                print(f"mp={mp} async_sched={int(async_sched)} batch={b:5d} iteration {med*1e3:8.3f} ms "
                      f"exposed {1e3*(med - args.gpu_ms/1e3):7.3f} ms", flush=True)
    with open(args.out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


if __name__ == "__main__":
    main()
