#!/usr/bin/env bash
# Rescore cost of two builds of `churn` on the same snapshot, one run,
# alternated A B A B ...: each rescore writes every flag of an N-row seeded
# synthetic snapshot into a fresh SQLite flag store (the full-write case, the
# most work per row), timed as a whole process with its peak RSS. Each binary
# scores with a model it trained itself on the same table (artifact formats
# may differ between builds). Medians and the median ratio B/A last.
#
#   bench/compare_rescore.sh A_CHURN B_CHURN [ROWS] [ROUNDS]
#
# A is the comparison (e.g. the previous release), B the candidate:
#   git worktree add /tmp/churn-old <commit> &&
#     (cd /tmp/churn-old && CARGO_TARGET_DIR=$PWD/target cargo build --release -p churn-cli)
#   cargo build --release -p churn-cli
#   bench/compare_rescore.sh /tmp/churn-old/target/release/churn target/release/churn 1000000 5
set -euo pipefail
a=${1:?usage: compare_rescore.sh A_CHURN B_CHURN [ROWS] [ROUNDS]}
b=${2:?usage: compare_rescore.sh A_CHURN B_CHURN [ROWS] [ROUNDS]}
rows=${3:-1000000}
rounds=${4:-5}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$b" generate --quiet --customers "$rows" --seed 11 --out "$work/snapshot.csv"
"$b" generate --quiet --customers 200000 --seed 12 --out "$work/train.csv"
for x in a b; do
  bin=${!x}
  "$bin" train --quiet --data "$work/train.csv" --models "$work/models-$x" --json > /dev/null
done

for r in $(seq "$rounds"); do
  for x in a b; do
    bin=${!x}
    rm -f "$work/flags.db"*
    s=$(date +%s.%N)
    /usr/bin/time -f '%M' -o "$work/rss" "$bin" rescore --quiet --data "$work/snapshot.csv" \
      --models "$work/models-$x" --flags "sqlite://$work/flags.db" --json > "$work/out.json"
    e=$(date +%s.%N)
    written=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['written'])" "$work/out.json")
    echo "$x $(python3 -c "print(round($e - $s, 3))") $(cat "$work/rss") $written" | tee -a "$work/results"
  done
done

python3 - "$work/results" "$rows" <<'PY'
import statistics, sys
rows = int(sys.argv[2])
runs = {"a": [], "b": []}
rss = {"a": [], "b": []}
for line in open(sys.argv[1]):
    x, secs, kb, _ = line.split()
    runs[x].append(float(secs))
    rss[x].append(int(kb) / 1024)
ma, mb = statistics.median(runs["a"]), statistics.median(runs["b"])
ratios = [b / a for a, b in zip(runs["a"], runs["b"])]
print(f"A median {ma:.3f} s ({rows / ma:,.0f} rows/s), peak RSS {max(rss['a']):.1f} MiB")
print(f"B median {mb:.3f} s ({rows / mb:,.0f} rows/s), peak RSS {max(rss['b']):.1f} MiB")
print(f"B/A: ratio of medians {mb / ma:.3f}, median of paired ratios {statistics.median(ratios):.3f}")
PY
