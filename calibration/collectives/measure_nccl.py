#!/usr/bin/env python3
"""NCCL collective timings for rlsim's collective cost model (simulator/costmodel/collectives.py).

One process per GPU, torch.distributed over NCCL, bf16 buffers, message sizes 4 KiB .. 1 GiB (powers of 2), for
groups of 2, 4, 8 ... GPUs (the first n ranks; the others wait) up to the GPUs present: all_reduce,
all_gather (all_gather_into_tensor), reduce_scatter (reduce_scatter_tensor), all_to_all (all_to_all_single) and
send_recv (rank 0 sends to rank 1). NVLink multicast stays off (NCCL_NVLS_ENABLE=0,
TORCH_SYMM_MEM_DISABLE_MULTICAST=1, NVSHMEM_DISABLE_NVLS=1 are set here before torch loads, and checked in
every worker).

    OUT=dir python3 calibration/collectives/measure_nccl.py              # every GPU of this host
    OUT=dir torchrun --nproc-per-node 8 calibration/collectives/measure_nccl.py   # the same under torchrun
    SMOKE=1 OUT=dir python3 calibration/collectives/measure_nccl.py      # CPU check: gloo, 2 processes, tiny sizes

Timing (MODE=graph, the default): warm-up calls, then `inner` back-to-back calls captured in one CUDA graph (the
GPU time alone, as in vLLM's graph-captured decode); each rank times `reps` replays with CUDA events after a
group-wide synchronisation; per rank the median per call; the figure is the slowest rank's median (a collective
ends when its last rank does). `inner` and `reps` adapt to the size (replays of >= ~1 ms, >= 5 replays). MODE=eager
times `inner` eager calls the same way (CPU launch costs then show for small messages). A group whose capture
fails on any rank is timed eagerly and its rows say `mode=eager`.

Sizes (`bytes`), as `collective_time(hw, op, size_bytes, group)` takes them (NCCL-tests' convention):
all_reduce the buffer; all_gather the full output (n shards); reduce_scatter the full input; all_to_all the
per-GPU send buffer; send_recv the message. busbw_GBps = algorithm bytes per GPU / time: 2(n-1)/n x bytes
for all_reduce, (n-1)/n x bytes for all_gather / reduce_scatter / all_to_all, bytes for send_recv.

Writes to $OUT (rewritten after every (collective, group) sweep, so a killed run leaves what it measured):
  nccl.csv          collective,gpus,bytes,us,us_min,us_max,algbw_GBps,busbw_GBps,mode,inner,reps,dtype
                    (us: the slowest rank's median per call; us_min / us_max: the fastest / slowest replay
                    of that rank); `#` lines on top: device, versions, settings
  nccl_device.json  torch / CUDA / NCCL versions, GPU names, host, environment, `nvidia-smi topo -m`,
                    settings, what was measured and whether the time budget cut it short

Environment: OUT (default .), BUDGET_S (default 480: the whole run, start-up included; sweeps that would
overrun it are cut short), OPS (default all_reduce,all_gather,reduce_scatter,all_to_all,send_recv),
GROUPS (default 2,4,8,...,the GPU count), MIN_BYTES (4096), MAX_BYTES (1073741824), STEPS_PER_OCTAVE (1),
MODE (graph | eager), NPROC (processes; default: the GPU count), TARGET_MS (per (size, group) timing, 40),
SMOKE=1 (gloo on CPU, 2 processes, 4 KiB .. 128 KiB, eager; checks the logic, times nothing meaningful).
"""
from __future__ import annotations

import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
import warnings

# before torch (and NCCL) load: NVLink multicast (NVLS) off, everywhere
MULTICAST_OFF = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1", "NVSHMEM_DISABLE_NVLS": "1"}
os.environ.update(MULTICAST_OFF)

T0 = time.time()
OPS = ("all_reduce", "all_gather", "reduce_scatter", "all_to_all", "send_recv")
ELEM = 2  # bf16
COLUMNS = ["collective", "gpus", "bytes", "us", "us_min", "us_max", "algbw_GBps", "busbw_GBps", "mode", "inner",
           "reps", "dtype"]

