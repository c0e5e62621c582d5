#!/usr/bin/env bash
# Runs go test with JSON output and prints a summary line
# ("N passed, N failed, N skipped") so the number of tests run is visible.
set -uo pipefail
out="$(mktemp)"
go test -json "$@" > "$out"
rc=$?
# Human-readable failures and package results.
python3 - "$out" <<'PY'
import json, sys
passed = failed = skipped = 0
outputs = {}
for line in open(sys.argv[1]):
    try:
        ev = json.loads(line)
    except ValueError:
        print(line, end="")
        continue
    key = (ev.get("Package"), ev.get("Test"))
    if ev.get("Action") == "output":
        outputs.setdefault(key, []).append(ev.get("Output", ""))
    act, test = ev.get("Action"), ev.get("Test")
    if test is None and act in ("pass", "fail", "skip"):
        print(f"{act:4} {ev['Package']} {ev.get('Elapsed', 0):.1f}s")
        if act == "fail":
            print("".join(outputs.get(key, [])[-60:]))
        continue
    if test is None:
        continue
    if act == "pass": passed += 1
    elif act == "skip": skipped += 1
    elif act == "fail":
        failed += 1
        print(f"--- FAIL {ev['Package']} {test}")
        print("".join(outputs.get(key, [])[-80:]))
import re
specs = 0
for (pkg, test), lines in outputs.items():
    for l in lines:
        m = re.search(r"Ran (\d+) of \d+ Specs", l)
        if m: specs += int(m.group(1))
print(f"ginkgo specs run: {specs} (each suite counts once below)")
print(f"{passed} passed, {failed} failed, {skipped} skipped")
PY
exit $rc
