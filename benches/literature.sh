#!/usr/bin/env bash
# The literature protocol's Split-MNIST figures: fine-tune (naive) and joint in the task-,
# domain- and class-incremental settings, over several seeds, summarised as mean and
# standard error of the mean (as van de Ven & Tolias 2019 report theirs, over 20 seeds).
#
#   benches/literature.sh [SEEDS] [OUT_DIR]      # default: 5 seeds, out/literature
#
# Each run takes about 40 s on one core; two run at a time.
set -euo pipefail
cd "$(dirname "$0")/.."
seeds=${1:-5}
out=${2:-out/literature}
mkdir -p "$out"
cargo build --release --quiet
jobs=()
for strategy in naive joint; do
  for setting in task-il domain-il class-il; do
    for seed in $(seq 1 "$seeds"); do
      jobs+=("$strategy $setting $seed")
    done
  done
done
printf '%s\n' "${jobs[@]}" | xargs -P 2 -L 1 bash -c '
  f="'"$out"'/$0-$1-seed$2.json"
  [ -s "$f" ] || ./target/release/edgecl simulate --protocol literature --strategy "$0" --setting "$1" --seed "$2" --quiet --json "$f" > /dev/null'
python3 - "$out" "$seeds" <<'PY'
import json, math, sys
out, seeds = sys.argv[1], int(sys.argv[2])
published = {"naive": (87.2, 59.2, 19.9), "joint": (99.7, 98.4, 97.9)}
print(f"Split-MNIST, literature protocol, {seeds} seeds: average accuracy, mean (SEM) [published]")
print("| strategy | task-IL | domain-IL | class-IL |")
print("|---|---|---|---|")
for strategy in ("naive", "joint"):
    cells = []
    for i, setting in enumerate(("task-il", "domain-il", "class-il")):
        acc = [json.load(open(f"{out}/{strategy}-{setting}-seed{s}.json"))["avg_accuracy"] for s in range(1, seeds + 1)]
        mean = sum(acc) / len(acc)
        sem = math.sqrt(sum((a - mean) ** 2 for a in acc) / (len(acc) - 1) / len(acc)) if len(acc) > 1 else 0.0
        cells.append(f"{mean:.2f} ({sem:.2f}) [{published[strategy][i]}]")
    print(f"| {strategy} | " + " | ".join(cells) + " |")
PY
