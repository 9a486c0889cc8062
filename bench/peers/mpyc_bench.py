#!/usr/bin/env python3
"""MPyC (PyPI) peer: 5 local parties computing synod demo's statistics.

Run as `python mpyc_bench.py -M5` (MPyC starts parties 1..4 as local
processes on localhost; party 0 prints one JSON object on stdout).

Workload (the same as `synod demo`): each of the 5 parties inputs 8192
fixed-point values; the parties compute, for every party, Σx and Σx² (mean and
variance are finished in the clear from the opened sums, as synod does), plus
the cross-party inner product p1.x·p2.x; then open the 11 results. MPyC's
threshold is t = (m−1)//2 = 2 corrupt parties, i.e. any 3 of 5 reconstruct —
the same access structure as synod's t = 3.

Environment: PEERS_MPYC_REPS (default 3) repetitions of the whole session
inside one MPyC run (medians reported), PEERS_ROWS (default 8192),
PEERS_MPYC_JSON=path writes the JSON there instead of stdout (MPyC logs to stdout).
"""

import json
import os
import statistics
import time

import numpy as np
from mpyc.runtime import mpc

ROWS = int(os.environ.get("PEERS_ROWS", "8192"))
REPS = int(os.environ.get("PEERS_MPYC_REPS", "3"))
# 64-bit fixed point with 8 fractional bits: Σx² over 8192 rows of |x| ≤ 1024
# needs ~33 integer bits, which fits.
secfxp = mpc.SecFxp(64, 8)


async def once(rep):
    rng = np.random.default_rng(1000 * rep + mpc.pid)
    # Quarter-integers in [-1024, 1024): exact in 8 fractional bits.
    mine = rng.integers(-4096, 4096, ROWS) / 4.0
    t = {}

    await mpc.barrier("inputs")
    t0 = time.perf_counter()
    xs = mpc.input(secfxp.array(mine))
    for x in xs:
        await mpc.gather(x)
    t1 = time.perf_counter()

    sums = [x.sum() for x in xs]
    sqs = [x @ x for x in xs]
    inner = xs[0] @ xs[1]
    outs = [mpc.gather(v) for v in sums + sqs + [inner]]
    for v in outs:
        await v
    t2 = time.perf_counter()

    opened = await mpc.output(sums + sqs + [inner])
    t3 = time.perf_counter()

    # Finish in the clear (as synod does): mean = Σx/n, variance = Σx²/n − mean².
    m = len(xs)
    results = {}
    for i in range(m):
        s, q = float(opened[i]), float(opened[m + i])
        mean = s / ROWS
        results[f"p{i + 1}"] = {"sum": s, "mean": mean, "variance": q / ROWS - mean * mean}
    results["inner p1.x·p2.x"] = float(opened[2 * m])
    t["inputs"] = t1 - t0
    t["compute"] = t2 - t1
    t["open"] = t3 - t2
    t["session (inputs+compute+open)"] = t3 - t0
    return t, results, mine


async def main():
    t_start = time.perf_counter()
    await mpc.start()
    t_connect = time.perf_counter() - t_start
    runs = []
    check = None
    for rep in range(REPS):
        t, results, mine = await once(rep)
        runs.append(t)
        if rep == 0:
            check = (results, mine)
    await mpc.shutdown()
    if mpc.pid != 0:
        return
    results, mine = check
    # Party 0 can check its own statistics.
    exp_sum = float(np.sum(mine))
    exp_var = float(np.mean(mine * mine) - np.mean(mine) ** 2)
    ok = abs(results["p1"]["sum"] - exp_sum) < 1e-6 and abs(results["p1"]["variance"] - exp_var) < 1e-3
    rows = {k: statistics.median(r[k] for r in runs) * 1e3 for k in runs[0]}
    rows["setup: connect 5 parties"] = t_connect * 1e3
    body = json.dumps({
        "system": "MPyC",
        "version": getattr(__import__("mpyc"), "__version__", "?"),
        "parties": len(mpc.parties),
        "threshold_corrupt": mpc.threshold,
        "field_bits": secfxp.field.order.bit_length(),
        "fixed_point": "SecFxp(64, 8)",
        "rows_per_party": ROWS,
        "reps": REPS,
        "omp_threads": os.environ.get("OMP_NUM_THREADS"),
        "correct_p1": ok,
        "results": results,
        "rows_ms": rows,
    }, indent=1)
    # MPyC logs to stdout, so the JSON goes to a file when asked.
    path = os.environ.get("PEERS_MPYC_JSON")
    if path:
        with open(path, "w") as f:
            f.write(body + "\n")
    else:
        print(body)


if __name__ == "__main__":
    mpc.run(main())
