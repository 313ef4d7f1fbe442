"""Request routing across the data-parallel engines.

round_robin: every sequence is assigned at t = 0, sequence i to engine i mod N (prompt-major order, so a
prompt's samples spread over the engines); each engine queues what it cannot run yet.
blocked: every sequence is assigned at t = 0 in contiguous blocks, engine e taking sequences
[e * ceil(n / N), (e + 1) * ceil(n / N)), so whole prompt groups stay on one engine (NeMo-RL's synchronous
vLLM generate: BatchedDataDict.shard_by_batch_size(dp_size, allow_uneven_shards=True)).
least_loaded: the router keeps a central queue. At t = 0 it dispatches, one sequence at a time, to the
engine with the fewest outstanding sequences (ties: fewest outstanding prompt tokens, then the lowest index),
up to max_num_seqs per engine; the rest wait at the router and go to whichever engine next has fewer than
max_num_seqs outstanding, at that engine's next iteration boundary (least outstanding requests with
admission control, as a central-queue rollout server does).
"""
from __future__ import annotations

import heapq
from collections import deque

import numpy as np


class Router:
    """Hands sequences (request ids) to engines."""

    def __init__(self, policy: str, engines: list, prompt_tokens: np.ndarray, cap: int):
        self.policy = policy
        self.engines = engines
        self.cap = cap
        self.queue: deque[int] = deque()
        n = len(prompt_tokens)
        if policy == "round_robin":
            for rid in range(n):
                engines[rid % len(engines)].add(rid)
            return
        if policy == "blocked":
            block = -(-n // len(engines))
            for rid in range(n):
                engines[rid // block].add(rid)
            return
        heap = [(0, 0, e) for e in range(len(engines))]
        rid = 0
        while rid < n and heap:
            load, toks, e = heapq.heappop(heap)
            engines[e].add(rid)
            if load + 1 < cap:
                heapq.heappush(heap, (load + 1, toks + int(prompt_tokens[rid]), e))
            rid += 1
        self.queue.extend(range(rid, n))

    def pending(self) -> bool:
        """Whether sequences still wait at the router (engines then report every finish)."""
        return bool(self.queue)

    def feed(self, engine) -> None:
        """Called at an engine's iteration boundary: top it up to max_num_seqs outstanding."""
        while self.queue and engine.outstanding() < self.cap:
            engine.add(self.queue.popleft())
