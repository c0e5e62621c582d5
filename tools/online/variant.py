#!/usr/bin/env python3
"""A trace variant with more multi-GPU pods: the bundled default trace plus
the pods that the static multigpu50 list adds to it (same names for the
shared 8,152 pods, 909 more that ask for 2, 4 or 8 GPUs), each extra pod
given the times, QoS and phase of a default-trace GPU pod drawn at random
(seeded). Used to check the online policy on a workload that is not the
bundled trace (designs/online.md).

usage: python3 tools/online/variant.py DEFAULT.csv MULTIGPU50.csv OUT.csv [SEED]
"""
import csv
import random
import sys


def main(default_path, multi_path, out_path, seed=1):
    with open(default_path) as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames
        rows = list(reader)
    names = {r["name"] for r in rows}
    with open(multi_path) as f:
        extra = [r for r in csv.DictReader(f) if r["name"] not in names]
    donors = [r for r in rows if int(r["num_gpu"]) > 0 and r["creation_time"]]
    if not donors or not extra:
        sys.exit(f"nothing to combine: {len(donors)} timed GPU pods in {default_path}, {len(extra)} extra pods in {multi_path}")
    rng = random.Random(seed)
    for r in extra:
        d = rng.choice(donors)
        rows.append({**{k: "" for k in header}, **{k: r[k] for k in ("name", "cpu_milli", "memory_mib", "num_gpu", "gpu_milli")},
                     **{k: d[k] for k in ("qos", "pod_phase", "creation_time", "deletion_time", "scheduled_time")}})
    rows.sort(key=lambda r: int(r["creation_time"] or 0))
    with open(out_path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=header)
        w.writeheader()
        w.writerows(rows)
    print(f"{out_path}: {len(rows)} pods ({len(extra)} added from {multi_path})")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]) if len(sys.argv) > 4 else 1)
