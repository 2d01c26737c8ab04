"""Expands infra/template.yaml with the AWS SAM translator, as `sam deploy`
would, so that checkov and the tests also see the generated resources
(AWS::Lambda::Function, AWS::Lambda::Url, EventInvokeConfig, ...).

`sam package` replaces each local CodeUri with the S3 location of the built
zip; a placeholder location stands in for it here.

Usage: python infra/tests/sam_translate.py [template.yaml] > translated.json
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from cfnlint.decode import decode

TEMPLATE = Path(__file__).resolve().parents[1] / "template.yaml"


class _NoManagedPolicies:
    """The template attaches no AWS managed policies by name."""

    def load(self) -> dict:
        return {}


def translate(path: Path = TEMPLATE) -> dict:
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    from samtranslator.translator.transform import transform

    tpl, matches = decode(str(path))
    if matches:
        raise SystemExit(f"{path}: {matches}")
    tpl = json.loads(json.dumps(tpl))
    tpl.setdefault("Globals", {}).setdefault("Function", {})["CodeUri"] = "s3://placeholder-bucket/bootstrap.zip"
    for res in tpl["Resources"].values():
        if res.get("Type") == "AWS::Serverless::Function" and "CodeUri" in res.get("Properties", {}):
            res["Properties"]["CodeUri"] = "s3://placeholder-bucket/bootstrap.zip"
    return transform(tpl, {}, _NoManagedPolicies())


if __name__ == "__main__":
    json.dump(translate(Path(sys.argv[1]) if len(sys.argv) > 1 else TEMPLATE), sys.stdout, indent=1)
    print()
