#!/usr/bin/env bash
# Compares two makemore binaries stage by stage: `makemore bench --json` run RUNS times
# each, the binaries alternating so that both see the same machine load.
#
#   bench/alternate.sh OLD NEW RUNS [bench flags, default: --data names,10m]
#
# Per stage: the median and the fastest of each binary's per-run medians, and NEW / OLD of
# both (the fastest is the steadier figure on a loaded or software adapter).
set -euo pipefail
[ $# -ge 3 ] || { echo "usage: bench/alternate.sh OLD NEW RUNS [bench flags]" >&2; exit 2; }
old=$(realpath "$1") new=$(realpath "$2") runs=$3; shift 3
[ $# -gt 0 ] || set -- --data names,10m
out=$(mktemp -d)
export NODEVICE_SELECT=1 XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$out}"
for i in $(seq "$runs"); do
    "$old" bench "$@" --json > "$out/old-$i.json" 2>/dev/null
    "$new" bench "$@" --json > "$out/new-$i.json" 2>/dev/null
done
python3 - "$out" <<'PY'
import glob, json, statistics, sys
runs = {}
for side in ("old", "new"):
    for path in glob.glob(f"{sys.argv[1]}/{side}-*.json"):
        for line in open(path):
            row = json.loads(line)
            if "stage" in row:
                key = (row["stage"], row["data"], row["device"])
                runs.setdefault(key, {}).setdefault(side, []).append(row["median_ms"])
print("| stage | data | device | old median | new median | new / old | old fastest | new fastest | new / old |")
print("|---|---|---|---|---|---|---|---|---|")
for (stage, data, device), r in runs.items():
    if set(r) != {"old", "new"}:
        continue
    om, nm = statistics.median(r["old"]), statistics.median(r["new"])
    of, nf = min(r["old"]), min(r["new"])
    print(f"| {stage} | {data} | {device} | {om:.1f} | {nm:.1f} | {nm / om:.2f} | {of:.1f} | {nf:.1f} | {nf / of:.2f} |")
PY
rm -rf "$out"
