"""One vLLM-like engine: continuous batching of the sequences routed to it (the entities of the simulation).

Scheduling follows vLLM V1 at every iteration boundary:
- running sequences first, in admission order: a decoding sequence asks for 1 + k new tokens (k = 0
  without speculation), a sequence still in prefill for its next chunk (`enable_chunked_prefill`) within
  the iteration's token budget (max_num_batched_tokens); KV slots for cached + new tokens + k lookahead slots
  are allocated in blocks of `block_size`;
- when a sequence's blocks do not fit, the most recently admitted running sequence is preempted by
  recompute (its blocks freed, back to the head of the waiting queue; it later re-prefills prompt + the
  tokens it had generated) until they fit;
- if nothing was preempted, waiting sequences are admitted in order while fewer than max_num_seqs run, the
  budget lasts and their first chunk's blocks fit.
A prefill's last chunk emits the sequence's first (next) token; every decode iteration emits 1 token, or
with speculation the accepted drafts plus one (never beyond the sequence's end).

Two ways to advance (same scheduler):
- exact: one event per iteration, its time from the cost model for the batch as it is, accepted tokens
  drawn per sequence per iteration;
- fast: iterations with a prefill chunk or a preemption run one at a time as in exact; a run of all-decode
  iterations (a "stretch") is advanced in one event up to the next change the rest of the system can see
  (the first finish while sequences wait or the router holds requests; else the last finish), a KV-cache
  overflow (found by bisection on the blocks the growing contexts need), or (dynamic k) a change of the
  goodput-optimal k. Each decoding sequence carries a plan (the iteration its decode run started, its tokens
  then, and the verify iterations it needs, drawn in one go by `Acceptance.decode_steps`), so its context
  grows linearly in iterations. The stretch is cut into intervals of constant composition (split further
  where the batch's cached tokens grow by more than a factor 1 + rtol) and each interval is integrated at
  its midpoint: step = floor(n) + rho * cached tokens, where floor(n) is the cost model's iteration time
  for n sequences with empty caches (cached per n) and rho the rest per cached token, from a grid of
  equal-context batches shared by all engines times this batch's own correction, measured with the cost
  model on the actual batch at a few knots and interpolated between them (see `Engine._knots`).
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from simulator.rollout.costs import IterationCost, choose_k
from simulator.rollout.progress import Acceptance
from simulator.rollout.workload import RequestBatch


# fast mode's knots (see Engine._knots)
KNOT_FACTOR = 3.0  # a knot where the running count or the mean context has changed by this factor
KNOT_TOL = 2e-3  # refine while (relative change of the correction) x (share of the stretch's work) exceeds this
MEMO_RTOL = 0.02  # a one-interval stretch reuses the previous one's correction while its running count and mean
# context are within this of the previous one's (short stretches between finishes of a full engine)


def _cdiv(a, b):
    return -(-a // b)


@dataclass(frozen=True)
class EngineLimits:
    """Scheduler limits of one engine. max_num_seqs is the effective cap (see RolloutSimulator)."""

    max_num_seqs: int
    max_num_batched_tokens: int
    chunked_prefill: bool
    block_size: int
    num_blocks: int


class Requests:
    """Per-sequence state of one simulation: arrays indexed by request id (tokens, seconds)."""

    def __init__(self, batch: RequestBatch, max_tokens_per_sequence: int | None = None):
        n = batch.size
        self.n = n
        self.P = batch.prompt_tokens.copy()
        self.R = batch.response_tokens.copy()
        self.g_in = batch.generated.copy()
        self.T = self.R if max_tokens_per_sequence is None else \
            np.minimum(self.R, self.g_in + max_tokens_per_sequence)  # where this step stops
        self.g = self.g_in.copy()
        self.kv = np.zeros(n, dtype=np.int64)
        self.blk = np.zeros(n, dtype=np.int64)
        self.pf_target = self.P + self.g_in
        self.decoding = np.zeros(n, dtype=bool)
        self.engine = np.full(n, -1, dtype=np.int64)
        self.start_s = np.full(n, np.nan)
        self.first_token_s = np.full(n, np.nan)
        self.finish_s = np.full(n, np.nan)
        self.steps = np.zeros(n, dtype=np.int64)
        self.dec_tokens = np.zeros(n, dtype=np.int64)
        self.prefill_tokens = np.zeros(n, dtype=np.int64)
        self.preemptions = np.zeros(n, dtype=np.int64)
        self.last_acc = np.ones(n, dtype=np.int64)
        # fast-mode plan of the current decode run
        self.t0 = np.zeros(n, dtype=np.int64)
        self.pg0 = np.zeros(n, dtype=np.int64)
        self.N = np.ones(n, dtype=np.int64)
        self.plan_k = np.full(n, -1, dtype=np.int64)
        # decode runs (rid, t_start, t_end, tokens) for partial-rollout cuts; a prefill's token is a run of 0 s
        self.run_t0 = np.full(n, np.nan)
        self.run_g0 = np.zeros(n, dtype=np.int64)
        self.runs: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []

    def planned_g(self, ids: np.ndarray, it) -> np.ndarray:
        """Tokens generated by decoding sequences `ids` at iteration `it` of their plans (integers)."""
        pg0 = self.pg0[ids]
        return pg0 + ((self.T[ids] - pg0) * (it - self.t0[ids])) // self.N[ids]

    def end_runs(self, ids: np.ndarray, t_end: float | np.ndarray) -> None:
        if ids.size:
            self.runs.append((ids.copy(), self.run_t0[ids].copy(), np.broadcast_to(t_end, ids.shape).astype(float),
                              (self.g[ids] - self.run_g0[ids]).astype(np.int64)))


@dataclass
class Batch:
    """What one iteration runs: decoding sequences and prefill chunks (request ids, tokens)."""

    dec: np.ndarray
    pre: np.ndarray
    chunk: np.ndarray
    preempted: int = 0
    admitted: int = 0


class IntervalLog:
    """Per-interval rows (engine timelines), collected as column arrays."""

    COLUMNS = ("engine", "start_s", "end_s", "iterations", "running", "decode_seqs", "prefill_tokens",
               "tokens_per_iteration", "generated_tokens", "step_s", "k", "cuda_graph")

    def __init__(self):
        self.parts: list[dict] = []
        self.rows: list[tuple] = []

    def add_row(self, *row) -> None:
        self.rows.append(row)

    def add_block(self, **cols) -> None:
        self.parts.append(cols)

    def columns(self) -> dict[str, np.ndarray]:
        cols = {c: [] for c in self.COLUMNS}
        if self.rows:
            arr = list(zip(*self.rows))
            for c, v in zip(self.COLUMNS, arr):
                cols[c].append(np.asarray(v))
        for p in self.parts:
            m = len(p["start_s"])
            for c in self.COLUMNS:
                cols[c].append(np.broadcast_to(np.asarray(p[c]), (m,)))
        return {c: (np.concatenate(v) if v else np.zeros(0)) for c, v in cols.items()}


class Engine:
    """A vLLM-like engine replica: waiting and running queues, KV blocks, iteration times."""

    def __init__(self, index: int, limits: EngineLimits, cost: IterationCost, reqs: Requests,
                 acceptance: Acceptance, rng: np.random.Generator, *, fast: bool, k: int,
                 candidate_ks: list[int] | None, log: IntervalLog, rtol: float = 0.2,
                 k_cache: dict | None = None):
        self.index = index
        self.lim = limits
        self.cost = cost
        self.r = reqs
        self.acc = acceptance
        self.rng = rng
        self.fast = fast
        self.k = k
        self.dynamic = bool(candidate_ks)
        self.taus = {kk: acceptance.tau(kk) for kk in (candidate_ks or [k])}
        self.log = log
        self.rtol = rtol
        self.lr = math.log1p(rtol)
        self.k_cache = k_cache if k_cache is not None else {}
        self.running: list[int] = []
        self.waiting: deque[int] = deque()
        self.free = limits.num_blocks
        self.it = 0  # iterations run
        self.busy_s = 0.0
        self.end_s = 0.0
        self.iterations = 0
        self.events = 0
        self.preemptions = 0
        self._pending = None
        self._corr_memo = None  # ((k, acceptance, CUDA graph), running, mean context, correction) of the last knot

    def set_acceptance(self, acceptance: Acceptance, k_cache: dict | None = None) -> None:
        """New weights (async refit): verify iterations from here on accept by `acceptance`. Fast mode redraws
        the running sequences' plans for their remaining tokens; `k_cache`: the dynamic-k cache of these
        weights (shared by the engines, as at construction)."""
        if self.fast:
            self._sync()
            run = np.asarray(self.running, dtype=np.int64)
            ids = run[self.r.decoding[run] & (self.r.plan_k[run] >= 0)] if run.size else run
            if ids.size:
                self._close_plans(ids)
                self.r.plan_k[ids] = -1
        self.acc = acceptance
        self.taus = {kk: acceptance.tau(kk) for kk in self.taus}
        self.k_cache = k_cache if k_cache is not None else {}
        self._corr_memo = None

    # ------------------------------------------------------------------ queue
    def add(self, rid: int) -> None:
        self.waiting.append(rid)
        self.r.engine[rid] = self.index

    def outstanding(self) -> int:
        return len(self.running) + len(self.waiting)

    def has_work(self) -> bool:
        return bool(self.running or self.waiting)

    # ------------------------------------------------------------------ scheduler
    def schedule(self, k: int, now: float) -> Batch:
        """vLLM V1's schedule() for one iteration (allocates the blocks it needs; may preempt)."""
        r, lim = self.r, self.lim
        vt, la, bs = self.cost.verify_tokens(k), self.cost.lookahead(k), lim.block_size
        budget = lim.max_num_batched_tokens
        run = np.asarray(self.running, dtype=np.int64)
        preempted = 0
        done = False
        dec = pre = chunk = None
        if run.size and lim.chunked_prefill:
            # every running sequence in order, vectorised: decodes ask for vt tokens, prefills for their
            # remaining prompt; the budget fills in order (exact while no decode is cut short and the blocks fit)
            isdec = r.decoding[run]
            want = np.where(isdec, vt, r.pf_target[run] - r.kv[run])
            c = np.minimum(np.cumsum(want), budget)
            q = np.diff(c, prepend=0)
            if not (isdec & (q > 0) & (q < vt)).any() and not (isdec & (q == 0)).any():
                need = np.where(q > 0, np.maximum(_cdiv(r.kv[run] + q + la, bs) - r.blk[run], 0), 0)
                # keep the longest prefix whose blocks fit once everything after it is preempted (what
                # popping the most recently admitted sequence until each allocation fits leaves)
                pref = np.concatenate(([0], np.cumsum(need)))
                suff = np.concatenate((np.cumsum(r.blk[run][::-1])[::-1], [0]))
                m = int(np.nonzero(pref <= self.free + suff)[0][-1])
                for victim in run[m:][::-1].tolist():
                    self.running.pop()
                    self._preempt(victim, now)
                    preempted += 1
                run, isdec, q, c, need = run[:m], isdec[:m], q[:m], c[:m], need[:m]
                tot = int(need.sum())
                r.blk[run] += need
                self.free -= tot
                budget -= int(c[-1]) if m else 0
                sel = q > 0
                dec = run[isdec]
                pre, chunk = run[sel & ~isdec], q[sel & ~isdec]
                done = True
        if not done:
            dec, pre, chunk = [], [], []
            i = 0
            while i < len(self.running):
                rid = self.running[i]
                if r.decoding[rid]:
                    q = vt if vt <= budget else 0
                else:
                    rem = int(r.pf_target[rid] - r.kv[rid])
                    q = min(rem, budget) if lim.chunked_prefill else (rem if rem <= budget else 0)
                if q <= 0:
                    i += 1
                    continue
                need = max(0, _cdiv(int(r.kv[rid]) + q + la, bs) - int(r.blk[rid]))
                self_preempted = False
                while need > self.free:
                    victim = self.running.pop()
                    self._preempt(victim, now)
                    preempted += 1
                    if victim == rid:
                        self_preempted = True
                        break
                if self_preempted:
                    break
                r.blk[rid] += need
                self.free -= need
                budget -= q
                if r.decoding[rid]:
                    dec.append(rid)
                else:
                    pre.append(rid)
                    chunk.append(q)
                i += 1
        admitted = 0
        pre_new, chunk_new = [], []
        if not preempted:
            while self.waiting and len(self.running) < lim.max_num_seqs and budget > 0:
                rid = self.waiting[0]
                rem = int(r.pf_target[rid])
                q = min(rem, budget) if lim.chunked_prefill else (rem if rem <= budget else 0)
                if q <= 0:
                    break
                need = _cdiv(q + la, bs)
                if need > self.free:
                    break
                self.waiting.popleft()
                self.running.append(rid)
                r.blk[rid] = need
                self.free -= need
                budget -= q
                pre_new.append(rid)
                chunk_new.append(q)
                admitted += 1
                if np.isnan(r.start_s[rid]):
                    r.start_s[rid] = now
        if pre_new:
            pre = np.concatenate((np.asarray(pre, dtype=np.int64), pre_new))
            chunk = np.concatenate((np.asarray(chunk, dtype=np.int64), chunk_new))
        return Batch(np.asarray(dec, dtype=np.int64), np.asarray(pre, dtype=np.int64),
                     np.asarray(chunk, dtype=np.int64), preempted, admitted)

    def _preempt(self, rid: int, now: float) -> None:
        r = self.r
        if r.decoding[rid]:
            if self.fast and r.plan_k[rid] >= 0:
                self._close_plans(np.array([rid]))
            r.end_runs(np.array([rid]), now)
        self.free += int(r.blk[rid])
        r.blk[rid] = 0
        r.kv[rid] = 0
        r.decoding[rid] = False
        r.pf_target[rid] = r.P[rid] + r.g[rid]
        r.preemptions[rid] += 1
        r.plan_k[rid] = -1
        self.preemptions += 1
        self.waiting.appendleft(rid)

    # ------------------------------------------------------------------ k
    def _k_key(self, n: int, mean_ctx: float) -> tuple[int, int]:
        """Fast mode holds the goodput-optimal k per (running count, mean-context bucket)."""
        return int(n), int(math.log(max(mean_ctx, 1.0)) / self.lr)

    def _choose_k(self, dec_cached: np.ndarray) -> int:
        if not self.dynamic or dec_cached.size == 0:
            return self.k
        if not self.fast:
            return choose_k(self.cost, self.taus, dec_cached)
        key = self._k_key(dec_cached.size, float(dec_cached.mean()))
        k = self.k_cache.get(key)
        if k is None:
            k = self.k_cache[key] = choose_k(self.cost, self.taus, dec_cached)
        return k

    # ------------------------------------------------------------------ fast-mode plans
    def _sync(self) -> None:
        """Materialise tokens and KV lengths of the planned decoding sequences at iteration self.it."""
        run = np.asarray(self.running, dtype=np.int64)
        if not run.size:
            return
        ids = run[self.r.decoding[run] & (self.r.plan_k[run] >= 0)]
        if ids.size:
            self.r.g[ids] = self.r.planned_g(ids, self.it)
            self.r.kv[ids] = self.r.P[ids] + self.r.g[ids] - 1

    def _close_plans(self, ids: np.ndarray) -> None:
        """Book the steps and tokens of the plans of `ids` up to self.it (their g must be synced)."""
        r = self.r
        r.steps[ids] += self.it - r.t0[ids]
        r.dec_tokens[ids] += r.g[ids] - r.pg0[ids]

    def _plan(self, k: int) -> None:
        """Give every decoding sequence without a plan for this k one: verify iterations to its end."""
        r = self.r
        run = np.asarray(self.running, dtype=np.int64)
        ids = run[r.decoding[run] & (r.plan_k[run] != k)]
        if not ids.size:
            return
        old = ids[r.plan_k[ids] >= 0]
        if old.size:
            self._close_plans(old)
        r.t0[ids] = self.it
        r.pg0[ids] = r.g[ids]
        r.N[ids] = np.maximum(self.acc.decode_steps(self.rng, k, r.T[ids] - r.g[ids]), 1)
        r.plan_k[ids] = k

    # ------------------------------------------------------------------ advancing
    def prepare(self, now: float, notify_finish: bool) -> float:
        """Schedule the next piece of work at time `now`; returns its duration (s). `notify_finish`:
        the router waits for this engine's next finish (fast mode stops the stretch there)."""
        self.events += 1
        if self.fast:
            self._sync()
        r = self.r
        run = np.asarray(self.running, dtype=np.int64)
        dec_now = run[r.decoding[run]] if run.size else run
        k = self._choose_k(r.kv[dec_now]) if self.dynamic else self.k
        batch = self.schedule(k, now)
        if self.fast:
            self._plan(k)
            if batch.pre.size == 0 and batch.preempted == 0 and 0 < batch.dec.size == len(self.running):
                return self._prepare_stretch(k, now, notify_finish or bool(self.waiting))
        acc = None
        if self.cost.speculating(k) and batch.dec.size:
            acc = self.acc.tau(k) if self.fast else r.last_acc[batch.dec]
        dt = self.cost.time(r.kv[batch.dec], k, r.kv[batch.pre], batch.chunk, accepted=acc)
        self._pending = ("iteration", batch, k, dt, now)
        return dt

    def commit(self, now: float) -> list[int]:
        """Apply the prepared work, which ended at `now`; returns the request ids that finished."""
        kind = self._pending[0]
        if kind == "iteration":
            return self._commit_iteration(now)
        return self._commit_stretch(now)

    # one iteration (exact mode; fast mode for prefill/preemption iterations)
    def _commit_iteration(self, now: float) -> list[int]:
        _, batch, k, dt, start = self._pending
        self._pending = None
        r = self.r
        self.busy_s += dt
        self.iterations += 1
        self.it += 1
        vt = self.cost.verify_tokens(k)
        dec, pre, chunk = batch.dec, batch.pre, batch.chunk
        finished: list[np.ndarray] = []
        gen = 0
        if self.fast:  # decoding sequences this iteration left out (token budget) keep their plans later
            run = np.asarray(self.running, dtype=np.int64)
            idle = run[r.decoding[run] & (r.plan_k[run] >= 0)]
            if idle.size > dec.size:
                idle = np.setdiff1d(idle, dec, assume_unique=True)
                r.t0[idle] += 1
        if dec.size:
            if self.fast:
                g_new = r.planned_g(dec, self.it)
                gen += int((g_new - r.g[dec]).sum())
                r.g[dec] = g_new
                r.kv[dec] = r.P[dec] + g_new - 1
                done = dec[r.t0[dec] + r.N[dec] <= self.it]
                if done.size:
                    self._close_plans(done)
            else:
                a = np.minimum(self.acc.sample(self.rng, k, dec.size), r.T[dec] - r.g[dec])
                r.g[dec] += a
                r.kv[dec] += a
                r.steps[dec] += 1
                r.dec_tokens[dec] += a
                r.last_acc[dec] = a
                gen += int(a.sum())
                done = dec[r.g[dec] >= r.T[dec]]
            finished.append(done)
        if pre.size:
            r.kv[pre] += chunk
            r.prefill_tokens[pre] += chunk
            comp = pre[r.kv[pre] >= r.pf_target[pre]]
            if comp.size:
                r.g[comp] += 1
                gen += int(comp.size)
                r.decoding[comp] = True
                r.last_acc[comp] = 1
                first = comp[np.isnan(r.first_token_s[comp])]
                r.first_token_s[first] = now
                r.run_t0[comp] = now
                r.run_g0[comp] = r.g[comp] - 1
                r.plan_k[comp] = -1
                finished.append(comp[r.g[comp] >= r.T[comp]])
        tokens = int(dec.size) * vt + int(chunk.sum())
        self.log.add_row(self.index, start, now, 1, len(self.running), int(dec.size), int(chunk.sum()),
                         tokens, gen, dt, k, self.cost.graph(tokens))
        done = np.concatenate(finished) if finished else np.zeros(0, dtype=np.int64)
        self._finish(done, now)
        self.end_s = now
        return done.tolist()

    def _finish(self, ids: np.ndarray, t_end) -> None:
        if not ids.size:
            return
        r = self.r
        r.finish_s[ids] = t_end
        r.end_runs(ids, t_end)
        r.decoding[ids] = False
        self.free += int(r.blk[ids].sum())
        r.blk[ids] = 0
        gone = set(ids.tolist())
        self.running = [x for x in self.running if x not in gone]

    # a stretch of all-decode iterations (fast mode)
    def _intervals(self, Fs, Aa, Ab, hor):
        """Intervals of constant composition between it and hor, split where the context sum grows by more
        than 1 + rtol: (start, length, suffix index j into the F-sorted running set)."""
        it0 = self.it
        inner = Fs[(Fs > it0) & (Fs < hor)]
        b = np.unique(np.concatenate(([it0], inner, [hor])))
        start, end = b[:-1], b[1:]
        j = np.searchsorted(Fs, start, side="right")
        s_lo = Aa[j] + Ab[j] * start
        s_hi = Aa[j] + Ab[j] * (end - 1)
        ratio = np.maximum(s_hi, 1.0) / np.maximum(s_lo, 1.0)
        pieces = np.clip(np.ceil(np.log(ratio) / self.lr), 1, end - start).astype(np.int64)
        if (pieces > 1).any():
            rep = np.repeat(np.arange(start.size), pieces)
            p = np.arange(rep.size) - np.repeat(np.cumsum(pieces) - pieces, pieces)
            length = end - start
            sub = start[rep] + (length[rep] * p) // pieces[rep]
            sub_end = start[rep] + (length[rep] * (p + 1)) // pieces[rep]
            return sub, sub_end - sub, j[rep]
        return start, end - start, j

    def _prepare_stretch(self, k: int, now: float, first_finish_only: bool) -> float:
        r, lim = self.r, self.lim
        run = np.asarray(self.running, dtype=np.int64)
        F = r.t0[run] + r.N[run]
        order = np.argsort(F, kind="stable")
        rs, Fs = run[order], F[order]
        n_all = rs.size
        vt, la, bs = self.cost.verify_tokens(k), self.cost.lookahead(k), lim.block_size
        beta = (r.T[rs] - r.pg0[rs]) / r.N[rs]
        alpha = r.P[rs] - 1 + r.pg0[rs] - beta * r.t0[rs]
        Aa = np.concatenate((np.cumsum(alpha[::-1])[::-1], [0.0]))
        Ab = np.concatenate((np.cumsum(beta[::-1])[::-1], [0.0]))
        hor = int(Fs[0] if first_finish_only else Fs[-1])
        s, L, j = self._intervals(Fs, Aa, Ab, hor)
        n = n_all - j
        # KV-cache overflow: the first iteration whose blocks (cached + 1 + k + lookahead) do not fit
        te = s + L - 1
        bound = (Aa[j] + Ab[j] * te + n * (vt + la)) / bs + n
        over = np.nonzero((bound > lim.num_blocks) & (te > self.it))[0]
        if over.size:
            def blocks(t, jj):
                ids = rs[jj:]
                c = r.P[ids] - 1 + r.planned_g(ids, t)
                return int(_cdiv(c + vt + la, bs).sum())
            for m in over:
                if blocks(int(te[m]), int(j[m])) > lim.num_blocks:
                    lo, hi = max(int(s[m]), self.it + 1), int(te[m])  # first overflow within [lo, hi]
                    while lo < hi:
                        mid = (lo + hi) // 2
                        if blocks(mid, int(j[m])) > lim.num_blocks:
                            hi = mid
                        else:
                            lo = mid + 1
                    hor = lo
                    s, L, j = self._intervals(Fs, Aa, Ab, hor)
                    n = n_all - j
                    break
        tmid = s + (L - 1) / 2.0
        S = Aa[j] + Ab[j] * tmid
        if self.dynamic and s.size > 1:  # the stretch ends where the goodput-optimal k changes
            mean_c = np.maximum(S / n, 1.0)
            cut, prev = None, None
            for m in range(1, s.size):
                key = self._k_key(int(n[m]), float(mean_c[m]))
                if key == prev:
                    continue
                prev = key
                km = self.k_cache.get(key)
                if km is None:
                    ids = rs[int(j[m]):]
                    cached = r.P[ids] - 1 + r.planned_g(ids, int(round(tmid[m])))
                    km = self.k_cache[key] = choose_k(self.cost, self.taus, cached)
                if km != k:
                    cut = m
                    break
            if cut is not None:
                hor = int(s[cut])
                s, L, j, n, tmid, S = (x[:cut] for x in (s, L, j, n, tmid, S))
        spec = self.cost.speculating(k)
        acc = self.acc.tau(k) if spec else None
        graph = n * vt <= self.cost.graph_max
        rho_all = self._knots(k, acc, rs, j, n, tmid, S, graph, L * S)
        step = self.cost.floors(n, k, acc) + rho_all * S
        dur = L * step
        cum = np.concatenate(([0.0], np.cumsum(dur)))
        total = float(cum[-1])
        self._pending = ("stretch", k, now, hor, rs, Fs, s, L, j, n, step, cum, Ab)
        return total

    def _knots(self, k, acc, rs, j, n, tmid, S, graph, work):
        """rho of every interval: (iteration time - its batch-size-only part) per cached token. The shared
        grid (IterationCost.rho_grid, batches of equal contexts) gives its shape in running count and context;
        the cost model on the actual batch at a few knots gives the correction for this batch's contexts,
        interpolated between knots. Knots: the first and last interval, both sides of a CUDA-graph change,
        every change of the running count or mean context by a factor KNOT_FACTOR; then (refinement) the
        middle interval between neighbours whose correction differs by a fraction d while the gap holds a
        share w of the stretch's cached-token iterations (`work`), while d * w > KNOT_TOL."""
        r = self.r
        m = tmid.size
        cm = np.maximum(S / n, 1.0)
        grid = self.cost.rho_grid(n, cm, k, acc)
        lf = math.log(KNOT_FACTOR)
        bn, bc = np.floor(np.log(n) / lf), np.floor(np.log(cm) / lf)
        change = np.nonzero((bn[1:] != bn[:-1]) | (bc[1:] != bc[:-1]) | (graph[1:] != graph[:-1]))[0]
        trans = np.nonzero(graph[1:] != graph[:-1])[0]
        first = {0, m - 1} | set((change + 1).tolist()) | set(trans.tolist())
        if m == 1:  # a one-interval stretch: reuse the last correction if nothing moved much
            memo = self._corr_memo
            if (memo is not None and memo[0] == (k, acc, bool(graph[0])) and abs(n[0] / memo[1] - 1) <= MEMO_RTOL
                    and abs(cm[0] / memo[2] - 1) <= MEMO_RTOL):
                return grid * memo[3]
        cum_work = np.concatenate(([0.0], np.cumsum(work)))
        total_work = max(float(cum_work[-1]), 1e-30)
        corr: dict[int, float] = {}

        def evaluate(idx):
            for q in idx:
                t = int(round(tmid[q]))
                ids = rs[int(j[q]):]
                cached = r.P[ids] - 1 + r.planned_g(ids, t)
                f = self.cost.time(cached, k, accepted=acc)
                rho = (f - self.cost.floor(ids.size, k, acc)) / max(float(cached.sum()), 1.0)
                corr[q] = rho / grid[q] if grid[q] > 0 else 1.0

        evaluate(sorted(first))
        while True:
            ev = sorted(corr)
            new = []
            for a, b in zip(ev, ev[1:]):
                if b - a < 2 or graph[a] != graph[b]:
                    continue
                d = abs(corr[a] - corr[b]) / max(abs(corr[a]), abs(corr[b]), 1e-30)
                if d * (cum_work[b + 1] - cum_work[a]) / total_work > KNOT_TOL:
                    new.append((a + b) // 2)
            if not new:
                break
            evaluate(new)
        kidx = np.array(sorted(corr), dtype=np.int64)
        c = np.array([corr[q] for q in kidx])
        if m == 1:
            self._corr_memo = ((k, acc, bool(graph[0])), float(n[0]), float(cm[0]), float(c[0]))
        return grid * (np.interp(tmid, tmid[kidx], c) if kidx.size > 1 else c[0])

    def _commit_stretch(self, now: float) -> list[int]:
        _, k, start, hor, rs, Fs, s, L, j, n, step, cum, Ab = self._pending
        self._pending = None
        r, lim = self.r, self.lim
        vt, la, bs = self.cost.verify_tokens(k), self.cost.lookahead(k), lim.block_size
        self.busy_s += float(cum[-1])
        self.iterations += int(L.sum())
        t_start = start + cum[:-1]
        self.log.add_block(engine=self.index, start_s=t_start, end_s=start + cum[1:], iterations=L, running=n,
                           decode_seqs=n, prefill_tokens=0, tokens_per_iteration=n * vt,
                           generated_tokens=np.rint(Ab[j] * L).astype(np.int64), step_s=step, k=k,
                           cuda_graph=n * vt <= self.cost.graph_max)
        self.it = hor
        done_mask = Fs <= hor
        done = rs[done_mask]
        if done.size:
            idx = np.searchsorted(s, Fs[done_mask], side="left")
            t_done = start + cum[idx]
            r.g[done] = r.T[done]
            r.steps[done] += r.N[done]
            r.dec_tokens[done] += r.T[done] - r.pg0[done]
            r.finish_s[done] = t_done
            r.end_runs(done, t_done)
            r.decoding[done] = False
            r.blk[done] = 0
            gone = set(done.tolist())
            self.running = [x for x in self.running if x not in gone]
        rest = rs[~done_mask]
        if rest.size:
            c_last = r.P[rest] - 1 + r.planned_g(rest, hor - 1)
            r.blk[rest] = np.maximum(r.blk[rest], _cdiv(c_last + vt + la, bs))
        run = np.asarray(self.running, dtype=np.int64)
        self.free = lim.num_blocks - int(r.blk[run].sum()) if run.size else lim.num_blocks
        self.end_s = now
        return done.tolist()
