#!/usr/bin/env bash
# Weight and speed of the web pages `churn serve` serves, from a SQLite flag
# store holding ROWS flags (default 1,000,000): the risk list with 100 rows
# (the page a CS manager opens every morning) against its budget of 300 KB
# and 50 ms, plus the other views and pages for reference. Each page is
# fetched ROUNDS times over one keep-alive-free loopback connection per
# request (curl); time is curl's total (connect to last byte), medians and
# 95th percentiles printed, and the ratio to the budget.
#
#   bench/web_page.sh CHURN [ROWS] [ROUNDS]
#
#   cargo build --release -p churn-cli
#   bench/web_page.sh target/release/churn 1000000 50
set -euo pipefail
churn=${1:?usage: web_page.sh CHURN [ROWS] [ROUNDS]}
rows=${2:-1000000}
rounds=${3:-50}
work=$(mktemp -d)
server=""
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

echo "setting up: $rows customers scored into SQLite (a few minutes at 1M)" >&2
"$churn" generate --quiet --customers "$rows" --seed 11 --out "$work/snapshot.csv"
"$churn" generate --quiet --customers 200000 --seed 12 --out "$work/train.csv"
"$churn" train --quiet --data "$work/train.csv" --models "$work/models" --json > /dev/null
"$churn" rescore --quiet --no-notify --data "$work/snapshot.csv" --models "$work/models" \
  --flags "sqlite://$work/flags.db" --json > /dev/null
rm -f "$work/snapshot.csv" "$work/train.csv"

"$churn" serve --quiet --addr 127.0.0.1:0 --models "$work/models" --flags "sqlite://$work/flags.db" \
  > "$work/serve.out" 2> "$work/serve.err" &
server=$!
for _ in $(seq 100); do
  grep -q "listening on" "$work/serve.out" 2>/dev/null && break
  sleep 0.1
done
base=$(sed -n 's/^listening on //p' "$work/serve.out" | head -1)
[ -n "$base" ] || { cat "$work/serve.err" >&2; exit 1; }

# The first view waits for the header's totals unless the start-up refresh
# already has them: timed once, apart.
first=$(curl -s -o /dev/null -w '%{time_total}' "$base/")
top=$(curl -s "$base/v1/risk-list?band=high&limit=1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["flags"][0]["customer_id"])')
owner=$(curl -s "$base/v1/risk-list?band=high&limit=1" | python3 -c 'import json,sys,urllib.parse; print(urllib.parse.quote(json.load(sys.stdin)["flags"][0]["attributes"]["owner"] or ""))')

pages=(
  "/"
  "/?band=at-risk&sort=value"
  "/?band=at-risk&owner=$owner&sort=rising"
  "/customers/$top"
  "/model"
  "/v1/risk-list?band=high&limit=100"
)
: > "$work/results"
for _ in $(seq "$rounds"); do
  for p in "${pages[@]}"; do
    curl -s -o /dev/null -w "$p %{http_code} %{size_download} %{time_total}\n" "$base$p" >> "$work/results"
  done
done

python3 - "$work/results" "$first" "$rows" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    path, code, size, secs = line.rsplit(" ", 3)
    if code != "200":
        sys.exit(f"{path} answered {code}")
    rows.setdefault(path, []).append((int(size), float(secs) * 1000))
print(f"{int(sys.argv[3]):,} flags in SQLite; first view of / (may wait for the totals): {float(sys.argv[2]) * 1000:.1f} ms")
print(f"{'page':<48} {'bytes':>9} {'median ms':>10} {'p95 ms':>8}")
for path, samples in rows.items():
    sizes = [s for s, _ in samples]
    ms = sorted(t for _, t in samples)
    p95 = ms[min(len(ms) - 1, int(round(0.95 * (len(ms) - 1))))]
    print(f"{path[:48]:<48} {max(sizes):>9,} {statistics.median(ms):>10.2f} {p95:>8.2f}")
size, ms = max(s for s, _ in rows["/"]), statistics.median(t for _, t in rows["/"])
print(f"risk list (100 rows): {size / 1024:.1f} KB = {size / (300 * 1024):.3f} of the 300 KB budget; "
      f"{ms:.2f} ms median = {ms / 50:.3f} of the 50 ms budget")
PY
