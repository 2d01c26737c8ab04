#!/usr/bin/env bash
# What a notification destination costs a rescore, one build, one run,
# alternated A B A B ...: A rescores with no destination, B with a signed
# webhook (bench/receiver.py on a loopback port, verifying every signature)
# that receives every event of the run before the process ends. Whole
# process timed, with its peak RSS.
#
# Two cases on an N-row seeded snapshot:
# - nightly: the flag store holds yesterday's run; today's snapshot is
#   yesterday's with every 50th customer's engagement collapsed (logins,
#   active days and sessions to 0), so a few percent of customers change band;
# - first run: an empty flag store, so every at-risk customer is a
#   `became_at_risk` event (the largest delivery a run can have).
#
#   cargo build --release -p churn-cli
#   bench/notify_rescore.sh target/release/churn 1000000 3
set -euo pipefail
bin=${1:?usage: notify_rescore.sh CHURN [ROWS] [ROUNDS]}
rows=${2:-1000000}
rounds=${3:-3}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'kill "${receiver:-}" 2>/dev/null || true; rm -rf "$work"' EXIT

"$bin" generate --quiet --customers "$rows" --seed 11 --out "$work/day1.csv"
"$bin" generate --quiet --customers 200000 --seed 12 --out "$work/train.csv"
"$bin" train --quiet --data "$work/train.csv" --models "$work/models" --json > /dev/null
python3 - "$work/day1.csv" "$work/day2.csv" <<'PY'
import csv, sys
with open(sys.argv[1], newline="") as src, open(sys.argv[2], "w", newline="") as dst:
    r, w = csv.reader(src), csv.writer(dst)
    header = next(r)
    w.writerow(header)
    cols = [header.index(c) for c in ("logins_30d", "active_days_30d", "sessions_30d")]
    for i, row in enumerate(r):
        if i % 50 == 0:
            for c in cols:
                row[c] = "0"
        w.writerow(row)
PY
"$bin" rescore --quiet --no-notify --data "$work/day1.csv" --models "$work/models" \
  --flags "sqlite://$work/yesterday.db" --json > /dev/null

python3 "$here/receiver.py" bench-secret "$work/port" "$work/count" &
receiver=$!
for _ in $(seq 50); do [ -s "$work/port" ] && break; sleep 0.1; done
url="http://127.0.0.1:$(cat "$work/port")/crm"

run() { # case arm snapshot
  local case=$1 arm=$2 data=$3
  rm -f "$work/flags.db"*
  if [ "$case" = nightly ]; then cp "$work/yesterday.db" "$work/flags.db"; fi
  local dest=()
  if [ "$arm" = b ]; then
    dest=(--webhook-url "$url" --webhook-secret bench-secret --notify-deadline 600)
  fi
  local s e
  s=$(date +%s.%N)
  env -u CHURN_NOTIFY_SLACK_URL -u CHURN_NOTIFY_EVENT_BUS -u CHURN_NOTIFY_WEBHOOK_URL \
    /usr/bin/time -f '%M' -o "$work/rss" "$bin" rescore --quiet --data "$data" \
    --models "$work/models" --flags "sqlite://$work/flags.db" --json "${dest[@]}" > "$work/out.json"
  e=$(date +%s.%N)
  python3 - "$work/out.json" "$case" "$arm" "$s" "$e" "$(cat "$work/rss")" >> "$work/results" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
ev = s["events"]
events = ev["became_at_risk"] + ev["escalated"] + ev["recovered"]
n = s.get("notify") or {"destinations": []}
delivered = sum(d["delivered"] for d in n["destinations"])
pending = sum(d["pending"] for d in n["destinations"])
print(sys.argv[2], sys.argv[3], round(float(sys.argv[5]) - float(sys.argv[4]), 3), sys.argv[6], events, delivered, pending)
PY
  tail -1 "$work/results"
}

for r in $(seq "$rounds"); do
  for arm in a b; do run nightly "$arm" "$work/day2.csv"; done
done
for r in $(seq "$rounds"); do
  for arm in a b; do run first "$arm" "$work/day1.csv"; done
done
echo "receiver: requests events bad-signatures = $(cat "$work/count")"

python3 - "$work/results" "$rows" <<'PY'
import statistics, sys
rows = int(sys.argv[2])
data = {}
for line in open(sys.argv[1]):
    case, arm, secs, kb, events, delivered, pending = line.split()
    d = data.setdefault(case, {}).setdefault(arm, {"t": [], "rss": [], "events": 0, "delivered": 0, "pending": 0})
    d["t"].append(float(secs)); d["rss"].append(int(kb) / 1024)
    d["events"], d["delivered"], d["pending"] = int(events), int(delivered), int(pending)
for case, arms in data.items():
    a, b = arms["a"], arms["b"]
    ma, mb = statistics.median(a["t"]), statistics.median(b["t"])
    ratios = [y / x for x, y in zip(a["t"], b["t"])]
    print(f"{case}: {b['events']:,} events per run; B delivered {b['delivered']:,}, left pending {b['pending']:,}")
    print(f"  A (no destination) median {ma:.3f} s ({rows / ma:,.0f} rows/s), peak RSS {max(a['rss']):.1f} MiB")
    print(f"  B (webhook)        median {mb:.3f} s ({rows / mb:,.0f} rows/s), peak RSS {max(b['rss']):.1f} MiB")
    print(f"  B/A: ratio of medians {mb / ma:.3f}, median of paired ratios {statistics.median(ratios):.3f}")
PY
