#!/usr/bin/env bash
# Scoring a feature file into a scores file, on the shared benchmark CSV:
#   A = the `churn score` process (read, score with reasons, write the CSV
#       customer_id,churn_probability,risk_band,reason_1..3), timed as a
#       whole process, with its peak RSS;
#   B = bench/sklearn_baseline.py score (pandas.read_csv + a pre-fitted
#       StandardScaler + LogisticRegression pipeline's predict_proba + bands +
#       to_csv(customer_id, p, band), no reasons); its work_s excludes
#       interpreter start and imports, so the ratio against it is strict.
# Both models are fitted once, untimed, on the first 200,000 rows.
# Alternated A B A B ..., medians and the median ratio printed last.
#
#   bench/compare_score.sh [CSV] [PYTHON] [ROUNDS]
#
# For how the cost grows, run it on the 1M- and a 5M-row file
# (bench/gen_syn.py --rows 5000000) and compare the medians.
# Setup as for bench/compare_train.sh (see bench/README.md).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
csv=${1:-/tmp/syn1m.csv}
py=${2:-/tmp/bench-venv/bin/python}
rounds=${3:-5}
churn=${CARGO_TARGET_DIR:-$here/target}/release/churn
baseline=$here/bench/sklearn_baseline.py
[ -x "$churn" ] || { echo "build first: cargo build --release -p churn-cli" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
head -200001 "$csv" > "$work/fit.csv"
"$churn" train --quiet --data "$work/fit.csv" --id customer_id --label churned \
  --models "$work/models" > /dev/null
"$py" "$baseline" fit "$work/fit.csv" "$work/sk.pkl" > /dev/null
for r in $(seq "$rounds"); do
  s=$(date +%s.%N)
  /usr/bin/time -f '%M %P' -o "$work/rss" "$churn" score --quiet --data "$csv" \
    --models "$work/models" --out "$work/ours.csv"
  e=$(date +%s.%N)
  echo "A $(python3 -c "print(round($e - $s, 3))") $(cat "$work/rss")" | tee -a "$work/results"
  out=$("$py" "$baseline" score "$csv" "$work/sk.pkl" "$work/theirs.csv")
  b_work=$(python3 -c "import json,sys; print(round(json.loads(sys.argv[1])['work_s'], 3))" "$out")
  echo "B $b_work" | tee -a "$work/results"
done
rows=$(($(wc -l < "$work/ours.csv") - 1))
python3 - "$work/results" "$rows" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
a = [r for r in rows if r[0] == "A"]
b = [r for r in rows if r[0] == "B"]
med = lambda xs: statistics.median(float(x) for x in xs)
ratio = statistics.median(float(x[1]) / float(y[1]) for x, y in zip(a, b))
n = int(sys.argv[2])
print(f"churn score (whole process, {n} rows scored): median {med(r[1] for r in a):.3f} s "
      f"({n / med(r[1] for r in a) / 1e6:.2f} M rows/s), peak RSS {med(r[2] for r in a) / 1024:.0f} MiB, "
      f"CPU {a[-1][3]}")
print(f"pandas + scikit-learn work_s: median {med(r[1] for r in b):.3f} s")
print(f"median ratio churn / scikit-learn work_s: {ratio:.3f} (target <= 0.3)")
PY
