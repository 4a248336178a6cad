#!/usr/bin/env bash
# Runs the images of local-image.sh as separate hosts on a private Docker network and
# checks them as an operator would: a controller and two workers (emulated GPUs) under
# deploy/seccomp/clockwork.json, inference over HTTP from a third container,
# a network partition of one worker, the loss and restart of a worker, and a real ONNX
# model served by a CPU worker from a shared, read-only model directory.
#
#   deploy/container/local-image.sh target/release && deploy/container/smoke-test.sh
#
# Prints one line per check and ends with a JSON line; exits 1 at the first failure.
# Cleans up its containers and network on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
net=cw-smoke
seccomp=$PWD/deploy/seccomp/clockwork.json
token=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
admin=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
models=$(mktemp -d)
chmod 755 "$models"
passed=0

cleanup() {
  docker rm -f cw-controller cw-worker-1 cw-worker-2 cw-cpu-worker cw-client >/dev/null 2>&1 || true
  docker network rm "$net" >/dev/null 2>&1 || true
  rm -rf "$models"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
cleanup
fail() { echo "FAIL: $*" >&2; docker logs --tail 20 cw-controller >&2 2>&1 || true; exit 1; }
ok() { passed=$((passed + 1)); echo "ok: $*"; }
run() { docker run -d --network "$net" --security-opt "seccomp=$seccomp" "$@" >/dev/null; }
# curl from a client container on the private network (started below).
ccurl() { docker exec cw-client curl -s -m 10 "$@"; }
# Polls until `ccurl ARGS` prints something matching PATTERN (30 s).
wait_for() {
  local pattern=$1; shift
  for _ in $(seq 60); do
    if ccurl "$@" 2>/dev/null | grep -q -- "$pattern"; then return 0; fi
    sleep 0.5
  done
  return 1
}
infer_ok() { # model -> prints the number of 200s out of 20 requests
  local n=0
  for _ in $(seq 20); do
    code=$(ccurl -o /dev/null -w '%{http_code}' -X POST "http://cw-controller:8000/v2/models/$1/infer" \
      -d '{"parameters":{"timeout":100000},"inputs":[]}' || true)
    [[ $code == 200 ]] && n=$((n + 1))
  done
  echo "$n"
}

docker network create --internal "$net" >/dev/null
run --name cw-client --entrypoint sleep clockwork-controller:local infinity
for w in cw-worker-1 cw-worker-2; do
  run --name "$w" --hostname "$w" clockwork-worker:local --emulate 2 --listen 0.0.0.0:12345 --token "$token"
done
run --name cw-controller --hostname cw-controller clockwork-controller:local \
  --workers cw-worker-1:12345,cw-worker-2:12345 --listen 0.0.0.0:12346 --http 0.0.0.0:8000 \
  --token "$token" --admin-token "$admin" --reconnect-ms 200
wait_for '"live":true' http://cw-controller:8000/v2/health/live || fail "controller not live"
wait_for '' -o /dev/null -w '%{http_code}' http://cw-controller:8000/v2/health/ready || true
ok "io_uring works under deploy/seccomp/clockwork.json: controller live, workers started"
wait_for 'clockwork_workers_connected 2' http://cw-controller:8000/metrics || fail "workers not connected"
ok "controller reached both workers by their container names"

ccurl -X POST http://cw-controller:8000/v2/repository/models/resnet50_v2/load \
  -H "Authorization: Bearer $admin" -d '{"parameters":{"copies":4}}' | grep -q resnet50_v2-3 \
  || fail "registration"
n=$(infer_ok resnet50_v2-0)
[[ $n -ge 19 ]] || fail "inference: $n/20 answered 200"
ok "inference over HTTP across hosts: $n/20"

# Partition: cut worker 1 off the network, then heal.
docker network disconnect "$net" cw-worker-1
sleep 3
n_cut=$(infer_ok resnet50_v2-1)
docker network connect "$net" cw-worker-1
wait_for 'clockwork_workers_connected 2' http://cw-controller:8000/metrics \
  || fail "worker 1 did not come back after the partition healed"
n_healed=$(infer_ok resnet50_v2-1)
[[ $n_healed -ge 19 ]] || fail "after the partition: $n_healed/20"
ok "partition of worker 1: $n_cut/20 served during the cut, $n_healed/20 after it healed"

# Node loss: kill worker 2 outright, restart it.
docker kill cw-worker-2 >/dev/null
wait_for 'clockwork_workers_connected 1' http://cw-controller:8000/metrics || fail "loss of worker 2 not seen"
n_lost=$(infer_ok resnet50_v2-2)
docker start cw-worker-2 >/dev/null
wait_for 'clockwork_workers_connected 2' http://cw-controller:8000/metrics || fail "worker 2 did not rejoin"
n_back=$(infer_ok resnet50_v2-2)
[[ $n_lost -ge 19 && $n_back -ge 19 ]] || fail "worker loss: $n_lost/20 while lost, $n_back/20 after"
ok "loss of worker 2: $n_lost/20 served by worker 1 meanwhile, rejoined, $n_back/20 after"

# A real model: make-model writes a repository entry; the controller and a CPU worker
# read it at the same path from a shared read-only mount (docs/adr/0003).
docker run --rm -v "$models:/models" --user 0 --entrypoint clockwork-bench clockwork-controller:local \
  make-model small_cnn --out /models >/dev/null
docker rm -f cw-controller >/dev/null
run --name cw-cpu-worker --hostname cw-cpu-worker -v "$models:/models:ro" clockwork-worker:local \
  --cpu 1 --listen 0.0.0.0:12345 --token "$token"
run --name cw-controller --hostname cw-controller -v "$models:/models:ro" clockwork-controller:local \
  --workers cw-cpu-worker:12345 --listen 0.0.0.0:12346 --http 0.0.0.0:8000 --token "$token" \
  --model-repository /models
wait_for '"name":"small_cnn"' http://cw-controller:8000/v2/models/small_cnn || fail "small_cnn metadata"
meta=$(ccurl http://cw-controller:8000/v2/models/small_cnn)
shape=$(python3 -c 'import json,sys; m=json.loads(sys.argv[1]); i=m["inputs"][0]; print(i["name"], ",".join(str(d) for d in i["shape"][1:]))' "$meta")
read -r iname ishape <<<"$shape"
count=$(python3 -c 'import math,sys; print(math.prod(int(d) for d in sys.argv[1].split(",")))' "$ishape")
body=$(python3 -c 'import json,sys; n=int(sys.argv[3]); print(json.dumps({"parameters":{"timeout":5000000},"inputs":[{"name":sys.argv[1],"datatype":"FP32","shape":[1]+[int(d) for d in sys.argv[2].split(",")],"data":[0.5]*n}]}))' "$iname" "$ishape" "$count")
for _ in $(seq 60); do
  out=$(ccurl -X POST http://cw-controller:8000/v2/models/small_cnn/infer -d "$body" || true)
  grep -q '"outputs"' <<<"$out" && break
  sleep 1
done
grep -q '"outputs"' <<<"$out" || fail "small_cnn inference: $out"
ok "real ONNX model on a CPU worker container, shared read-only repository: answered"

echo "{\"bench\":\"container-smoke\",\"checks_passed\":$passed,\"partition_served_during_cut\":$n_cut,\"worker_loss_served\":$n_lost}"
