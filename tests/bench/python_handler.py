#!/usr/bin/env python3
"""Python baseline of the cold-start benchmark (tests/examples/cold_start.rs).

A Lambda-style handler as a Python team would write it: imports boto3,
pandas and scikit-learn, fetches a pickled scikit-learn model from S3 on the
first invocation, and serves Runtime API invocations (the same emulator and
Function URL event the Rust `churn-score` binary gets).
Environment: AWS_LAMBDA_RUNTIME_API, MODEL_BUCKET, MODEL_KEY, AWS_* for the S3 endpoint.
"""
import json
import os
import pickle
import urllib.request

import boto3
import pandas as pd
from sklearn.linear_model import LogisticRegression  # noqa: F401  (unpickling needs it)

BASE = f"http://{os.environ['AWS_LAMBDA_RUNTIME_API']}/2018-06-01/runtime/invocation"
S3 = boto3.client("s3")
MODEL = None


def handler(event):
    global MODEL
    if MODEL is None:
        obj = S3.get_object(Bucket=os.environ["MODEL_BUCKET"], Key=os.environ["MODEL_KEY"])
        MODEL = pickle.loads(obj["Body"].read())
    body = json.loads(event["body"])
    frame = pd.DataFrame([c["features"] for c in body["customers"]])
    x = frame.reindex(columns=MODEL["columns"]).astype(float).fillna(0.0)
    p = MODEL["clf"].predict_proba(x.to_numpy())[:, 1]
    scores = [{"customer_id": c["customer_id"], "churn_probability": float(q)} for c, q in zip(body["customers"], p)]
    return {"statusCode": 200, "body": json.dumps({"scores": scores})}


def main():
    while True:
        with urllib.request.urlopen(BASE + "/next") as r:
            request_id = r.headers["Lambda-Runtime-Aws-Request-Id"]
            event = json.loads(r.read())
        out = json.dumps(handler(event)).encode()
        req = urllib.request.Request(f"{BASE}/{request_id}/response", data=out, method="POST")
        urllib.request.urlopen(req).read()


if __name__ == "__main__":
    main()
