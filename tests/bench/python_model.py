#!/usr/bin/env python3
"""Uploads a pickled scikit-learn logistic regression (fitted on seeded
random engagement-like data) to S3 for the Python cold-start baseline.
Usage: python_model.py BUCKET KEY   (AWS_ENDPOINT_URL etc. in the environment)"""
import pickle
import sys

import boto3
import numpy as np
from sklearn.linear_model import LogisticRegression

COLUMNS = ["logins_30d", "active_days_30d", "sessions_30d", "tenure_months", "support_tickets_90d", "days_since_last_login"]
rng = np.random.default_rng(7)
x = rng.uniform(0, 30, size=(5000, len(COLUMNS)))
y = (rng.random(5000) < 1 / (1 + np.exp(x[:, 0] * 0.1 - 1))).astype(int)
clf = LogisticRegression(max_iter=1000).fit(x, y)
boto3.client("s3").put_object(Bucket=sys.argv[1], Key=sys.argv[2], Body=pickle.dumps({"columns": COLUMNS, "clf": clf}))