# algorithm bytes per GPU / bytes (NCCL-tests' bus bandwidth factors; the same as rlsim's ALGO_FACTOR)
BUS_FACTOR = {
    "all_reduce": lambda n: 2.0 * (n - 1) / n,
    "all_gather": lambda n: (n - 1) / n,
    "reduce_scatter": lambda n: (n - 1) / n,
    "all_to_all": lambda n: (n - 1) / n,
    "send_recv": lambda n: 1.0,
}


# ------------------------------------------------------------------ plan (no torch needed)
def config(env=None) -> dict:
    """Settings from the environment (see the module docstring)."""
    env = os.environ if env is None else env
    smoke = env.get("SMOKE", "") not in ("", "0")
    ops = [o.strip() for o in env.get("OPS", ",".join(OPS)).split(",") if o.strip()]
    bad = [o for o in ops if o not in OPS]
    if bad:
        raise SystemExit(f"measure_nccl: unknown OPS {bad} (known: {', '.join(OPS)})")
    mode = env.get("MODE", "eager" if smoke else "graph")
    if mode not in ("graph", "eager"):
        raise SystemExit(f"measure_nccl: MODE must be graph or eager (got {mode!r})")
    cfg = {
        "smoke": smoke,
        "out": env.get("OUT", "."),
        "budget_s": float(env.get("BUDGET_S", "60" if smoke else "480")),
        "ops": ops,
        "groups": [int(g) for g in env["GROUPS"].split(",")] if env.get("GROUPS") else None,
        "min_bytes": int(env.get("MIN_BYTES", 4096)),
        "max_bytes": int(env.get("MAX_BYTES", 131072 if smoke else 1 << 30)),
        "steps_per_octave": int(env.get("STEPS_PER_OCTAVE", 1)),
        "mode": mode,
        "nproc": int(env["NPROC"]) if env.get("NPROC") else (2 if smoke else None),
        "target_s": float(env.get("TARGET_MS", 5 if smoke else 40)) / 1000.0,
        "t0": T0,
    }
    if cfg["min_bytes"] <= 0 or cfg["max_bytes"] < cfg["min_bytes"] or cfg["steps_per_octave"] < 1:
        raise SystemExit("measure_nccl: need 0 < MIN_BYTES <= MAX_BYTES and STEPS_PER_OCTAVE >= 1")
    return cfg


def sizes(min_bytes: int, max_bytes: int, steps_per_octave: int = 1) -> list[int]:
    """Message sizes from min to max: powers of 2 (and steps between them), multiples of 1 KiB above 1 KiB."""
    out = []
    k = 0
    while True:
        b = min_bytes * 2.0 ** (k / steps_per_octave)
        if b > max_bytes * (1 + 1e-9):
            break
        b = int(round(b / 1024.0)) * 1024 if b >= 1024 else int(round(b))
        if not out or b > out[-1]:
            out.append(b)
        k += 1
    return out


def groups_for(world: int, requested: list[int] | None = None) -> list[int]:
    """Group sizes to time: 2, 4, 8, ... up to the world size, and the world size itself."""
    if requested:
        return sorted({g for g in requested if 2 <= g <= world})
    gs, g = [], 2
    while g <= world:
        gs.append(g)
        g *= 2
    if world >= 2 and world not in gs:
        gs.append(world)
    return gs


