"""PyJWT's side of bench/sso/bench_jwt.c: verify the same tokens against the same JWKS
with the same checks (alg pinned, iss, aud, exp/iat with 60 s leeway, nonce), and print
per-call times in microseconds as JSON.  Usage: bench_pyjwt.py DIR N (DIR holds jwks.json,
rs256.jwt, es256.jwt written by bench_jwt)."""
import json
import statistics
import sys
import time

import jwt  # PyJWT, with its [crypto] extra (cryptography)

ISS = "https://idp.example/realms/nbhub"


def bench(token, jwks, n):
    kid = jwt.get_unverified_header(token)["kid"]
    key = next(k for k in jwks.keys if k.key_id == kid)   # chosen by kid, as nbhub does
    alg = key.algorithm_name if key.algorithm_name else jwt.get_unverified_header(token)["alg"]
    times = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        c = jwt.decode(token, key.key, algorithms=[alg], audience="nbhub", issuer=ISS, leeway=60,
                       options={"require": ["exp", "iat", "iss", "aud"]})
        if c.get("nonce") != "n-123":
            raise SystemExit("nonce")
        times.append(time.perf_counter_ns() - t0)
    times.sort()
    return {"median_us": statistics.median(times) / 1000, "p90_us": times[int(len(times) * 0.9)] / 1000}


def main():
    d, n = sys.argv[1], int(sys.argv[2])
    jwks = jwt.PyJWKSet.from_json(open(f"{d}/jwks.json").read())
    out = {"pyjwt": jwt.__version__}
    for alg in ("rs256", "es256"):
        out[alg] = bench(open(f"{d}/{alg}.jwt").read().strip(), jwks, n)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
