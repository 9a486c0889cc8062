#!/usr/bin/env python3
"""OpenFHE (Python wheel openfhe==1.6.1.0.22.4) BFV multiparty, per-step medians.

N = 8192, 5 parties, HEStd_NotSet with explicit modulus settings chosen so that
log q is as close as possible to synod's (218 bits), NOISE_FLOODING_MULTIPARTY.
OpenFHE's multiparty decryption is n-of-n (all 5 parties contribute a share);
its ShareKeys/RecoverSharedKey path is "n-of-n with key recovery" (an absent
party's secret key is rebuilt from Shamir shares), not threshold decryption.

Prints one JSON object on stdout; progress goes to stderr.
Environment: OMP_NUM_THREADS (OpenFHE's OpenMP threads), PEERS_REPS (default 11),
PEERS_TARGET_LOGQ (default 218), PEERS_P (plaintext modulus, default synod's
30-bit batching prime 1073692673).
"""

import json
import math
import os
import random
import statistics
import sys
import time

try:
    import openfhe as o
except ImportError as e:  # pragma: no cover
    print(json.dumps({"error": f"import openfhe failed: {e}", "python": sys.version}))
    sys.exit(0)

PARTIES = 5
THRESHOLD = 3
N = 8192
REPS = int(os.environ.get("PEERS_REPS", "11"))
TARGET_LOGQ = float(os.environ.get("PEERS_TARGET_LOGQ", "218"))
P = int(os.environ.get("PEERS_P", "1073692673"))
MODE = o.MultipartyMode.NOISE_FLOODING_MULTIPARTY


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def context(depth, mod_size):
    p = o.CCParamsBFVRNS()
    p.SetPlaintextModulus(P)
    p.SetRingDim(N)
    p.SetSecurityLevel(o.SecurityLevel.HEStd_NotSet)
    p.SetMultiplicativeDepth(depth)
    p.SetScalingModSize(mod_size)
    p.SetMultipartyMode(MODE)
    p.SetThresholdNumOfParties(PARTIES)
    cc = o.GenCryptoContext(p)
    for f in (o.PKE, o.KEYSWITCH, o.LEVELEDSHE, o.MULTIPARTY):
        cc.Enable(f)
    return cc


def pick_context():
    """Depth >= 1 (one ct x ct), modulus size searched so log q is nearest the target."""
    best = None
    for depth in (1, 2):
        for mod_size in range(30, 61):
            try:
                cc = context(depth, mod_size)
            except Exception:  # noqa: BLE001 - some sizes have no NTT primes
                continue
            if cc.GetRingDimension() != N:
                continue
            lq = math.log2(cc.GetModulus())
            key = abs(lq - TARGET_LOGQ)
            if best is None or key < best[0]:
                best = (key, depth, mod_size, lq)
    _, depth, mod_size, lq = best
    return context(depth, mod_size), depth, mod_size, lq


def median_ms(samples):
    return statistics.median(samples) * 1e3


def time_it(f, reps=REPS, warm=True):
    if warm:
        f()
    v = []
    for _ in range(reps):
        t = time.perf_counter()
        f()
        v.append(time.perf_counter() - t)
    return median_ms(v)


