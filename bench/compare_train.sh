#!/usr/bin/env bash
# End-to-end training on the shared 1,000,000 x 20 benchmark CSV:
#   A = the `churn train` process (read, fit, evaluate, write the artifact to a
#       fresh model store, promote), timed as a whole process;
#   B = bench/sklearn_baseline.py train (pandas.read_csv +
#       StandardScaler + LogisticRegression(lbfgs)); its work_s excludes
#       interpreter start and imports, so the ratio against it is strict.
# Alternated A B A B ..., medians and the median ratio printed last.
#
#   bench/compare_train.sh [CSV] [PYTHON] [ROUNDS]
#
# Setup (see bench/README.md):
#   python3 -m venv /tmp/bench-venv && /tmp/bench-venv/bin/pip install -q numpy pandas scikit-learn
#   /tmp/bench-venv/bin/python bench/gen_syn.py --out /tmp/syn1m.csv
#   cargo build --release -p churn-cli
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
csv=${1:-/tmp/syn1m.csv}
py=${2:-/tmp/bench-venv/bin/python}
rounds=${3:-5}
churn=${CARGO_TARGET_DIR:-$here/target}/release/churn
baseline=$here/bench/sklearn_baseline.py
[ -x "$churn" ] || { echo "build first: cargo build --release -p churn-cli" >&2; exit 1; }
[ -f "$baseline" ] || { echo "missing $baseline" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for r in $(seq "$rounds"); do
  rm -rf "$work/models"
  s=$(date +%s.%N)
  /usr/bin/time -f '%M' -o "$work/rss" "$churn" train --quiet --data "$csv" --id customer_id \
    --label churned --models "$work/models" --json > "$work/a.json"
  e=$(date +%s.%N)
  a_auc=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['metrics']['roc_auc'])" "$work/a.json")
  echo "A $(python3 -c "print(round($e - $s, 3))") $a_auc $(cat "$work/rss")" | tee -a "$work/results"
  s=$(date +%s.%N)
  out=$("$py" "$baseline" train "$csv")
  e=$(date +%s.%N)
  b_work=$(python3 -c "import json,sys; print(round(json.loads(sys.argv[1])['work_s'], 3))" "$out")
  b_auc=$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['auc'])" "$out")
  echo "B $b_work $b_auc $(python3 -c "print(round($e - $s, 3))")" | tee -a "$work/results"
done
python3 - "$work/results" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
a = [r for r in rows if r[0] == "A"]
b = [r for r in rows if r[0] == "B"]
med = lambda xs: statistics.median(float(x) for x in xs)
ratio = statistics.median(float(x[1]) / float(y[1]) for x, y in zip(a, b))
print(f"churn train (whole process): median {med(r[1] for r in a):.3f} s, AUC {med(r[2] for r in a):.4f}, "
      f"peak RSS {med(r[3] for r in a) / 1024:.0f} MiB")
print(f"scikit-learn work_s: median {med(r[1] for r in b):.3f} s (whole process {med(r[3] for r in b):.3f} s), "
      f"AUC {med(r[2] for r in b):.4f}")
print(f"median ratio churn / scikit-learn work_s: {ratio:.3f} (target <= 0.4, AUC within 0.002)")
PY
