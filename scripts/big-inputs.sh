#!/usr/bin/env bash
# Large inputs on real processes: a controller and a worker with two **emulated** GPUs
# on loopback, 4 instances of a model taking SIZE-byte inputs (1 ms at batch 1), then N
# concurrent tritonclient.http clients x ROUNDS requests (scripts/big_inputs.py, needs
# tests/python/requirements.txt). Prints each round and the controller's and the
# worker's CPU time.
#   scripts/big-inputs.sh BIN_DIR SIZE N ROUNDS SLO_MS
set -euo pipefail
bin=${1:?directory with clockwork-controller and clockwork-worker}
size=${2:-602112}
n=${3:-24}
rounds=${4:-10}
slo=${5:-2000}
here=$(cd "$(dirname "$0")" && pwd)
base=$((20000 + RANDOM % 20000))
http=127.0.0.1:$((base + 3))
"$bin/clockwork-worker" --listen 127.0.0.1:$((base + 1)) --emulate 2 >/tmp/big-inputs-worker.log 2>&1 &
worker=$!
sleep 0.5
"$bin/clockwork-controller" --workers 127.0.0.1:$((base + 1)) --listen 127.0.0.1:$((base + 2)) \
  --http "$http" --admin-open >/tmp/big-inputs-controller.log 2>&1 &
controller=$!
trap 'kill $controller $worker 2>/dev/null; wait 2>/dev/null' EXIT
for _ in $(seq 50); do
  curl -s -o /dev/null -w '%{http_code}' "$http/v2/health/ready" | grep -q 200 && break
  sleep 0.2
done
curl -s -X POST "$http/v2/repository/models/big/load" -d "{\"parameters\":{\"copies\":4,\"profile\":
  {\"weights_bytes\":100000000,\"input_bytes\":$size,\"output_bytes\":4000,\"load_time_us\":2000,
   \"batches\":[{\"batch_size\":1,\"exec_time_us\":1000},{\"batch_size\":2,\"exec_time_us\":1100},
   {\"batch_size\":4,\"exec_time_us\":1300},{\"batch_size\":8,\"exec_time_us\":1700}]}}}" >/dev/null
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
before=$(ticks $controller)
worker_before=$(ticks $worker)
python3 "$here/big_inputs.py" "$http" big-0 "$size" "$n" "$rounds" "$slo"
after=$(ticks $controller)
worker_after=$(ticks $worker)
echo "controller CPU: $(((after - before) * 1000 / $(getconf CLK_TCK))) ms"
echo "worker CPU: $(((worker_after - worker_before) * 1000 / $(getconf CLK_TCK))) ms"
