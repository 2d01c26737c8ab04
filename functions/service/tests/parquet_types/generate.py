"""Writes one seeded churn table in every Parquet type a snapshot can carry,
with pyarrow (the standard writer), plus the same table as CSV.

Run by the Rust test `parquet_types` in the repo's `.venv` (scripts/dev-env.sh
installs pyarrow there); the files go to a temporary directory and are never
committed.

Usage: python generate.py OUT_DIR [ROWS]

Writes, in OUT_DIR:
- table.csv                      the reference, values as exact text
- integers_dictionary.parquet    decimals as INT32/INT64 where they fit
                                 (store_decimal_as_integer), dictionary pages
- fixed_plain.parquet            decimals as FIXED_LEN_BYTE_ARRAY (pyarrow's
                                 default), plain pages, no dictionary
Both Parquet files use small row groups and pages so every reader path
crosses row-group and page boundaries, and have nulls in every column but
the id and the label.
"""

import csv
import datetime as dt
import decimal
import random
import struct
import sys

import pyarrow as pa
import pyarrow.parquet as pq


def main() -> None:
    out = sys.argv[1]
    rows = int(sys.argv[2]) if len(sys.argv) > 2 else 4000
    rng = random.Random(20261130)
    # Exact decimal arithmetic up to DECIMAL(38, x): the default 28 digits
    # would round the widest values before they are written.
    decimal.getcontext().prec = 60

    def maybe(v, share=0.05):
        return None if rng.random() < share else v

    cols = {name: [] for name, _ in SCHEMA}
    for i in range(rows):
        logins = rng.randint(0, 60)
        mrr = decimal.Decimal(rng.randint(0, 2_000_000)) / 100  # 0.00 .. 20000.00
        risk = 1.5 - 0.06 * logins - float(mrr) / 20000 + rng.gauss(0, 1)
        cols["customer_id"].append(f"c{i:06d}")
        cols["churned"].append(1 if risk > 0.3 else 0)
        cols["plan"].append(maybe(rng.choice(["basic", "pro", "enterprise"])))
        cols["region"].append(maybe(rng.choice(["emea", "amer", "apac", "Zürich"])))
        cols["mrr"].append(maybe(mrr))
        cols["arr_small"].append(maybe(decimal.Decimal(rng.randint(-99_999, 9_999_999)) / 100))
        cols["credit"].append(
            maybe(decimal.Decimal(rng.randint(-10**19, 10**19)) / 10**4)
        )
        cols["ratio38"].append(
            maybe(decimal.Decimal(rng.randint(-10**37, 10**37)) / 10**12)
        )
        cols["logins_i8"].append(maybe(logins))
        cols["tickets_i16"].append(maybe(rng.randint(-300, 30_000)))
        cols["sessions_i32"].append(maybe(rng.randint(-(2**31), 2**31 - 1)))
        cols["events_i64"].append(maybe(rng.randint(-(2**62), 2**62)))
        cols["seats_u8"].append(maybe(rng.randint(0, 255)))
        cols["minutes_u16"].append(maybe(rng.randint(0, 65_535)))
        # Above i32::MAX: a reader that sign-extends would see negatives.
        cols["bytes_u32"].append(maybe(rng.randint(2**31, 2**32 - 1)))
        cols["counter_u64"].append(maybe(rng.randint(2**63, 2**64 - 1)))
        cols["autopay"].append(maybe(rng.random() < 0.6))
        # A float32 value (not a short decimal), as the f64 it widens to.
        cols["nps_f32"].append(maybe(struct.unpack("f", struct.pack("f", rng.uniform(0, 10)))[0]))
        cols["usage_f64"].append(maybe(rng.lognormvariate(3, 1.5)))
        cols["half_f16"].append(maybe(float(rng.randint(-2048, 2048)) / 16))
        cols["signup_date"].append(maybe(dt.date(2020, 1, 1) + dt.timedelta(days=rng.randint(0, 2000))))
        cols["last_seen"].append(
            maybe(dt.datetime(2026, 1, 1) + dt.timedelta(seconds=rng.randint(0, 30_000_000)))
        )
        cols["login_time"].append(maybe(dt.time(rng.randint(0, 23), rng.randint(0, 59))))

    arrays = []
    for name, typ in SCHEMA:
        arr = pa.array(cols[name], type=typ if typ != "dict" else pa.string())
        if typ == "dict":
            arr = arr.dictionary_encode()
        arrays.append(arr)
    table = pa.Table.from_arrays(arrays, names=[n for n, _ in SCHEMA])

    small = dict(row_group_size=1500, data_page_size=2048, write_batch_size=256)
    pq.write_table(
        table,
        f"{out}/integers_dictionary.parquet",
        use_dictionary=True,
        store_decimal_as_integer=True,
        **small,
    )
    pq.write_table(table, f"{out}/fixed_plain.parquet", use_dictionary=False, **small)

    with open(f"{out}/table.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow([n for n, _ in SCHEMA])
        for i in range(rows):
            w.writerow([text(cols[n][i]) for n, _ in SCHEMA])


def text(v) -> str:
    """A value as the CSV cell a careful exporter writes: exact decimals,
    shortest round-trip floats, booleans as 1/0, ISO dates."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, decimal.Decimal):
        return format(v, "f")
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, (dt.date, dt.datetime, dt.time)):
        return v.isoformat()
    return str(v)


SCHEMA = [
    ("customer_id", pa.string()),
    ("churned", pa.int8()),
    ("plan", "dict"),
    ("region", pa.large_string()),
    ("mrr", pa.decimal128(12, 2)),
    ("arr_small", pa.decimal128(9, 2)),
    ("credit", pa.decimal128(24, 4)),
    ("ratio38", pa.decimal128(38, 12)),
    ("logins_i8", pa.int8()),
    ("tickets_i16", pa.int16()),
    ("sessions_i32", pa.int32()),
    ("events_i64", pa.int64()),
    ("seats_u8", pa.uint8()),
    ("minutes_u16", pa.uint16()),
    ("bytes_u32", pa.uint32()),
    ("counter_u64", pa.uint64()),
    ("autopay", pa.bool_()),
    ("nps_f32", pa.float32()),
    ("usage_f64", pa.float64()),
    ("half_f16", pa.float16()),
    ("signup_date", pa.date32()),
    ("last_seen", pa.timestamp("us")),
    ("login_time", pa.time64("us")),
]

if __name__ == "__main__":
    main()