def buffer_plan(op: str, size_bytes: int, n: int, elem: int = ELEM) -> tuple[int, int, int]:
    """(input elements, output elements, recorded bytes) for `op` on `n` GPUs near `size_bytes` (the convention
    of the module docstring; sizes are rounded down to whole elements and whole shards)."""
    if op in ("all_reduce", "send_recv"):
        e = max(size_bytes // elem, 1)
        return e, e, e * elem
    shard = max(size_bytes // (elem * n), 1)
    if op == "all_gather":
        return shard, shard * n, shard * n * elem
    if op == "reduce_scatter":
        return shard * n, shard, shard * n * elem
    if op == "all_to_all":
        return shard * n, shard * n, shard * n * elem
    raise ValueError(op)


def bus_bandwidth_GBps(op: str, n: int, nbytes: int, us: float) -> float:
    return BUS_FACTOR[op](n) * nbytes / (us * 1e-6) / 1e9


def iterations(est_s: float, target_s: float, graph: bool) -> tuple[int, int]:
    """(calls per timed replay, replays) for a call of about est_s seconds: replays of >= ~1 ms (graph) or
    >= ~0.3 ms (eager), at least 5 replays, about target_s in all."""
    est_s = max(est_s, 1e-6)
    inner = int(min(max(round((1e-3 if graph else 3e-4) / est_s), 1), 100))
    reps = int(min(max(round(target_s / (inner * est_s)), 5), 25))
    return inner, reps


def rows_to_csv(rows: list[dict], header: list[str]) -> str:
    lines = [f"# {h}" for h in header] + [",".join(COLUMNS)]
    for r in rows:
        lines.append(",".join(_fmt(r[c]) for c in COLUMNS))
    return "\n".join(lines) + "\n"


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.6g}" if abs(v) < 1e6 else f"{v:.0f}"
    return str(v)


def write_atomic(path: str, text: str) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def log(*a) -> None:
    print(f"[{time.time() - T0:6.1f}s]", *a, flush=True)


# ------------------------------------------------------------------ the workers
def _check_env() -> None:
    for k, v in MULTICAST_OFF.items():
        assert os.environ.get(k) == v, f"{k} must be {v} (NVLink multicast stays off), is {os.environ.get(k)!r}"


def _device_info(torch, dist, smoke: bool, world: int) -> dict:
    info = {"torch": torch.__version__, "python": platform.python_version(), "host": socket.gethostname(),
            "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "world_size": world,
            "backend": "gloo" if smoke else "nccl",
            "env": {k: v for k, v in sorted(os.environ.items())
                    if k.startswith(("NCCL_", "TORCH_NCCL", "TORCH_SYMM_MEM", "NVSHMEM_", "CUDA_VISIBLE"))}}
    if smoke:
        names = [f"cpu:{platform.processor() or platform.machine()}"]
    else:
        names = [torch.cuda.get_device_name(torch.cuda.current_device())]
        info["cuda"] = torch.version.cuda
        try:
            v = torch.cuda.nccl.version()
            info["nccl"] = ".".join(map(str, v)) if isinstance(v, tuple) else str(v)
        except Exception as e:  # noqa: BLE001
            info["nccl"] = f"unknown ({type(e).__name__})"
        n = torch.cuda.device_count()
        info["cuda_device_count"] = n
        info["peer_access"] = [[i == j or bool(torch.cuda.can_device_access_peer(i, j)) for j in range(n)]
                               for i in range(n)]
        try:
            info["nvidia_smi_topo"] = subprocess.run(["nvidia-smi", "topo", "-m"], capture_output=True, text=True,
                                                     timeout=20).stdout
        except Exception as e:  # noqa: BLE001
            info["nvidia_smi_topo"] = f"unavailable ({type(e).__name__})"
    gathered = [None] * world
    dist.all_gather_object(gathered, names[0])
    info["gpu_names"] = gathered
    info["name"] = gathered[0]
    return info


def worker(rank: int, world: int, cfg: dict, port: int | None) -> None:
    _check_env()
    warnings.filterwarnings("ignore", category=FutureWarning)  # all_gather_into_tensor's rename in newer torch
    from datetime import timedelta

    import torch
    import torch.distributed as dist

    smoke = cfg["smoke"]
    if smoke:
        device = torch.device("cpu")
        backend = "gloo"
    else:
        local = int(os.environ.get("LOCAL_RANK", rank))
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
        backend = "nccl"
    init = f"tcp://127.0.0.1:{port}" if port else "env://"
    # communicators are made lazily, by the members of each group at its first collective
    dist.init_process_group(backend=backend, init_method=init, rank=rank, world_size=world,
                            timeout=timedelta(seconds=180))
    _check_env()

    def barrier():
        if smoke:
            dist.barrier()
        else:
            dist.barrier(device_ids=[device.index])
    dtype = torch.bfloat16
    deadline = cfg["t0"] + cfg["budget_s"]
    graph = cfg["mode"] == "graph" and not smoke
    info = _device_info(torch, dist, smoke, world)
    groups = groups_for(world, cfg["groups"])
    pgs = {n: (None if n == world else dist.new_group(list(range(n)))) for n in groups}
    if "send_recv" in cfg["ops"] and 2 not in pgs and world >= 2:
        pgs[2] = None if world == 2 else dist.new_group([0, 1])
    size_list = sizes(cfg["min_bytes"], cfg["max_bytes"], cfg["steps_per_octave"])

    def sync(pg):
        t = torch.ones(1, device=device)
        dist.all_reduce(t, group=pg)
        if not smoke:
            torch.cuda.synchronize()

    def agree(flag: bool) -> bool:
        """rank 0's decision, for every rank."""
        t = torch.tensor([1.0 if flag else 0.0], device=device)
        dist.broadcast(t, 0)
        return bool(t.item() > 0.5)

    def slowest(vals: list[float], pg) -> list[float]:
        t = torch.tensor(vals, dtype=torch.float64, device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX, group=pg)
        return t.tolist()

    # correctness first: a sum over each group
    for n, pg in sorted(pgs.items()):
        if rank < n:
            x = torch.ones(1024, dtype=dtype, device=device)
            dist.all_reduce(x, group=pg)
            assert float(x[0]) == n, f"all_reduce over {n} ranks gave {float(x[0])}, not {n}"
    barrier()
    if rank == 0:
        log(f"{world} ranks ({info['name']}), groups {groups}, {len(size_list)} sizes "
            f"{size_list[0]}..{size_list[-1]} B, ops {','.join(cfg['ops'])}, mode {cfg['mode']}")

    rows: list[dict] = []
    cut: list[str] = []

    def flush(done: bool) -> None:
        if rank != 0:
            return
        meta = dict(info, mode=cfg["mode"], budget_s=cfg["budget_s"], elapsed_s=round(time.time() - cfg["t0"], 1),
                    groups=groups, ops=cfg["ops"], sizes=size_list, dtype="bf16", complete=done and not cut,
                    cut_short=cut, rows=len(rows), command=" ".join([os.path.basename(sys.executable)] + sys.argv),
                    convention="bytes as collective_time takes them: all_reduce buffer, all_gather full output, "
                               "reduce_scatter full input, all_to_all per-GPU send buffer, send_recv message")
        header = [f"measure_nccl.py on {info['name']} x{world}, torch {info['torch']}, "
                  f"NCCL {info.get('nccl', '-')}, CUDA {info.get('cuda', '-')}, {info['date_utc']}",
                  f"mode {cfg['mode']}, bf16, multicast off ({', '.join(f'{k}={v}' for k, v in MULTICAST_OFF.items())})"
                  + ("" if done and not cut else "; INCOMPLETE: " + ("; ".join(cut) or "still running"))]
        os.makedirs(cfg["out"], exist_ok=True)
        write_atomic(os.path.join(cfg["out"], "nccl.csv"), rows_to_csv(rows, header))
        write_atomic(os.path.join(cfg["out"], "nccl_device.json"), json.dumps(meta, indent=1) + "\n")

    for op in cfg["ops"]:
        op_groups = [2] if op == "send_recv" else groups
        for n in op_groups:
            if n > world:
                continue
            pg = pgs.get(n)
            member = rank < n
            last_cost = 0.0
            op_mode = cfg["mode"] if not smoke else "eager"
            for size in size_list:
                left = deadline - time.time()
                reserve = min(15.0, 0.1 * cfg["budget_s"])  # for the last writes and the shutdown
                go = agree(left > reserve and last_cost * 2.5 < left - reserve)
                if not go:
                    if rank == 0:
                        cut.append(f"{op} gpus={n} from {size} B (time budget)")
                        log(f"{op} n={n}: stopping at {size} B, {left:.0f} s left")
                    break
                t_start = time.time()
                res = None
                if member:
                    res, op_mode = _time_one(torch, dist, op, size, n, pg, rank, device, dtype, graph, op_mode,
                                             cfg["target_s"], sync, slowest)
                barrier()
                last_cost = time.time() - t_start
                if rank == 0 and res is not None:
                    nbytes, us, us_min, us_max, inner, reps = res
                    bus = bus_bandwidth_GBps(op, n, nbytes, us)
                    rows.append({"collective": op, "gpus": n, "bytes": nbytes, "us": us, "us_min": us_min,
                                 "us_max": us_max, "algbw_GBps": nbytes / (us * 1e-6) / 1e9, "busbw_GBps": bus,
                                 "mode": op_mode, "inner": inner, "reps": reps, "dtype": "bf16"})
                    if smoke or size >= (1 << 20) or size == size_list[0]:
                        log(f"{op:14s} n={n} {nbytes:>11d} B {us:9.1f} us  busbw {bus:7.1f} GB/s "
                            f"({op_mode}, {inner}x{reps})")
            flush(False)
    flush(True)
    barrier()
    dist.destroy_process_group()


def _time_one(torch, dist, op, size, n, pg, rank, device, dtype, graph, mode, target_s, sync, slowest):
    """(bytes, us, us_min, us_max, inner, reps) of one (op, size, group), and the mode it was timed in."""
    n_in, n_out, nbytes = buffer_plan(op, size, n)
    inp = torch.zeros(n_in, dtype=dtype, device=device)
    out = inp if op == "all_reduce" else torch.zeros(n_out, dtype=dtype, device=device)
    if op == "all_reduce":
        def fn():
            dist.all_reduce(inp, group=pg)
    elif op == "all_gather":
        def fn():
            dist.all_gather_into_tensor(out, inp, group=pg)
    elif op == "reduce_scatter":
        def fn():
            dist.reduce_scatter_tensor(out, inp, group=pg)
    elif op == "all_to_all":
        def fn():
            dist.all_to_all_single(out, inp, group=pg)
    else:  # send_recv: global rank 0 -> 1
        def fn():
            if rank == 0:
                dist.send(inp, 1, group=pg)
            else:
                dist.recv(inp, 0, group=pg)
    cpu = device.type == "cpu"

    def clock_eager(k):
        if cpu:
            t = time.perf_counter()
            for _ in range(k):
                fn()
            return (time.perf_counter() - t) / k
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        for _ in range(k):
            fn()
        b.record()
        b.synchronize()
        return a.elapsed_time(b) * 1e-3 / k

    for _ in range(3):  # warm-up (and the group's NCCL communicator on first use)
        fn()
    sync(pg)
    est = slowest([clock_eager(2)], pg)[0]
    inner, reps = iterations(est, target_s, graph and mode == "graph")
    g = None
    if graph and mode == "graph":
        ok = 1.0
        try:
            s = torch.cuda.Stream()
            s.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(s):
                fn()
            torch.cuda.current_stream().wait_stream(s)
            torch.cuda.synchronize()
            g = torch.cuda.CUDAGraph()
            with torch.cuda.graph(g):
                for _ in range(inner):
                    fn()
            torch.cuda.synchronize()
        except Exception as e:  # noqa: BLE001
            log(f"rank {rank}: {op} n={n} {size} B: CUDA-graph capture failed ({type(e).__name__}: "
                f"{' '.join(str(e).split())[:160]}); timing eagerly")
            g, ok = None, 0.0
        t = torch.tensor([ok], device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MIN, group=pg)
        if t.item() < 0.5:
            g, mode = None, "eager"
            inner, reps = iterations(est, target_s, False)
        else:
            g.replay()
            torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        sync(pg)
        if g is not None:
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            g.replay()
            b.record()
            b.synchronize()
            ts.append(a.elapsed_time(b) * 1e3 / inner)
        else:
            ts.append(clock_eager(inner) * 1e6)
    med, lo, hi = slowest([statistics.median(ts), min(ts), max(ts)], pg)
    del g
    return (nbytes, med, lo, hi, inner, reps), mode


# ------------------------------------------------------------------ main
def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def main() -> int:
    cfg = config()
    _check_env()
    if all(k in os.environ for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK")):  # under torchrun
        worker(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), cfg, None)
        return 0
    import torch
    import torch.multiprocessing as mp
    if cfg["smoke"]:
        world = cfg["nproc"] or 2
    else:
        if not torch.cuda.is_available():
            raise SystemExit("measure_nccl: no CUDA GPU (SMOKE=1 runs the CPU check)")
        world = cfg["nproc"] or torch.cuda.device_count()
        if world < 2:
            raise SystemExit(f"measure_nccl: {world} GPU(s): collectives need at least 2")
    log(f"spawning {world} processes ({'gloo, CPU smoke run' if cfg['smoke'] else 'NCCL'}), "
        f"budget {cfg['budget_s']:.0f} s, output {os.path.abspath(cfg['out'])}")
    mp.spawn(worker, args=(world, cfg, _free_port()), nprocs=world, join=True)
    log("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