def main():
    cc, depth, mod_size, log_q = pick_context()
    log(f"openfhe: N={cc.GetRingDimension()} log q={log_q:.1f} (depth {depth}, "
        f"scaling mod size {mod_size}, {MODE}), p={P}, "
        f"key switching {cc.GetKeySwitchTechnique()}")
    rows = {}

    # --- Key generation: lead KeyGen, then each party MultipartyKeyGen(previous pk).
    kps = [cc.KeyGen()]
    for _ in range(1, PARTIES):
        kps.append(cc.MultipartyKeyGen(kps[-1].publicKey))
    rows["keygen: public-key share"] = time_it(lambda: cc.MultipartyKeyGen(kps[0].publicKey))
    pk = kps[-1].publicKey

    # --- Relinearisation key, round 1: each party's MultiKeySwitchGen, summed.
    ek1 = cc.KeySwitchGen(kps[0].secretKey, kps[0].secretKey)
    rows["relin round 1 (per party)"] = time_it(
        lambda: cc.MultiKeySwitchGen(kps[1].secretKey, kps[1].secretKey, ek1))
    r1 = [ek1] + [cc.MultiKeySwitchGen(k.secretKey, k.secretKey, ek1) for k in kps[1:]]

    def agg1():
        acc = r1[0]
        for e in r1[1:]:
            acc = cc.MultiAddEvalKeys(acc, e, pk.GetKeyTag())
        return acc

    rows["relin round 1: aggregate 5"] = time_it(agg1)
    ek_ab = agg1()

    # --- Round 2: each party's MultiMultEvalKey, summed with MultiAddEvalMultKeys.
    rows["relin round 2 (per party)"] = time_it(
        lambda: cc.MultiMultEvalKey(kps[1].secretKey, ek_ab, pk.GetKeyTag()))
    r2 = [cc.MultiMultEvalKey(k.secretKey, ek_ab, pk.GetKeyTag()) for k in kps]

    def agg2():
        acc = r2[0]
        for e in r2[1:]:
            acc = cc.MultiAddEvalMultKeys(acc, e, acc.GetKeyTag())
        return acc

    rows["relin round 2: aggregate 5"] = time_it(agg2)
    cc.InsertEvalMultKey([agg2()])

    # --- n-of-n with key recovery (ShareKeys / RecoverSharedKey), not threshold decryption.
    rows["n-of-n with key recovery: ShareKeys (per party)"] = time_it(
        lambda: cc.ShareKeys(kps[0].secretKey, PARTIES, THRESHOLD, 1, "shamir"))
    shares = {i + 1: cc.ShareKeys(k.secretKey, PARTIES, THRESHOLD, i + 1, "shamir")
              for i, k in enumerate(kps)}
    # Rebuild party 1's key from the shares parties 2..4 hold of it.
    held = {j: shares[1][j] for j in range(2, 2 + THRESHOLD)}
    rec = o.PrivateKey(cc) if hasattr(o, "PrivateKey") else None
    if rec is not None:
        rows["n-of-n with key recovery: RecoverSharedKey"] = time_it(
            lambda: cc.RecoverSharedKey(rec, held, PARTIES, THRESHOLD, "shamir"))

    # --- Encrypt, add, multiply.
    rnd = random.Random(42)
    half = P // 2
    vals = [rnd.randrange(-1000, 1000) for _ in range(N)]
    pt = cc.MakePackedPlaintext(vals)
    rows["encrypt (public key)"] = time_it(lambda: cc.Encrypt(pk, pt))
    ca = cc.Encrypt(pk, pt)
    cb = cc.Encrypt(pk, pt)
    rows["add ct+ct"] = time_it(lambda: cc.EvalAdd(ca, cb))
    rows["ct x ct + relinearise"] = time_it(lambda: cc.EvalMult(ca, cb))
    prod = cc.EvalMult(ca, cb)

    # --- Decryption shares (all 5 parties: n-of-n) and fusion.
    ok = True
    for what, ct, expect in (("fresh", ca, vals), ("product", prod, [v * v for v in vals])):
        rows[f"decryption share ({what})"] = time_it(
            lambda: cc.MultipartyDecryptMain([ct], kps[1].secretKey))
        parts = [cc.MultipartyDecryptLead([ct], kps[0].secretKey)[0]] + [
            cc.MultipartyDecryptMain([ct], k.secretKey)[0] for k in kps[1:]]
        rows[f"combine {PARTIES} decryption shares ({what}, n-of-n fusion)"] = time_it(
            lambda: cc.MultipartyDecryptFusion(parts))
        out = cc.MultipartyDecryptFusion(parts)
        out.SetLength(N)
        got = out.GetPackedValue()
        want = [((e + half) % P) - half for e in expect]
        good = list(got[:N]) == want
        ok = ok and good
        log(f"openfhe: {what} decryption {'ok' if good else 'WRONG'}")

    print(json.dumps({
        "system": "OpenFHE",
        "version": "openfhe==1.6.1.0.22.4 (Python wheel)",
        "ring_dim": cc.GetRingDimension(),
        "log_q": round(log_q, 2),
        "depth": depth,
        "scaling_mod_size": mod_size,
        "multiparty_mode": str(MODE),
        # OpenFHE floods with a uniform mask mod Q/q0 (two extra 60-bit towers).
        "flood_bits": round(log_q - mod_size, 1),
        "key_switching": str(cc.GetKeySwitchTechnique()),
        "p": P,
        "p_bits": math.ceil(math.log2(P)),
        "parties": PARTIES,
        "decryption": "n-of-n (all parties); ShareKeys/RecoverSharedKey = n-of-n with key recovery",
        "omp_threads": os.environ.get("OMP_NUM_THREADS"),
        "reps": REPS,
        "correct": ok,
        "rows_ms": rows,
    }, indent=1))


if __name__ == "__main__":
    main()
