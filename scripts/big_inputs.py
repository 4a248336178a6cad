"""N concurrent tritonclient.http clients, each sending ROUNDS inferences with one binary
UINT8 input of SIZE bytes (the binary tensor extension) to MODEL, all clients released
together each round. Prints each round's successes and latency p50 / max.

    python3 scripts/big_inputs.py HOST:PORT MODEL SIZE N ROUNDS SLO_MS
"""
import sys
import threading
import time

import numpy as np
import tritonclient.http as http


def main():
    url, model = sys.argv[1], sys.argv[2]
    size, n, rounds, slo_ms = (int(a) for a in sys.argv[3:7])
    data = np.frombuffer(np.random.default_rng(1).bytes(size), dtype=np.uint8)
    results = []
    lock = threading.Lock()
    barrier = threading.Barrier(n)

    def client(i):
        c = http.InferenceServerClient(url=url, connection_timeout=30, network_timeout=30)
        for r in range(rounds):
            barrier.wait()
            inp = http.InferInput("input", [size], "UINT8")
            inp.set_data_from_numpy(data, binary_data=True)
            t0 = time.perf_counter()
            ok = True
            try:
                # tritonclient reserves `timeout`: the SLO goes as clockwork_slo_ms.
                c.infer(model, [inp], parameters={"clockwork_slo_ms": slo_ms})
            except Exception as e:  # noqa: BLE001 - any failure counts as one
                ok = False
                if i == 0:
                    print(f"round {r}: {e}", file=sys.stderr)
            with lock:
                results.append((r, ok, (time.perf_counter() - t0) * 1000))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in range(rounds):
        mine = [x for x in results if x[0] == r]
        lat = sorted(x[2] for x in mine if x[1])
        p50 = f"{lat[len(lat) // 2]:.0f}" if lat else "-"
        top = f"{lat[-1]:.0f}" if lat else "-"
        print(f"round {r}: {len(lat)}/{len(mine)} ok, p50 {p50} ms, max {top} ms")


if __name__ == "__main__":
    main()
