#!/usr/bin/env bash
# The defences' literature figures over seeds, one family at a time:
#
#   benches/figures.sh plasticity [SEEDS] [JOBS]   importance penalties: Split-MNIST task-IL
#                                                  (EWC, SI, MAS), Permuted-MNIST domain-IL
#                                                  (SI, online EWC), compact and f32 storage
#   benches/figures.sh allocation [SEEDS] [JOBS]   PackNet on Split-MNIST task-IL and
#                                                  Permuted-MNIST with task labels; PackNet
#                                                  and progressive columns at edge scale
#   benches/figures.sh replay [SEEDS] [JOBS]       class-IL Split-MNIST: every generator
#                                                  and a reservoir buffer of the same bytes
#                                                  at edge scale (64 KiB, the netduinoplus2's
#                                                  96 KiB), input-space VAE replay on the
#                                                  literature network
#
# SEEDS: how many seeds (1..SEEDS) [3]; JOBS: runs at once [2]; FIGURES_ONLY=REGEX keeps the
# runs whose name matches; EDGECL_BIN=FILE runs that binary instead of building one. Each run writes its JSON report to out/FAMILY/; the summary
# (mean ± standard error of the average accuracy and BWT over seeds) is printed at the end.
# A literature Split-MNIST run takes about a minute on one core, a Permuted-MNIST one about
# five.
set -euo pipefail
cd "$(dirname "$0")/.."
family="${1:?usage: benches/figures.sh plasticity|allocation|replay [SEEDS] [JOBS]}"
seeds="${2:-3}"
jobs="${3:-2}"
out="out/$family"
mkdir -p "$out"
# EDGECL_BIN=FILE runs a binary built before (so rebuilding does not change it mid-run).
bin="${EDGECL_BIN:-}"
if [ -z "$bin" ]; then
  cargo build --release --quiet
  bin=target/release/edgecl
fi

# name | arguments (the strengths are the defaults chosen on validation splits, see README)
plasticity=(
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
allocation=(
  "split-packnet|--protocol literature --setting task-il --strategy packnet"
  "permuted-packnet|--protocol literature --scenario permuted --setting task-il --strategy packnet --prune-ratio 0.8"
  "edge-packnet|--protocol edge --setting task-il --strategy packnet"
  "edge-progressive-192k|--protocol edge --setting task-il --strategy progressive --budget 192k"
  "edge-naive-192k|--protocol edge --setting task-il --strategy naive --budget 192k"
)
# The 64 KiB learner: a linear head on plain SGD (its gradient is its only state), so the
# Gaussian's working slots and records fit beside it.
e64="--setting class-il --budget 64k --hidden 0 --optimizer sgd --momentum 0 --lr 0.03"
replay=(
  "edge64k-naive|$e64 --strategy naive"
  "edge64k-online-ewc|$e64 --strategy online-ewc"
  "edge64k-gaussian-rank0|$e64 --strategy replay --generator-rank 0"
  "edge64k-gaussian-rank4|$e64 --strategy replay --generator-rank 4"
  "edge64k-gaussian-rank3-distill|$e64 --strategy replay --generator-rank 3 --distill"
  "edge64k-buffer|$e64 --strategy replay --generator buffer --generator-rank 4"
  "edge64k-joint|$e64 --strategy joint"
  "edge96k-naive|--setting class-il --strategy naive"
  "edge96k-gaussian-rank4|--setting class-il --strategy replay"
  "edge96k-gaussian-rank4-distill|--setting class-il --strategy replay --distill"
  "edge96k-buffer|--setting class-il --strategy replay --generator buffer"
  "edge96k-packnet|--setting class-il --strategy packnet"
  "edge96k-packnet-replay|--setting class-il --strategy packnet+replay"
  "edge512k-vae|--setting class-il --strategy replay --generator vae --budget 512k"
  "lit-naive|--protocol literature --setting class-il --strategy naive"
  "lit-vae|--protocol literature --setting class-il --strategy replay --generator vae --budget 32m"
  "lit-vae-distill|--protocol literature --setting class-il --strategy replay --generator vae --distill --batch 256 --replay-ratio 1 --budget 48m"
  "lit-buffer500|--protocol literature --setting class-il --strategy replay --generator buffer --buffer-rows 500"
)
case "$family" in
  plasticity) configs=("${plasticity[@]/|/|--protocol literature }") ;;
  allocation) configs=("${allocation[@]}") ;;
  replay) configs=("${replay[@]}") ;;
  *) echo "unknown family $family (plasticity, allocation or replay)" >&2; exit 2 ;;
esac
filter="${FIGURES_ONLY:-}"

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
  "$bin" simulate $args --seed "$seed" --quiet --json "$json.tmp" >/dev/null
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
print("| run | seeds | average accuracy | BWT | defence | bytes (plan) |")
print("|---|---:|---:|---:|---|---:|")
for name, rs in rows.items():
    acc = [r["avg_accuracy"] for r in rs]
    bwt = [r["bwt"] for r in rs]
    sem = lambda v: st.stdev(v) / len(v) ** 0.5 if len(v) > 1 else 0.0
    learner = rs[0]["learner"]
    p, k, c = learner.get("penalty"), learner.get("packnet"), learner.get("progressive")
    g = learner.get("replay")
    desc = []
    if g:
        what = {"gaussian": f'gaussian rank {g.get("rank")}', "buffer": f'buffer of {g.get("rows")} rows',
                "vae": f'vae {g.get("vae_hidden")}-{g.get("vae_latent")}'}[g["generator"]]
        desc.append(f'{what}, {g["bytes"]} B' + (f', distilled at T {g["distill"]:g}' if g.get("distill") else ""))
    if p:
        desc.append(f'{p["method"]} lambda {p["lambda"]:g}, {p["storage"]}')
    if k:
        desc.append(f'packnet ratio {k["prune_ratio"]:g}, {k["mask_bits"]}-bit mask {k["mask_bytes"]} B')
    if c:
        desc.append(f'{c["columns_used"]} of {c["max_columns"]} columns of {c["column_width"]}')
    desc = "; ".join(desc) or "-"
    print(f"| {name} | {len(rs)} | {st.mean(acc):.2f} ± {sem(acc):.2f} | {st.mean(bwt):+.2f} | {desc} | {rs[0]['arena_bytes']} |")
EOF
