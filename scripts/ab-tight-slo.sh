#!/usr/bin/env bash
# Interleaved A/B of `clockwork-bench tight-slo` between two builds of the bench binary:
# A, B, A, B, ... so that both see the same machine load. Prints each run's attainment
# per row (load generator / controller log) and keeps each run's JSON line.
#   scripts/ab-tight-slo.sh OLD_BINARY NEW_BINARY [ROUNDS] [DURATION] [OUT_DIR]
set -euo pipefail
old=${1:?old clockwork-bench binary}
new=${2:?new clockwork-bench binary}
rounds=${3:-2}
duration=${4:-10s}
out=${5:-out/ab-tight-slo-$(date +%s)}
mkdir -p "$out"
for round in $(seq 1 "$rounds"); do
  for side in old new; do
    bin=$old
    [ "$side" = new ] && bin=$new
    echo "== $side, round $round ($bin)"
    "$bin" tight-slo --duration "$duration" --out "$out/$side-$round" | grep '^{' | tail -1 >"$out/$side-$round.json"
    python3 - "$out/$side-$round.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
print(" | ".join("%s %.2f / %.2f %%" % (r["row"], 100 * r["loadgen_attainment"], 100 * r["controller_attainment"]) for r in d["rows"]))
PY
  done
done
