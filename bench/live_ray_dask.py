"""Ray and Dask sides of bench/live_vs_ray_dask.sh: no-op task throughput and round trip.

  python live_ray_dask.py ray  --cpus 2 --tasks N --latency M
  /usr/bin/python3 live_ray_dask.py dask --cpus 2 --tasks N --latency M

Throughput: N no-op tasks submitted, then all gotten (after a 200-task warm-up).
Latency: M sequential submit+get round trips of one no-op task (after 100 warm-up ones).
Prints one JSON object.
"""
import argparse
import json
import statistics
import sys
import time


def percentiles(us):
    us = sorted(us)
    at = lambda q: us[min(len(us) - 1, int(q * len(us)))]
    return {"p50_us": round(at(0.5), 1), "p99_us": round(at(0.99), 1), "n": len(us),
            "mean_us": round(statistics.fmean(us), 1)}


def run_ray(cpus, n, m):
    import ray
    ray.init(num_cpus=cpus, include_dashboard=False, logging_level="ERROR",
             log_to_driver=False)

    @ray.remote
    def noop():
        return None

    ray.get([noop.remote() for _ in range(200)])
    t0 = time.perf_counter()
    ray.get([noop.remote() for _ in range(n)])
    secs = time.perf_counter() - t0
    lat = []
    for i in range(m + 100):
        t = time.perf_counter()
        ray.get(noop.remote())
        if i >= 100:
            lat.append((time.perf_counter() - t) * 1e6)
    out = {"version": ray.__version__, "tasks": n, "seconds": round(secs, 4),
           "tasks_per_s": round(n / secs, 1), **percentiles(lat)}
    ray.shutdown()
    return out


def noop_dask(_):
    return None


def run_dask(cpus, n, m):
    import distributed
    from distributed import Client, LocalCluster
    cluster = LocalCluster(n_workers=cpus, threads_per_worker=1, processes=True,
                           dashboard_address=None)
    client = Client(cluster)
    client.gather(client.map(noop_dask, range(200), pure=False))
    t0 = time.perf_counter()
    client.gather(client.map(noop_dask, range(n), pure=False))
    secs = time.perf_counter() - t0
    lat = []
    for i in range(m + 100):
        t = time.perf_counter()
        client.submit(noop_dask, i, pure=False).result()
        if i >= 100:
            lat.append((time.perf_counter() - t) * 1e6)
    out = {"version": distributed.__version__, "tasks": n, "seconds": round(secs, 4),
           "tasks_per_s": round(n / secs, 1), **percentiles(lat)}
    client.close()
    cluster.close()
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("system", choices=["ray", "dask"])
    p.add_argument("--cpus", type=int, default=2)
    p.add_argument("--tasks", type=int, default=20000)
    p.add_argument("--latency", type=int, default=2000)
    a = p.parse_args()
    run = run_ray if a.system == "ray" else run_dask
    print(json.dumps(run(a.cpus, a.tasks, a.latency)))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
