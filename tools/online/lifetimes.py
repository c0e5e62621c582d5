#!/usr/bin/env python3
"""How well a pod's lifetime is predicted from the pods of its group that
ended before it arrived (the rule of tools/online/experiments/
lifetime-prediction.patch, at age 0): group = requests and QoS class, the
median of the group's last 64 recorded lifetimes, at least 5 of them.

usage: python3 tools/online/lifetimes.py ../shared/traces/alibaba-v2023-openb_pod_list_default.csv
"""
import collections
import csv
import heapq
import math
import statistics
import sys


def ranks(xs):
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    r = [0] * len(xs)
    for pos, i in enumerate(order):
        r[i] = pos
    return r


def spearman(a, b):
    ra, rb = ranks(a), ranks(b)
    m = (len(a) - 1) / 2
    num = sum((x - m) * (y - m) for x, y in zip(ra, rb))
    return num / math.sqrt(sum((x - m) ** 2 for x in ra) * sum((y - m) ** 2 for y in rb))


def main(path):
    pods = []
    with open(path) as f:
        for r in csv.DictReader(f):
            if not r["scheduled_time"] or not r["deletion_time"] or int(r["num_gpu"]) == 0:
                continue
            key = (r["cpu_milli"], r["memory_mib"], r["num_gpu"], r["gpu_milli"], r["qos"])
            pods.append((int(r["creation_time"]), int(r["deletion_time"]), key))
    if not pods:
        sys.exit(f"{path}: no GPU pod with a creation, schedule and deletion time")
    pods.sort(key=lambda p: p[0])
    ended = collections.defaultdict(list)
    running = []
    predicted, actual = [], []
    for created, deleted, key in pods:
        while running and running[0][0] <= created:
            _, k, life = heapq.heappop(running)
            ended[k].append(life)
        seen = ended[key][-64:]
        if len(seen) >= 5:
            predicted.append(statistics.median(seen))
            actual.append(deleted - created)
        heapq.heappush(running, (deleted, key, deleted - created))
    logs = [math.log(max(a, 1)) for a in actual]
    err = statistics.mean(abs(x - math.log(max(p, 1))) for x, p in zip(logs, predicted))
    base = statistics.mean(abs(x - statistics.median(logs)) for x in logs)
    print(f"GPU pods {len(pods)}, with a prediction {len(predicted)} ({len(predicted) / len(pods):.0%})")
    print(f"Spearman(predicted, actual) {spearman(predicted, actual):.2f}")
    print(f"mean |log predicted - log actual| {err:.2f} (global median: {base:.2f})")


if __name__ == "__main__":
    main(sys.argv[1])
