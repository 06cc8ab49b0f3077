#!/usr/bin/env bash
# The importance penalties' literature figures: Split-MNIST task-IL (EWC, SI, MAS) and
# Permuted-MNIST domain-IL (SI, online EWC), with compact and f32 storage, over seeds.
#
#   benches/plasticity.sh [SEEDS] [JOBS]
#
# SEEDS: how many seeds (1..SEEDS) [3]; JOBS: runs at once [2]. Each run writes its JSON
# report to out/plasticity/; the summary (mean ± standard error of the average accuracy
# and BWT over seeds) is printed at the end. A Split-MNIST run takes about a minute on one
# core, a Permuted-MNIST one about five.
set -euo pipefail
cd "$(dirname "$0")/.."
seeds="${1:-3}"
jobs="${2:-2}"
out=out/plasticity
mkdir -p "$out"
cargo build --release --quiet
bin=target/release/edgecl

# name | arguments (the strengths are the defaults chosen on validation splits, see README)
configs=(
  "split-naive|--setting task-il --strategy naive"
  "split-si|--setting task-il --strategy si"
  "split-si-f32|--setting task-il --strategy si --storage f32"
  "split-si-linear|--setting task-il --strategy si --quant linear"
  "split-ewc|--setting task-il --strategy ewc --budget 32m"
  "split-ewc-f32|--setting task-il --strategy ewc --storage f32 --budget 48m"
  "split-mas|--setting task-il --strategy mas"
  "permuted-si|--scenario permuted --setting domain-il --strategy si"
  "permuted-si-f32|--scenario permuted --setting domain-il --strategy si --storage f32"
  "permuted-online-ewc|--scenario permuted --setting domain-il --strategy online-ewc"
)
filter="${PLASTICITY_ONLY:-}"

runs=()
for c in "${configs[@]}"; do
  name="${c%%|*}"
  if [ -n "$filter" ] && [[ ! "$name" =~ $filter ]]; then continue; fi
  for s in $(seq 1 "$seeds"); do
    runs+=("$name|${c#*|}|$s")
  done
done

run_one() {
  IFS='|' read -r name args seed <<<"$1"
  json="$out/$name-seed$seed.json"
  if [ -s "$json" ]; then return; fi
  # shellcheck disable=SC2086
  "$bin" simulate --protocol literature $args --seed "$seed" --quiet --json "$json.tmp" >/dev/null
  mv "$json.tmp" "$json"
  echo "done: $name seed $seed"
}
export -f run_one
export bin out
printf '%s\n' "${runs[@]}" | xargs -P "$jobs" -I{} bash -c 'run_one "$@"' _ {}

python3 - "$out" <<'EOF'
import json, sys, glob, os, statistics as st
out = sys.argv[1]
rows = {}
for path in sorted(glob.glob(os.path.join(out, "*-seed*.json"))):
    name = os.path.basename(path).rsplit("-seed", 1)[0]
    r = json.load(open(path))
    rows.setdefault(name, []).append(r)
print("| run | seeds | average accuracy | BWT | penalty | bytes (plan) |")
print("|---|---:|---:|---:|---|---:|")
for name, rs in rows.items():
    acc = [r["avg_accuracy"] for r in rs]
    bwt = [r["bwt"] for r in rs]
    sem = lambda v: st.stdev(v) / len(v) ** 0.5 if len(v) > 1 else 0.0
    p = rs[0]["learner"].get("penalty")
    desc = f'{p["method"]} lambda {p["lambda"]:g}, {p["storage"]}' if p else "-"
    print(f"| {name} | {len(rs)} | {st.mean(acc):.2f} ± {sem(acc):.2f} | {st.mean(bwt):+.2f} | {desc} | {rs[0]['arena_bytes']} |")
EOF
