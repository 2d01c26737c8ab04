"""infra/template.yaml checked against the Rust code it deploys.

- Every environment variable the functions' production code reads is set on
  the functions in the template (or is provided by the Lambda runtime, or is
  deliberately left unset with a reason below), and every CHURN_ variable the
  template sets is read by the code.
- Every IAM action granted to a function role is needed by an AWS SDK call in
  the production code (mapped to IAM actions; S3, DynamoDB, EventBridge and
  Secrets Manager clients), or by the Lambda service acting
  for that function because of a template setting of that very function
  (log group, dead-letter queue, environment encryption), or is implied by
  another granted action (KMS for objects in the SSE-KMS bucket), or by X-Ray
  active tracing of that function (the trace upload actions). Every SDK
  call in production code is granted to some function role, except the
  local-only table creation, whose only callers are checked.
- Every action of the state machine and scheduler roles is needed by the
  state machine definition or schedule in the template.
- The rest of what the deployment requires of the template and that a reader could
  break without noticing: build metadata vs the Cargo binaries, runtime and
  architecture, JSON logging with retention, X-Ray active tracing on every
  function, IAM-authenticated Function URL
  without CORS, the DynamoDB key schema vs the code, checkov skips justified.
- Risk-change events: the outbox indexes and TTL of the flag table, the
  event bus and its example rule, the notify step of the state machine, the
  grants of recording (every UpdateItem call of the DynamoDB adapter against
  the conditions of the roles' UpdateItem statements) and of delivery
  (EventBridge, the notification secret) and its alarm.

The template is parsed with cfn-lint's decoder (intrinsic tags as
`{"Ref": ...}`, `{"Fn::GetAtt": ...}`, `{"Fn::Sub": ...}`).
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest
from cfnlint.decode import decode

import rust_scan
import sam_translate
from rust_scan import REPO, FUNCTIONS

TEMPLATE = REPO / "infra" / "template.yaml"

# Variables the Lambda runtime sets in every execution environment.
LAMBDA_RUNTIME_VARS = {
    "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION", "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_LAMBDA_LOG_FORMAT", "AWS_LAMBDA_LOG_LEVEL", "AWS_LAMBDA_RUNTIME_API",
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
    "AWS_XRAY_CONTEXT_MISSING", "AWS_XRAY_DAEMON_ADDRESS",
}
# Variables the code reads that must stay unset in the deployed functions.
DELIBERATELY_UNSET = {
    "AWS_ENDPOINT_URL": "points the SDK at a local S3/DynamoDB server in tests; "
                        "unset in Lambda means the real regional endpoints",
    "CHURN_THREADS": "the thread pool defaults to the vCPUs Lambda gives the memory size; "
                     "a fixed count would be wrong after a memory change",
    "CHURN_SERVE_TOKEN": "the access token of `churn serve`'s web pages (docs/WEB.md); no deployed "
                         "function serves pages: the score function's Function URL is IAM-authenticated "
                         "and stays JSON-only",
    **{
        name: "the snapshot check's documented defaults apply; a team that tunes a "
              "limit sets it on the rescore function's environment"
        for name in [
            "CHURN_CHECK_PSI_WARN", "CHURN_CHECK_PSI_ALERT", "CHURN_CHECK_PSI_REFUSE",
            "CHURN_CHECK_MAX_MISSING_RISE", "CHURN_CHECK_MAX_OUT_OF_RANGE",
            "CHURN_CHECK_MAX_INVALID_SHARE", "CHURN_CHECK_MIN_ROWS",
        ]
    },
    **{
        name: "a credential: the deployed functions read the Slack / webhook settings from "
              "the Secrets Manager secret of CHURN_NOTIFY_SECRET_ARN, never from a plain "
              "environment value (visible to anyone who may read the function's configuration)"
        for name in ["CHURN_NOTIFY_SLACK_URL", "CHURN_NOTIFY_WEBHOOK_URL", "CHURN_NOTIFY_WEBHOOK_SECRET"]
    },
}
# Variables of the shared code that some functions leave unset:
# name -> (binaries that do not get it, why).
UNSET_ON = {
    name: ({"churn-train"}, "train writes no flags, so it records and delivers no risk-change "
                            "events; its role may not read the notification secret")
    for name in ["CHURN_NOTIFY_EVENT_BUS", "CHURN_NOTIFY_DEADLINE_SECS", "CHURN_NOTIFY_SECRET_ARN",
                 "CHURN_PUBLIC_URL"]
}
# `env::var("X")` reads outside the CHURN_/AWS_ namespaces that are fine
# unset in Lambda (name -> reason).
OTHER_ENV_READS: dict[str, str] = {}

# SDK operations the production code may call that no deployed function
# needs, with the one function allowed to call them (checked below).
LOCAL_ONLY_OPERATIONS = {
    ("dynamodb", "describe_table"): "create_table_if_missing",
    ("dynamodb", "create_table"): "create_table_if_missing",
}
# Where that function may be called from: its own definitions and the local
# SQLite adapter. A Lambda handler calling it would need dynamodb:DescribeTable
# and dynamodb:CreateTable, which the deployed roles deliberately lack.
LOCAL_ONLY_CALLERS = {"flag_store/sqlite.rs"}

# SDK operations present in an adapter but reachable only when production
# code outside that adapter selects them. Not granted while nothing selects
# them; the test below fails (asking for the grant) as soon as something does.
#   (service, operation) -> (selector regex, the adapter module, why); the
#   module is `<name>.rs` and everything under `<name>/`.
GATED_OPERATIONS: dict[tuple[str, str], tuple[str, str, str]] = {}

FUNCTION_CRATES = {"train", "score", "rescore"}

# What Lambda needs in the function's role to upload the traces of a function
# with `Tracing: Active`. X-Ray has no resource-level permissions for them:
# the one place a function role may grant on Resource "*".
XRAY_TRACING_ACTIONS = ("xray:PutTraceSegments", "xray:PutTelemetryRecords")


# --------------------------------------------------------------------------
# Fixtures and template helpers.
# --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def template() -> dict:
    tpl, matches = decode(str(TEMPLATE))
    assert not matches, f"template does not parse: {matches}"
    return tpl


@pytest.fixture(scope="session")
def source_files():
    files = rust_scan.production_files()
    assert any(f.crate == "service" for f in files), "no production sources found under functions/service"
    return files


@pytest.fixture(scope="session")
def sdk_ops():
    return rust_scan.sdk_operations()


@pytest.fixture(scope="session")
def sdk_calls(source_files, sdk_ops):
    return rust_scan.sdk_calls(source_files, sdk_ops)


def resources(tpl, rtype):
    return {k: v for k, v in tpl["Resources"].items() if v.get("Type") == rtype}


def functions(tpl):
    return resources(tpl, "AWS::Serverless::Function")


def fn_prop(tpl, logical_id, name):
    """A function property with SAM Globals applied (function value wins)."""
    props = tpl["Resources"][logical_id].get("Properties", {})
    if name in props:
        return props[name]
    return tpl.get("Globals", {}).get("Function", {}).get(name)


def fn_env(tpl, logical_id) -> dict:
    env = dict((tpl.get("Globals", {}).get("Function", {}).get("Environment") or {}).get("Variables") or {})
    env.update(((tpl["Resources"][logical_id].get("Properties", {}).get("Environment") or {}).get("Variables")) or {})
    return env


def ref_target(value):
    """Logical id a Ref / GetAtt / `${X}`/`${X.Arn}` Sub points at, else None."""
    if isinstance(value, dict):
        if "Ref" in value:
            return value["Ref"]
        if "Fn::GetAtt" in value:
            ga = value["Fn::GetAtt"]
            return ga[0] if isinstance(ga, list) else ga.split(".")[0]
        if "Fn::Sub" in value and isinstance(value["Fn::Sub"], str):
            m = re.fullmatch(r"\$\{([A-Za-z0-9]+)(?:\.[A-Za-z]+)?\}", value["Fn::Sub"])
            return m.group(1) if m else None
    return None


def as_list(x):
    return x if isinstance(x, list) else [x]


def role_statements(role) -> list[dict]:
    """Every statement a role may have: both branches of a conditional
    statement (`Fn::If`) count, since either may be deployed."""
    out = []
    for pol in role["Properties"].get("Policies", []):
        for st in as_list(pol["PolicyDocument"]["Statement"]):
            if isinstance(st, dict) and "Fn::If" in st:
                _cond, yes, no = st["Fn::If"]
                out.extend(b for b in (yes, no) if not is_no_value(b))
            else:
                out.append(st)
    return out


def allowed_actions(role) -> dict[str, list[dict]]:
    """action -> statements granting it."""
    acts: dict[str, list[dict]] = {}
    for st in role_statements(role):
        assert st.get("Effect") == "Allow", f"unexpected statement {st}"
        assert "NotAction" not in st and "NotResource" not in st, f"NotAction/NotResource in {st}"
        for a in as_list(st["Action"]):
            assert "*" not in a, f"wildcard action {a!r} in {st.get('Sid')}"
            acts.setdefault(a, []).append(st)
    return acts


def function_roles(tpl) -> dict[str, str]:
    """function logical id -> role logical id."""
    out = {}
    for fid in functions(tpl):
        role = fn_prop(tpl, fid, "Role")
        target = ref_target(role)
        assert target in tpl["Resources"], f"{fid}: Role must be a role of this template"
        out[fid] = target
    return out


def bucket_kms_key(tpl, bucket_id):
    enc = tpl["Resources"][bucket_id]["Properties"].get("BucketEncryption")
    if not enc:
        return None
    for rule in enc["ServerSideEncryptionConfiguration"]:
        d = rule.get("ServerSideEncryptionByDefault", {})
        if d.get("SSEAlgorithm") in ("aws:kms", "aws:kms:dsse"):
            return ref_target(d.get("KMSMasterKeyID"))
    return None


def table_kms_key(tpl, table_id):
    sse = tpl["Resources"][table_id]["Properties"].get("SSESpecification") or {}
    return ref_target(sse.get("KMSMasterKeyId")) if sse.get("SSEEnabled") else None


def statement_targets(st) -> set[str]:
    """Logical ids the statement's resources point at (`${Bucket.Arn}/x/*` -> Bucket)."""
    out = set()
    for r in as_list(st["Resource"]):
        t = ref_target(r)
        if t is None and isinstance(r, dict) and "Fn::Sub" in r and isinstance(r["Fn::Sub"], str):
            m = re.match(r"\$\{([A-Za-z0-9]+)(?:\.[A-Za-z]+)?\}", r["Fn::Sub"])
            t = m.group(1) if m else None
        if t:
            out.add(t)
    return out


# --------------------------------------------------------------------------
# Environment variables.
# --------------------------------------------------------------------------


def test_every_env_var_the_code_reads_is_set_in_the_template(template, source_files):
    read = rust_scan.env_vars_read(source_files)
    assert "CHURN_MODELS" in read, "scanner found no CHURN_MODELS read: is config.rs still under functions/?"
    problems = []
    for fid in functions(template):
        env = fn_env(template, fid)
        binary = template["Resources"][fid]["Metadata"]["BuildProperties"]["Binary"]
        crate = binary.removeprefix("churn-")
        for name, crates in sorted(read.items()):
            # shared library code runs in every function; a binary's own code in its function
            if not ({"service", crate} & crates):
                continue
            if name in env or name in LAMBDA_RUNTIME_VARS or name in DELIBERATELY_UNSET:
                continue
            if binary in UNSET_ON.get(name, ((), ""))[0]:
                continue
            if not name.startswith(("CHURN_", "AWS_")) and name in OTHER_ENV_READS:
                continue
            problems.append(f"{fid} ({binary}) reads {name} (in {sorted(crates)}) but the template does not set it")
    assert not problems, "\n".join(problems)


def test_batch_flag_writes_are_granted_only_when_chosen(template):
    """`CHURN_FLAG_WRITES=batch` needs dynamodb:BatchWriteItem; the default
    conditional writes do not, so the grant exists only under the condition
    the FlagWrites parameter sets."""
    assert template["Conditions"]["BatchFlagWrites"] == {"Fn::Equals": [{"Ref": "FlagWrites"}, "batch"]}
    for rid in ("ScoreRole", "RescoreRole"):
        conditional = [
            st["Fn::If"] for pol in template["Resources"][rid]["Properties"]["Policies"]
            for st in as_list(pol["PolicyDocument"]["Statement"])
            if isinstance(st, dict) and "Fn::If" in st
        ]
        batch = [c for c in conditional if c[0] == "BatchFlagWrites"]
        assert len(batch) == 1, f"{rid}: one BatchFlagWrites statement"
        _, yes, no = batch[0]
        assert as_list(yes["Action"]) == ["dynamodb:BatchWriteItem"] and is_no_value(no)
        unconditional = [
            a for st in as_list(template["Resources"][rid]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"])
            if "Action" in st for a in as_list(st["Action"])
        ]
        assert "dynamodb:BatchWriteItem" not in unconditional, rid


def test_every_churn_var_in_the_template_is_read_by_the_code(template, source_files):
    read = rust_scan.env_vars_read(source_files)
    unused = []
    for fid in functions(template):
        for name in fn_env(template, fid):
            if name not in read:
                unused.append(f"{fid} sets {name}, which no production code under functions/ reads")
    assert not unused, "\n".join(unused)


def conditional_env(value):
    """`(condition, value if true, value if false)` for an `Fn::If` env value, else None."""
    if isinstance(value, dict) and "Fn::If" in value:
        condition, if_true, if_false = value["Fn::If"]
        return condition, if_true, if_false
    return None


def is_no_value(value) -> bool:
    return isinstance(value, dict) and value.get("Ref") == "AWS::NoValue"


def test_conditional_env_vars_are_set_in_one_branch_from_a_parameter(template):
    """An `Fn::If` variable counts as set for the tests above only if one branch
    sets it (from a parameter) and the condition exists."""
    for fid in functions(template):
        for name, value in fn_env(template, fid).items():
            cond = conditional_env(value)
            if cond is None:
                continue
            condition, if_true, if_false = cond
            assert condition in template.get("Conditions", {}), f"{name}: unknown condition {condition}"
            branches = [b for b in (if_true, if_false) if not is_no_value(b)]
            assert len(branches) == 1, f"{name}: expected one AWS::NoValue branch, got {value}"
            assert ref_target(branches[0]) in template["Parameters"], f"{name}: {branches[0]} is not a parameter"


def test_band_shares_and_cutoffs_are_exclusive_and_shares_are_the_default(template):
    """The code refuses shares and cutoffs together: the template sets the
    cutoffs exactly when it leaves the shares out, and with the parameter
    defaults (no cutoff) the shares are set."""
    shares = ("CHURN_BAND_HIGH_SHARE", "CHURN_BAND_MEDIUM_SHARE")
    cutoffs = ("CHURN_BAND_HIGH_CUTOFF", "CHURN_BAND_MEDIUM_CUTOFF")
    params = template["Parameters"]
    for fid in functions(template):
        env = fn_env(template, fid)
        conds = {name: conditional_env(env[name]) for name in shares + cutoffs}
        assert all(conds.values()), f"{fid}: band variables must be conditional: {conds}"
        assert len({c[0] for c in conds.values()}) == 1, f"{fid}: band variables use different conditions"
        for name in shares:
            assert is_no_value(conds[name][1]) and not is_no_value(conds[name][2]), name
        for name in cutoffs:
            assert not is_no_value(conds[name][1]) and is_no_value(conds[name][2]), name
            # The condition must be true whenever this cutoff's parameter is non-empty.
            param = ref_target(conds[name][1])
            assert params[param].get("Default") == "", f"{param} must default to empty (shares by default)"
        condition = template["Conditions"][conds[cutoffs[0]][0]]
        text = json.dumps(condition)
        for name in cutoffs:
            assert f'{{"Ref": "{ref_target(conds[name][1])}"}}' in text, (
                f"condition {conds[name][0]} does not look at {name}'s parameter"
            )
    assert params["BandHighShare"]["Default"] == "0.10"
    assert params["BandMediumShare"]["Default"] == "0.20"


def test_env_values_point_at_this_stacks_bucket_and_table(template):
    for fid in functions(template):
        env = fn_env(template, fid)
        models = env["CHURN_MODELS"]["Fn::Sub"]
        flags = env["CHURN_FLAGS"]["Fn::Sub"]
        snapshot = env["CHURN_SNAPSHOT"]["Fn::Sub"]
        assert re.fullmatch(r"s3://\$\{DataBucket\}/models", models), models
        assert re.fullmatch(r"dynamodb://\$\{FlagTable\}", flags), flags
        assert re.fullmatch(r"s3://\$\{DataBucket\}/\$\{SnapshotPrefix\}", snapshot), snapshot
    assert template["Resources"]["FlagTable"]["Type"] == "AWS::DynamoDB::Table"
    assert template["Resources"]["DataBucket"]["Type"] == "AWS::S3::Bucket"
    default_prefix = template["Parameters"]["SnapshotPrefix"]["Default"]
    assert default_prefix.startswith("snapshots/") and default_prefix.endswith("/")


# --------------------------------------------------------------------------
# IAM: function roles against the code.
# --------------------------------------------------------------------------


def in_adapter(path: Path, adapter: str) -> bool:
    """Whether `path` is part of the adapter module `adapter` (its `.rs`
    file or a file of its directory)."""
    root = FUNCTIONS / "service" / "src" / adapter
    return path == root.with_suffix(".rs") or root in path.parents


def selected_gated_operations(source_files) -> set[tuple[str, str]]:
    """Gated operations some production code outside their adapter selects."""
    out = set()
    for key, (selector, adapter, _why) in GATED_OPERATIONS.items():
        for f in source_files:
            if in_adapter(f.path, adapter):
                continue
            if re.search(selector, f.code):
                out.add(key)
    return out


def code_actions(sdk_calls, source_files=()) -> tuple[set[str], list[tuple[rust_scan.SdkCall, list[set[str]]]]]:
    """All IAM actions some reachable production SDK call may need, and per
    call its alternatives (local-only and unselected gated operations left out)."""
    selected = selected_gated_operations(source_files)
    # TransactWriteItems: the actions of the item kinds the code builds
    kinds = rust_scan.transact_write_kinds(list(source_files))
    per_call = []
    actions: set[str] = set()
    for call in sdk_calls:
        key = (call.service, call.operation)
        if key in LOCAL_ONLY_OPERATIONS:
            continue
        if key in GATED_OPERATIONS and key not in selected:
            continue
        alts = rust_scan.iam_alternatives(call.service, call.operation, kinds)
        per_call.append((call, alts))
        for alt in alts:
            actions |= alt
    return actions, per_call


def code_maps_missing_objects_to_none(files) -> bool:
    """The S3 adapters treat NoSuchKey as "absent" (no model promoted yet)."""
    return any("aws_sdk_s3" in f.code and '"NoSuchKey"' in f.code for f in files)


def implied_actions(tpl, fid, role_id, granted: dict[str, list[dict]], files=()) -> dict[str, str]:
    """Actions the Lambda service or S3/DynamoDB need on this function's
    behalf, given its template settings and its other grants -> reason."""
    out: dict[str, str] = {}
    props = tpl["Resources"][fid]["Properties"]
    log_group = ref_target((fn_prop(tpl, fid, "LoggingConfig") or {}).get("LogGroup"))
    if log_group:
        for a in ("logs:CreateLogStream", "logs:PutLogEvents"):
            out[a] = f"Lambda writes the function's logs to {log_group}"
    dlq = props.get("DeadLetterQueue")
    if dlq:
        out["sqs:SendMessage"] = f"Lambda sends failed async invocations to {ref_target(dlq['TargetArn'])}"
    if fn_prop(tpl, fid, "Tracing") == "Active":
        for a in XRAY_TRACING_ACTIONS:
            out[a] = f"Tracing: Active: Lambda uploads {fid}'s trace segments to X-Ray"
    if ref_target(fn_prop(tpl, fid, "KmsKeyArn")):
        out["kms:Decrypt"] = "environment variables encrypted with the stack key"
    for action, sts in granted.items():
        for st in sts:
            for target in statement_targets(st):
                res = tpl["Resources"].get(target, {})
                if res.get("Type") == "AWS::S3::Bucket" and bucket_kms_key(tpl, target):
                    if action == "s3:GetObject":
                        out["kms:Decrypt"] = f"objects in {target} are SSE-KMS"
                    if action == "s3:PutObject":
                        out["kms:GenerateDataKey"] = f"objects written to {target} are SSE-KMS"
                if res.get("Type") == "AWS::S3::Bucket" and action == "s3:GetObject" \
                        and code_maps_missing_objects_to_none(files):
                    # without it S3 answers a missing key with 403, not NoSuchKey
                    out["s3:ListBucket"] = f"GetObject on {target} must see 404 NoSuchKey for missing keys"
                if res.get("Type") == "AWS::DynamoDB::Table" and table_kms_key(tpl, target):
                    out.setdefault("kms:Decrypt", f"{target} is encrypted with a customer managed key")
    return out


def test_one_role_per_function(template):
    roles = function_roles(template)
    assert len(set(roles.values())) == len(roles), f"functions share roles: {roles}"
    for fid, rid in roles.items():
        assert template["Resources"][rid]["Type"] == "AWS::IAM::Role"
        assert not template["Resources"][rid]["Properties"].get("ManagedPolicyArns"), \
            f"{rid}: managed policies are not least privilege"
        trust = as_list(template["Resources"][rid]["Properties"]["AssumeRolePolicyDocument"]["Statement"])
        assert [s["Principal"] for s in trust] == [{"Service": "lambda.amazonaws.com"}], rid


def test_every_function_role_action_is_used(template, sdk_calls, source_files):
    used_by_code, _ = code_actions(sdk_calls, source_files)
    problems = []
    for fid, rid in function_roles(template).items():
        granted = allowed_actions(template["Resources"][rid])
        implied = implied_actions(template, fid, rid, granted, source_files)
        for action, sts in sorted(granted.items()):
            sids = [s.get("Sid") for s in sts]
            if action in used_by_code:
                continue
            if action in implied:
                # platform actions must be scoped to the resource that needs them
                if action.startswith(("logs:", "sqs:")):
                    want = ref_target((fn_prop(template, fid, "LoggingConfig") or {}).get("LogGroup")) \
                        if action.startswith("logs:") else ref_target(fn_prop(template, fid, "DeadLetterQueue")["TargetArn"])
                    for st in sts:
                        if statement_targets(st) != {want}:
                            problems.append(f"{rid} {st.get('Sid')}: {action} must be scoped to {want}")
                continue
            problems.append(
                f"{rid} grants {action} (statements {sids}) but no SDK call in functions/ needs it "
                f"and no setting of {fid} implies it"
            )
    assert not problems, "\n".join(problems)


def test_every_sdk_call_is_granted_to_some_function(template, sdk_calls, source_files):
    _, per_call = code_actions(sdk_calls, source_files)
    assert per_call, "scanner found no AWS SDK call in functions/: the adapters moved?"
    granted_anywhere: set[str] = set()
    for rid in function_roles(template).values():
        granted_anywhere |= set(allowed_actions(template["Resources"][rid]))
    missing = []
    for call, alts in per_call:
        if not any(alt <= granted_anywhere for alt in alts):
            rel = call.path.relative_to(REPO)
            missing.append(f"{rel}: .{call.operation}() needs one of {[sorted(a) for a in alts]}, granted to no function role")
    assert not missing, "\n".join(sorted(set(missing)))


def test_local_only_operations_stay_out_of_the_lambda_paths(source_files, sdk_calls):
    problems = []
    for call in sdk_calls:
        key = (call.service, call.operation)
        if key not in LOCAL_ONLY_OPERATIONS:
            continue
        code = next(f.code for f in source_files if f.path == call.path)
        fn = rust_scan.enclosing_fn(code, call.offset)
        if fn != LOCAL_ONLY_OPERATIONS[key]:
            problems.append(f"{call.path.relative_to(REPO)}: .{call.operation}() in fn {fn}, "
                            f"only allowed inside {LOCAL_ONLY_OPERATIONS[key]}")
    callers = {name for name in LOCAL_ONLY_OPERATIONS.values()}
    for f in source_files:
        rel = f.path.relative_to(FUNCTIONS / "service" / "src") if f.crate == "service" else None
        for name in callers:
            for m in re.finditer(r"\.\s*" + name + r"\s*\(", f.code):
                if rel is not None and str(rel) in LOCAL_ONLY_CALLERS:
                    continue
                problems.append(f"{f.path.relative_to(REPO)} calls {name}(): a deployed function would need "
                                "dynamodb:DescribeTable/CreateTable (tables come from infra/template.yaml)")
    assert not problems, "\n".join(problems)


def test_gated_operations_exist_where_declared(sdk_calls):
    for (svc, op), (_sel, adapter, _why) in GATED_OPERATIONS.items():
        where = {c.path for c in sdk_calls if (c.service, c.operation) == (svc, op)}
        assert where, f".{op}() is no longer called in {adapter}: drop it from GATED_OPERATIONS"
        outside = sorted(str(w) for w in where if not in_adapter(w, adapter))
        assert not outside, f".{op}() is called outside {adapter}: {outside}; it is no longer gated"


def test_no_sdk_call_hides_from_the_scanner(source_files, sdk_ops):
    hidden = rust_scan.suspicious_calls(source_files, sdk_ops)
    crates = "/".join(pkg.replace("-", "_") for pkg in rust_scan.SDK_CRATES.values())
    assert not hidden, (
        f"SDK-looking calls in files that do not name {crates} "
        f"(name the client type so the IAM check sees them): {[(str(p.relative_to(REPO)), op) for p, op in hidden]}"
    )


def test_kms_and_s3_grants_are_scoped(template):
    for fid, rid in function_roles(template).items():
        for st in role_statements(template["Resources"][rid]):
            acts = as_list(st["Action"])
            if "*" in as_list(st["Resource"]):
                # only the trace upload, which has no resource-level permissions
                assert set(acts) <= set(XRAY_TRACING_ACTIONS) and as_list(st["Resource"]) == ["*"], \
                    f"{rid} {st.get('Sid')}: Resource '*' in a function role"
                assert fn_prop(template, fid, "Tracing") == "Active", \
                    f"{rid} {st.get('Sid')}: X-Ray grant without Tracing: Active on {fid}"
            if any(a.startswith("kms:") for a in acts):
                assert statement_targets(st) == {"DataKey"}, st
            if any(a in ("s3:GetObject", "s3:PutObject") for a in acts):
                for r in as_list(st["Resource"]):
                    sub = r["Fn::Sub"]
                    assert re.fullmatch(r"\$\{DataBucket\.Arn\}/(models|snapshots|runs|outcomes)/\*", sub), \
                        f"{rid} {st.get('Sid')}: object access must be scoped to a prefix, got {sub}"
            if "s3:ListBucket" in acts:
                assert acts == ["s3:ListBucket"] and statement_targets(st) == {"DataBucket"} \
                    and as_list(st["Resource"]) == [{"Fn::GetAtt": ["DataBucket", "Arn"]}], \
                    f"{rid} {st.get('Sid')}: ListBucket only on the data bucket itself"


def test_score_cannot_write_models_and_train_cannot_touch_flags(template):
    roles = {template["Resources"][f]["Metadata"]["BuildProperties"]["Binary"]: template["Resources"][r]
             for f, r in function_roles(template).items()}
    score = allowed_actions(roles["churn-score"])
    train = allowed_actions(roles["churn-train"])
    rescore = allowed_actions(roles["churn-rescore"])
    # score writes no object; rescore only its run records (test below)
    assert "s3:PutObject" not in score
    assert [st["Sid"] for st in rescore["s3:PutObject"]] == ["ReadWriteRunRecords"]
    assert not [a for a in train if a.startswith("dynamodb:")]
    # rescore does not serve risk lists: it queries only the pending events
    # (delivery)
    (pending,) = rescore["dynamodb:Query"]
    assert as_list(pending["Resource"]) == [{"Fn::Sub": "${FlagTable.Arn}/index/events-pending"}]
    # Acknowledgements are the score API's: UpdateItem on the table only, and
    # risk lists query exactly the two sparse indexes. Every UpdateItem of
    # rescore is limited (to event items, or to taking a recorded event off
    # a flag: test_every_update_is_granted_to_exactly_whom_it_needs below).
    assert rescore["dynamodb:UpdateItem"] and all("Condition" in st for st in rescore["dynamodb:UpdateItem"]), \
        "rescore never acknowledges: its UpdateItem is always limited"
    (ack,) = score["dynamodb:UpdateItem"]
    assert as_list(ack["Resource"]) == [{"Fn::GetAtt": ["FlagTable", "Arn"]}]
    (query,) = score["dynamodb:Query"]
    assert sorted(r["Fn::Sub"] for r in as_list(query["Resource"])) == [
        "${FlagTable.Arn}/index/owner-risk-list",
        "${FlagTable.Arn}/index/risk-list",
    ]
    # a missing models/current.json must read as "no model" (404), not a storage failure (403)
    for name, acts in (("score", score), ("train", train), ("rescore", rescore)):
        assert "s3:ListBucket" in acts, f"churn-{name} reads models/current.json and needs s3:ListBucket"


def object_grants(role) -> dict[str, set[str]]:
    """s3:GetObject / s3:PutObject -> the `Fn::Sub` object ARNs granted."""
    out: dict[str, set[str]] = {}
    for st in role_statements(role):
        for a in as_list(st["Action"]):
            if a in ("s3:GetObject", "s3:PutObject"):
                out.setdefault(a, set()).update(r["Fn::Sub"] for r in as_list(st["Resource"]))
    return out


def can_list(role, key: str) -> bool:
    """Whether the role may list the data bucket with `s3:prefix` = `key`: an
    unconditional ListBucket on the bucket, or one whose only condition is a
    StringLike/StringEquals on s3:prefix that the key matches."""
    import fnmatch

    for st in role_statements(role):
        if "s3:ListBucket" not in as_list(st["Action"]) or statement_targets(st) != {"DataBucket"}:
            continue
        cond = st.get("Condition")
        if not cond:
            return True
        if set(cond) <= {"StringLike", "StringEquals"} and all(set(c) == {"s3:prefix"} for c in cond.values()):
            for op, c in cond.items():
                pats = as_list(c["s3:prefix"])
                if any(fnmatch.fnmatchcase(key, p) if op == "StringLike" else key == p for p in pats):
                    return True
    return False


OBJ = "${DataBucket.Arn}/"


def test_run_records_and_outcome_reports_are_granted_narrowly(template):
    """Run records (runs/): rescore reads and writes them (its only write),
    score reads them (GET /v1/runs); outcome reports (outcomes/, written by
    the CLI): score reads them, no function writes them. Both list runs/."""
    roles = {template["Resources"][f]["Metadata"]["BuildProperties"]["Binary"]: template["Resources"][r]
             for f, r in function_roles(template).items()}
    rescore, score, train = (object_grants(roles[b]) for b in ("churn-rescore", "churn-score", "churn-train"))
    assert rescore["s3:PutObject"] == {OBJ + "runs/*"}
    assert rescore["s3:GetObject"] == {OBJ + "snapshots/*", OBJ + "models/*", OBJ + "runs/*"}
    assert "s3:PutObject" not in score
    assert score["s3:GetObject"] == {OBJ + "models/*", OBJ + "runs/*", OBJ + "outcomes/*"}
    for action, arns in train.items():
        assert not {OBJ + "runs/*", OBJ + "outcomes/*"} & arns, f"churn-train {action} on {arns}"
    for binary in ("churn-rescore", "churn-score"):
        assert can_list(roles[binary], "runs/"), f"{binary} cannot list runs/"
        assert can_list(roles[binary], "runs/r-1/shards/"), f"{binary} cannot list a run's shards"
    # writing into the SSE-KMS bucket needs a data key; reading only Decrypt
    kms = {b: {a for st in role_statements(roles[b]) for a in as_list(st["Action"]) if a.startswith("kms:")}
           for b in ("churn-rescore", "churn-score")}
    assert kms["churn-rescore"] == {"kms:Decrypt", "kms:GenerateDataKey"}
    assert kms["churn-score"] == {"kms:Decrypt"}


# --------------------------------------------------------------------------
# Risk-change events: settings and grants of recording and delivery.
# --------------------------------------------------------------------------

# What the template sets on the functions that write flags (score records
# events, rescore records and delivers them): variable -> parameter or
# resource it comes from, and the condition it is set under (None: always).
NOTIFY_ENV = {
    "CHURN_NOTIFY_EVENT_BUS": ("RiskEventBus", None),
    "CHURN_NOTIFY_DEADLINE_SECS": ("NotifyDeadlineSecs", None),
    "CHURN_NOTIFY_SECRET_ARN": ("NotifySecretArn", "HasNotifySecret"),
    "CHURN_PUBLIC_URL": ("PublicUrl", "HasPublicUrl"),
}
EVENT_SOURCE = "churn-risk"
EVENT_DETAIL_TYPE = "Customer Risk Changed"


def binaries(tpl) -> dict[str, str]:
    """binary -> function logical id."""
    return {fn["Metadata"]["BuildProperties"]["Binary"]: fid for fid, fn in functions(tpl).items()}


def test_notification_settings_reach_score_and_rescore_only(template):
    fids = binaries(template)
    for binary in ("churn-score", "churn-rescore"):
        env = fn_env(template, fids[binary])
        for name, (source, condition) in NOTIFY_ENV.items():
            value = env.get(name)
            assert value is not None, f"{binary}: {name} not set"
            if condition is None:
                assert ref_target(value) == source, f"{binary}: {name} = {value}"
            else:
                assert value == {"Fn::If": [condition, {"Ref": source}, {"Ref": "AWS::NoValue"}]}, name
                assert template["Parameters"][source]["Default"] == "", f"{source}: optional, empty by default"
                assert template["Conditions"][condition] == {
                    "Fn::Not": [{"Fn::Equals": [{"Ref": source}, ""]}]}, condition
    train = fn_env(template, fids["churn-train"])
    assert not [n for n in train if n.startswith("CHURN_NOTIFY_") or n == "CHURN_PUBLIC_URL"]
    # the credentials never as plain values, on any function
    for fid in functions(template):
        env = fn_env(template, fid)
        for name in ("CHURN_NOTIFY_SLACK_URL", "CHURN_NOTIFY_WEBHOOK_URL", "CHURN_NOTIFY_WEBHOOK_SECRET"):
            assert name not in env, f"{fid}: {name} is a credential, it comes from the secret"
    assert template["Resources"]["RiskEventBus"]["Type"] == "AWS::Events::EventBus"
    deadline = template["Parameters"]["NotifyDeadlineSecs"]
    assert (deadline["Type"], deadline["Default"], deadline["MinValue"], deadline["MaxValue"]) == ("Number", 30, 1, 600)


def test_notify_secret_parameter_takes_only_a_full_secret_arn(template):
    """The IAM grant is on exactly the given ARN: a partial ARN (without the
    random suffix Secrets Manager appends) or a name would match nothing."""
    pattern = template["Parameters"]["NotifySecretArn"]["AllowedPattern"]
    ok = ["", "arn:aws:secretsmanager:eu-west-1:123456789012:secret:churn-risk/notify-AbC123"]
    bad = ["churn-risk/notify", "arn:aws:secretsmanager:eu-west-1:123456789012:secret:churn-risk/notify",
           "arn:aws:secretsmanager:eu-west-1:123456789012:secret:*"]
    assert all(re.fullmatch(pattern, v) for v in ok)
    assert not any(re.fullmatch(pattern, v) for v in bad)
    assert re.fullmatch(template["Parameters"]["PublicUrl"]["AllowedPattern"], "https://cs.example.com/churn")
    assert not re.fullmatch(template["Parameters"]["PublicUrl"]["AllowedPattern"], "cs.example.com")
    email = template["Parameters"]["RiskAlertEmail"]["AllowedPattern"]
    assert re.fullmatch(email, "") and re.fullmatch(email, "cs-team@example.com")
    assert not re.fullmatch(email, "cs-team")


def test_delivery_grants_are_scoped(template):
    """PutEvents: rescore only, on the stack's bus, as source churn-risk.
    GetSecretValue: score and rescore, on exactly the secret parameter, only
    when one is given. Nothing of it for train."""
    fids = binaries(template)
    roles = {b: template["Resources"][function_roles(template)[fid]] for b, fid in fids.items()}
    acts = {b: allowed_actions(r) for b, r in roles.items()}
    (put,) = acts["churn-rescore"]["events:PutEvents"]
    assert as_list(put["Resource"]) == [{"Fn::GetAtt": ["RiskEventBus", "Arn"]}]
    assert put["Condition"] == {"StringEquals": {"events:source": EVENT_SOURCE}}
    assert "events:PutEvents" not in acts["churn-score"], "score records events, it never delivers them"
    for binary in ("churn-score", "churn-rescore"):
        conditional = [st["Fn::If"] for pol in roles[binary]["Properties"]["Policies"]
                       for st in as_list(pol["PolicyDocument"]["Statement"])
                       if isinstance(st, dict) and "Fn::If" in st and st["Fn::If"][0] == "HasNotifySecret"]
        assert len(conditional) == 1, f"{binary}: one HasNotifySecret statement"
        _, yes, no = conditional[0]
        assert is_no_value(no)
        assert as_list(yes["Action"]) == ["secretsmanager:GetSecretValue"]
        assert yes["Resource"] == {"Ref": "NotifySecretArn"}
        (st,) = acts[binary]["secretsmanager:GetSecretValue"]
        assert st is yes, f"{binary}: GetSecretValue only under HasNotifySecret"
    for action in acts["churn-train"]:
        assert not action.startswith(("events:", "secretsmanager:")), action


# Example partition keys for the IAM checks below: a customer's flag item
# and an event item ("\u001fevent\u001f<event id>", as the adapter writes it).
FLAG_KEY = "c-1042"
EVENT_KEY = "\u001fevent\u001fevt_3f0c9a1e5b7d4c2a8e6f1b0d9c7a5e3f"


def _condition_holds(operator: str, key: str, allowed, context: dict) -> bool:
    """One condition of an Allow statement against a request context (key ->
    its values as a list, a single value, or None when the code does not
    show it). Only the operators the roles use; any other fails."""
    import fnmatch

    allowed = as_list(allowed)
    value = context.get(key)
    if value is None:
        return False
    if operator == "ForAllValues:StringLike":
        return all(any(fnmatch.fnmatchcase(v, p) for p in allowed) for v in value)
    if operator == "ForAllValues:StringEquals":
        return all(v in allowed for v in value)
    if operator in ("StringEquals", "StringEqualsIfExists"):
        return value in allowed
    return False


def update_allowed(role, *, key: str, attributes, return_values) -> bool:
    """Whether the role may UpdateItem the flag table's item with partition
    key `key`, the request naming `attributes` (its key attribute included;
    None: not known from the code) and asking ReturnValues `return_values`
    (a request without one counts as NONE; None: not known)."""
    context = {
        "dynamodb:LeadingKeys": [key],
        "dynamodb:Attributes": sorted(attributes) if attributes is not None else None,
        "dynamodb:ReturnValues": return_values,
    }
    for st in role_statements(role):
        if "dynamodb:UpdateItem" not in as_list(st["Action"]):
            continue
        if as_list(st["Resource"]) != [{"Fn::GetAtt": ["FlagTable", "Arn"]}]:
            continue
        conditions = st.get("Condition") or {}
        if all(_condition_holds(op, k, v, context) for op, c in conditions.items() for k, v in c.items()):
            return True
    return False


def test_update_allowed_reads_the_conditions():
    """The helper above, on statements of the forms the roles use."""
    table = {"Fn::GetAtt": ["FlagTable", "Arn"]}

    def role(*conditions):
        return {"Properties": {"Policies": [{"PolicyDocument": {"Statement": [
            {"Effect": "Allow", "Action": "dynamodb:UpdateItem", "Resource": table, **c} for c in conditions]}}]}}

    events = {"Condition": {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": [EVENT_KEY_PATTERN]}}}
    attrs = {"Condition": {"ForAllValues:StringEquals": {"dynamodb:Attributes": ["customer_id", "x"]},
                           "StringEqualsIfExists": {"dynamodb:ReturnValues": "NONE"}}}
    assert update_allowed(role({}), key=FLAG_KEY, attributes=None, return_values=None)
    assert update_allowed(role(events), key=EVENT_KEY, attributes=None, return_values="NONE")
    assert not update_allowed(role(events), key=FLAG_KEY, attributes={"customer_id"}, return_values="NONE")
    assert update_allowed(role(attrs), key=FLAG_KEY, attributes={"customer_id", "x"}, return_values="NONE")
    assert not update_allowed(role(attrs), key=FLAG_KEY, attributes={"customer_id", "y"}, return_values="NONE")
    assert not update_allowed(role(attrs), key=FLAG_KEY, attributes=None, return_values="NONE")
    assert not update_allowed(role(attrs), key=FLAG_KEY, attributes={"customer_id", "x"}, return_values="ALL_NEW")
    assert update_allowed(role(events, attrs), key=FLAG_KEY, attributes={"customer_id"}, return_values="NONE")
    unknown = {"Condition": {"StringNotEquals": {"dynamodb:ReturnValues": "ALL_NEW"}}}
    assert not update_allowed(role(unknown), key=FLAG_KEY, attributes=None, return_values="NONE")


def test_both_flag_writers_record_events_without_transactions(template, sdk_calls):
    """A write that records a risk-change event puts it on the flag's own
    item (the flag's PutItem), then puts the event's item (PutItem) and takes
    the event off the flag (UpdateItem, the next test). Score (persist) and
    rescore both write flags: both need PutItem on the whole table."""
    transactions = sorted({str(c.path.relative_to(REPO)) for c in sdk_calls
                           if (c.service, c.operation) == ("dynamodb", "transact_write_items")})
    assert not transactions, (
        f"TransactWriteItems in {transactions}: the template's comments and infra/README.md "
        "describe the outbox without transactions (and a transaction needs the action of "
        "each item kind it holds); update them")
    for binary in ("churn-score", "churn-rescore"):
        granted = allowed_actions(template["Resources"][function_roles(template)[binaries(template)[binary]]])
        assert any(as_list(st["Resource"]) == [{"Fn::GetAtt": ["FlagTable", "Arn"]}] and "Condition" not in st
                   for st in granted.get("dynamodb:PutItem", [])), \
            f"{binary} writes flags and event items: PutItem on the flag table"


def test_every_update_is_granted_to_exactly_whom_it_needs(template, source_files):
    """Each UpdateItem call of the DynamoDB adapter, as its code shows it
    (which item, which attributes, what it returns), against the roles:
    - on event items (delivery marks): rescore;
    - taking a recorded event off its flag (`unprojected`): score and
      rescore, both write flags;
    - acknowledgements (`ack`): score, never rescore.
    rescore's attribute-limited statement names exactly the attributes of
    the `unprojected` calls and the key, and refuses anything else on a flag."""
    key_attribute = template["Resources"]["FlagTable"]["Properties"]["KeySchema"][0]["AttributeName"]
    updates = rust_scan.dynamodb_updates(source_files)
    for u in updates:
        assert u.key_attribute == key_attribute, f"{u.path.relative_to(REPO)} fn {u.fn}: key {u.key_attribute!r}"
    on_events = [u for u in updates if re.search(r"\bevent_key\s*\(", u.key_value)]
    on_flags = [u for u in updates if u not in on_events]
    clears = [u for u in on_flags if u.attributes is not None and "unprojected" in u.attributes]
    acks = [u for u in on_flags if u.attributes is not None and "ack" in u.attributes]
    assert on_events, "no UpdateItem on event items (event_key(...)) in the DynamoDB adapter: delivery moved?"
    assert clears, "no UpdateItem naming `unprojected`: how does a recorded event leave its flag's item?"
    assert acks, "no UpdateItem naming `ack`: how are acknowledgements written?"
    unknown = [f"{u.path.relative_to(REPO)} fn {u.fn}: {sorted(u.attributes or [])}"
               for u in on_flags if (u in clears) == (u in acks)]
    assert not unknown, f"UpdateItem calls on flag items this test does not know: {unknown}"

    roles = {b: template["Resources"][function_roles(template)[fid]] for b, fid in binaries(template).items()}
    score, rescore = roles["churn-score"], roles["churn-rescore"]

    def request(u, key):
        attributes = None if u.attributes is None else u.attributes | {key_attribute}
        return {"key": key, "attributes": attributes, "return_values": u.return_values}

    for u in on_events:
        assert update_allowed(rescore, **request(u, EVENT_KEY)), f"rescore cannot settle events ({u.fn})"
    for u in clears:
        for binary in ("churn-score", "churn-rescore"):
            assert update_allowed(roles[binary], **request(u, FLAG_KEY)), \
                f"{binary} writes flags but cannot take a recorded event off one ({u.fn}: {sorted(u.attributes)})"
    for u in acks:
        assert update_allowed(score, **request(u, FLAG_KEY)), f"score cannot acknowledge ({u.fn})"
        assert not update_allowed(rescore, **request(u, FLAG_KEY)), \
            f"rescore may acknowledge ({u.fn}): acknowledgements are the score API's"

    # Least privilege: the attribute list is exactly what the calls name.
    limited = [st for st in role_statements(rescore) if "dynamodb:UpdateItem" in as_list(st["Action"])
               and "dynamodb:Attributes" in (st.get("Condition") or {}).get("ForAllValues:StringEquals", {})]
    assert len(limited) == 1, "one attribute-limited UpdateItem statement in the rescore role"
    listed = set(as_list(limited[0]["Condition"]["ForAllValues:StringEquals"]["dynamodb:Attributes"]))
    named = set().union(*(u.attributes for u in clears)) | {key_attribute}
    assert listed == named, f"rescore's UpdateItem attributes {sorted(listed)}, the calls name {sorted(named)}"
    # ... and refuses the rest: a score, the whole item back, an event's
    # marks on a flag item.
    for attributes, rv in (({key_attribute, "churn_probability"}, "NONE"),
                           ({key_attribute, "unprojected"}, "ALL_NEW"),
                           ({key_attribute, "due", "event_pending"}, "NONE")):
        assert not update_allowed(rescore, key=FLAG_KEY, attributes=attributes, return_values=rv), (attributes, rv)


def test_the_code_sends_what_the_grants_and_the_rule_expect(source_files):
    """PutEvents is allowed for source churn-risk only, and the example rule
    matches that source and detail-type: the EventBridge client must send both."""
    eb = [f for f in source_files if "aws_sdk_eventbridge" in f.code]
    assert eb, "no EventBridge client in functions/"
    code = "\n".join(f.code for f in eb)
    for literal in (EVENT_SOURCE, EVENT_DETAIL_TYPE):
        assert f'"{literal}"' in code, f"the EventBridge client does not send {literal!r}"


def test_can_list_reads_prefix_conditions():
    """The helper above: a prefix-limited ListBucket counts only for its prefix."""
    bucket = {"Fn::GetAtt": ["DataBucket", "Arn"]}
    limited = {"Properties": {"Policies": [{"PolicyDocument": {"Statement": [
        {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": bucket,
         "Condition": {"StringLike": {"s3:prefix": ["snapshots/*"]}}}]}}]}}
    assert can_list(limited, "snapshots/latest/") and not can_list(limited, "runs/")
    open_ = {"Properties": {"Policies": [{"PolicyDocument": {"Statement": [
        {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": bucket}]}}]}}
    assert can_list(open_, "runs/")


# --------------------------------------------------------------------------
# IAM: state machine and scheduler roles against what they run.
# --------------------------------------------------------------------------


def walk_states(states: dict):
    for name, st in states.items():
        yield name, st
        if st.get("Type") == "Map":
            proc = st.get("ItemProcessor") or st.get("Iterator")
            yield from walk_states(proc["States"])
        if st.get("Type") == "Parallel":
            for br in st["Branches"]:
                yield from walk_states(br["States"])


def state_machine_needs(sm: dict) -> dict[str, str]:
    """IAM action -> what in the definition/config needs it."""
    props = sm["Properties"]
    need: dict[str, str] = {}
    for name, st in walk_states(props["Definition"]["States"]):
        res = st.get("Resource", "")
        if st.get("Type") == "Task":
            if res.startswith("arn:aws:states:::lambda:invoke"):
                need["lambda:InvokeFunction"] = name
            elif res.startswith("arn:aws:states:::sqs:sendMessage"):
                need["sqs:SendMessage"] = name
            elif res.startswith("arn:aws:states:::aws-sdk:s3:listObjectsV2"):
                need["s3:ListBucket"] = name
            elif res:
                pytest.fail(f"state {name}: integration {res} not mapped to IAM actions in this test")
        if st.get("Type") == "Map" and (st.get("ItemProcessor") or {}).get("ProcessorConfig", {}).get("Mode") == "DISTRIBUTED":
            for a in ("states:StartExecution", "states:DescribeExecution", "states:StopExecution"):
                need[a] = f"{name} (Distributed Map child executions)"
            reader = st.get("ItemReader", {}).get("Resource", "")
            if reader.startswith("arn:aws:states:::s3:listObjectsV2"):
                need["s3:ListBucket"] = f"{name} ItemReader"
            elif reader:
                pytest.fail(f"{name}: ItemReader {reader} not mapped")
            writer = st.get("ResultWriter", {}).get("Resource", "")
            if writer.startswith("arn:aws:states:::s3:putObject"):
                need["s3:PutObject"] = f"{name} ResultWriter"
                need["kms:GenerateDataKey"] = f"{name} ResultWriter into the SSE-KMS bucket"
                need["kms:Decrypt"] = f"{name} ResultWriter multipart upload into the SSE-KMS bucket"
    if (props.get("TracingConfiguration") or {}).get("Enabled"):
        for a in ("xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules", "xray:GetSamplingTargets"):
            need[a] = "TracingConfiguration"
    if (props.get("LoggingConfiguration") or {}).get("Destinations"):
        for a in ("logs:CreateLogDelivery", "logs:GetLogDelivery", "logs:UpdateLogDelivery",
                  "logs:DeleteLogDelivery", "logs:ListLogDeliveries", "logs:PutResourcePolicy",
                  "logs:DescribeResourcePolicies", "logs:DescribeLogGroups"):
            need[a] = "LoggingConfiguration (CloudWatch Logs vended delivery)"
    return need


def test_state_machine_role_is_exactly_what_the_definition_needs(template):
    for sid, sm in resources(template, "AWS::StepFunctions::StateMachine").items():
        role_id = ref_target(sm["Properties"]["RoleArn"])
        granted = set(allowed_actions(template["Resources"][role_id]))
        need = state_machine_needs(sm)
        assert granted - set(need) == set(), f"{role_id} grants actions {sid} never uses: {sorted(granted - set(need))}"
        assert set(need) - granted == set(), f"{sid} needs actions {role_id} lacks: {sorted(set(need) - granted)}"


def test_scheduler_role_is_exactly_what_the_schedule_needs(template):
    for sched_id, sched in resources(template, "AWS::Scheduler::Schedule").items():
        target = sched["Properties"]["Target"]
        role_id = ref_target(target["RoleArn"])
        need = set()
        target_res = template["Resources"][ref_target(target["Arn"])]
        if target_res["Type"] == "AWS::StepFunctions::StateMachine":
            need.add("states:StartExecution")
        if target.get("DeadLetterConfig"):
            need.add("sqs:SendMessage")
        granted = set(allowed_actions(template["Resources"][role_id]))
        assert granted == need, f"{role_id}: granted {sorted(granted)}, {sched_id} needs {sorted(need)}"


# --------------------------------------------------------------------------
# What the deployment asks of the functions and the data stores.
# --------------------------------------------------------------------------


def cargo_binaries() -> dict[str, str]:
    """binary name -> function crate dir name, for functions/{train,score,rescore}."""
    out = {}
    for crate in FUNCTION_CRATES:
        manifest = tomllib.loads((FUNCTIONS / crate / "Cargo.toml").read_text())
        for b in manifest.get("bin", []):
            out[b["name"]] = crate
    return out


def test_functions_build_with_cargo_lambda_for_arm64(template):
    bins = cargo_binaries()
    seen = set()
    assert template["Globals"]["Function"]["Runtime"] == "provided.al2023"
    for fid, fn in functions(template).items():
        md = fn["Metadata"]
        assert md["BuildMethod"] == "rust-cargolambda", fid
        binary = md["BuildProperties"]["Binary"]
        assert binary in bins, f"{fid}: Binary {binary} is not a [[bin]] of functions/*/Cargo.toml"
        seen.add(binary)
        assert fn_prop(template, fid, "Runtime") == "provided.al2023", fid
        assert fn_prop(template, fid, "Architectures") == ["arm64"], fid
        assert fn_prop(template, fid, "Handler") == "bootstrap", fid
        assert fn_prop(template, fid, "CodeUri") == "../", f"{fid}: CodeUri must be the Cargo workspace root"
        mem, timeout = fn_prop(template, fid, "MemorySize"), fn_prop(template, fid, "Timeout")
        assert isinstance(mem, int) and 128 <= mem <= 10240, fid
        assert isinstance(timeout, int) and 1 <= timeout <= 900, fid
    assert seen == set(bins), f"binaries without a function: {set(bins) - seen}"


def test_json_logs_with_retention(template):
    for fid in functions(template):
        lc = fn_prop(template, fid, "LoggingConfig")
        assert lc["LogFormat"] == "JSON", fid
        group = template["Resources"][ref_target(lc["LogGroup"])]
        assert group["Type"] == "AWS::Logs::LogGroup"
        assert group["Properties"].get("RetentionInDays"), f"{fid}: log group without retention"
    for lg_id, lg in resources(template, "AWS::Logs::LogGroup").items():
        assert lg["Properties"].get("RetentionInDays"), lg_id


def test_every_function_is_traced_and_can_upload_its_traces(template):
    """X-Ray active tracing on every function, and each role grants what
    Lambda needs to upload the traces (Lambda refuses `Tracing: Active` on a
    role without it)."""
    roles = function_roles(template)
    for fid in functions(template):
        assert fn_prop(template, fid, "Tracing") == "Active", f"{fid}: X-Ray tracing is not active"
        granted = allowed_actions(template["Resources"][roles[fid]])
        for action in XRAY_TRACING_ACTIONS:
            assert action in granted, f"{roles[fid]} lacks {action}, which Tracing: Active needs"


def test_score_endpoint_is_iam_authenticated_without_cors(template):
    urls = [(fid, fn["Properties"]["FunctionUrlConfig"]) for fid, fn in functions(template).items()
            if "FunctionUrlConfig" in fn["Properties"]]
    assert [fid for fid, _ in urls] == ["ScoreFunction"]
    cfg = urls[0][1]
    assert cfg["AuthType"] == "AWS_IAM"
    assert "Cors" not in cfg
    # no resource policy opening the URL to everyone
    for pid, perm in resources(template, "AWS::Lambda::Permission").items():
        assert perm["Properties"].get("Principal") != "*", pid


# The outbox of risk-change events in the flag table (single-table design):
# its two sparse indexes (name -> HASH, RANGE), the TTL attribute only event
# items carry, and the IAM pattern of event item keys
# ("\u001fevent\u001f<event id>"; "?" stands for the control character).
EVENT_INDEXES = {
    "events-by-time": ("event_day", "event_sk"),
    "events-pending": ("event_pending", "event_sk"),
}
EVENT_TTL_ATTRIBUTE = "expires_at"
EVENT_KEY_PATTERN = "?event?*"


def dynamo_code(source_files) -> str:
    dynamo = [f for f in source_files if "aws_sdk_dynamodb" in f.code]
    assert dynamo, "no DynamoDB adapter found under functions/"
    return "\n".join(f.code for f in dynamo)


def test_flag_table_matches_the_dynamodb_adapter(template, source_files):
    table = template["Resources"]["FlagTable"]["Properties"]
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert table["SSESpecification"]["SSEEnabled"] is True
    assert table["KeySchema"] == [{"AttributeName": "customer_id", "KeyType": "HASH"}]
    attrs = {a["AttributeName"]: a["AttributeType"] for a in table["AttributeDefinitions"]}
    flag_attrs = {"customer_id": "S", "risk_list_pk": "S", "owner_list_pk": "S", "churn_probability": "N"}
    event_attrs = {a: "S" for keys in EVENT_INDEXES.values() for a in keys}
    assert attrs == {**flag_attrs, **event_attrs}
    gsis = {g["IndexName"]: g for g in table["GlobalSecondaryIndexes"]}
    code = dynamo_code(source_files)
    # Each index the adapter names exists, keyed as the adapter queries it.
    for constant, key in (("RISK_LIST_INDEX", "risk_list_pk"), ("OWNER_LIST_INDEX", "owner_list_pk")):
        m = re.search(constant + r'\s*:\s*&str\s*=\s*"([^"]+)"', code)
        assert m, f"{constant} constant not found in the DynamoDB adapter"
        gsi = gsis.pop(m.group(1))
        assert gsi["KeySchema"] == [{"AttributeName": key, "KeyType": "HASH"},
                                    {"AttributeName": "churn_probability", "KeyType": "RANGE"}]
        assert gsi["Projection"] == {"ProjectionType": "ALL"}
    # the outbox's indexes: the tests below
    for name in EVENT_INDEXES:
        gsis.pop(name, None)
    assert not gsis, f"indexes the adapter does not use: {list(gsis)}"
    for name in flag_attrs:
        assert f'"{name}"' in code, f"attribute {name} of the template is not used by the DynamoDB adapter"


def test_flag_table_holds_the_event_outbox(template):
    """Two sparse event indexes (projection ALL, so a delivery or a listing
    reads whole events from the index) and a TTL on the attribute only event
    items carry."""
    table = template["Resources"]["FlagTable"]["Properties"]
    gsis = {g["IndexName"]: g for g in table["GlobalSecondaryIndexes"]}
    for name, (hash_key, range_key) in EVENT_INDEXES.items():
        assert name in gsis, f"no index {name}"
        assert gsis[name]["KeySchema"] == [{"AttributeName": hash_key, "KeyType": "HASH"},
                                           {"AttributeName": range_key, "KeyType": "RANGE"}], name
        assert gsis[name]["Projection"] == {"ProjectionType": "ALL"}, name
        assert "ProvisionedThroughput" not in gsis[name], "on-demand table"
    assert table["TimeToLiveSpecification"] == {"AttributeName": EVENT_TTL_ATTRIBUTE, "Enabled": True}
    # the TTL attribute is no key of anything
    keys = {k["AttributeName"] for g in gsis.values() for k in g["KeySchema"]} | {"customer_id"}
    assert EVENT_TTL_ATTRIBUTE not in keys


def test_the_outbox_adapter_uses_the_event_indexes_and_keys(source_files):
    """The DynamoDB outbox names the indexes, their key attributes and the TTL
    attribute of the template, and event item keys match the pattern of
    rescore's SettleEvents statement (UpdateItem on event items)."""
    import fnmatch

    code = dynamo_code(source_files)
    missing = [name for name in [*EVENT_INDEXES, *{a for ks in EVENT_INDEXES.values() for a in ks},
                                 EVENT_TTL_ATTRIBUTE] if f'"{name}"' not in code]
    assert not missing, f"the DynamoDB adapter does not name {missing}"
    m = re.search(r'"((?:\\u\{[0-9a-fA-F]+\}|\\x[0-9a-fA-F]{2}|[^"{\\])*event(?:\\u\{[0-9a-fA-F]+\}|\\x[0-9a-fA-F]{2}))\{', code)
    assert m, "no event item key format (\"\\u{1f}event\\u{1f}{id}\") in the DynamoDB adapter"
    prefix = re.sub(r"\\u\{([0-9a-fA-F]+)\}|\\x([0-9a-fA-F]{2})",
                    lambda e: chr(int(e.group(1) or e.group(2), 16)), m.group(1))
    assert fnmatch.fnmatchcase(prefix + "evt_0123456789abcdef", EVENT_KEY_PATTERN), prefix
    assert not fnmatch.fnmatchcase("cust-0042", EVENT_KEY_PATTERN)


def test_bucket_is_private_versioned_encrypted_tls_only(template):
    b = template["Resources"]["DataBucket"]["Properties"]
    assert b["VersioningConfiguration"]["Status"] == "Enabled"
    assert bucket_kms_key(template, "DataBucket") == "DataKey"
    assert all(b["PublicAccessBlockConfiguration"].values()) and len(b["PublicAccessBlockConfiguration"]) == 4
    policies = [p for p in resources(template, "AWS::S3::BucketPolicy").values()
                if ref_target(p["Properties"]["Bucket"]) == "DataBucket"]
    (policy,) = policies
    tls = [s for s in as_list(policy["Properties"]["PolicyDocument"]["Statement"])
           if s["Effect"] == "Deny" and s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false"]
    assert tls, "no TLS-only statement on the data bucket"


def test_rescore_state_machine_shards_the_snapshot(template):
    (sm,) = resources(template, "AWS::StepFunctions::StateMachine").values()
    subs = sm["Properties"]["DefinitionSubstitutions"]
    assert ref_target(subs["RescoreFunctionArn"]) == "RescoreFunction"
    states = dict(walk_states(sm["Properties"]["Definition"]["States"]))
    maps = [s for s in states.values() if s.get("Type") == "Map"]
    (m,) = maps
    assert m["ItemProcessor"]["ProcessorConfig"]["Mode"] == "DISTRIBUTED"
    assert m["ItemReader"]["Resource"] == "arn:aws:states:::s3:listObjectsV2"
    assert "MaxConcurrency" in m or "MaxConcurrencyPath" in m, "unbounded concurrency"
    invokes = {n: s for n, s in states.items() if s.get("Resource") == "arn:aws:states:::lambda:invoke"}
    assert set(invokes) == {"RescoreWhole", "RescoreShard", "FinishRun", "FinishFailedRun",
                            "Notify", "NotifyFailedRun"}, \
        "one direct invocation for small snapshots, one per shard, one to finish a sharded run " \
        "(after the map, or after a failed map) and one to deliver its events (either way)"
    for s in invokes.values():
        assert s["Parameters"]["FunctionName"] == "${RescoreFunctionArn}"
    payloads = {n: s["Parameters"]["Payload"] for n, s in invokes.items()}
    assert payloads["RescoreWhole"] == {
        "snapshot.$": "States.Format('s3://${Bucket}/{}', $.config.prefix)",
        "run_id.$": "$$.Execution.Name",
        "force.$": "$.config.force",
    }
    # inside the map the item carries the run id and force (ItemSelector below)
    assert payloads["RescoreShard"] == {
        "snapshot.$": "States.Format('s3://${Bucket}/{}', $.key)",
        "run_id.$": "$.run_id",
        "force.$": "$.force",
        "shard": True,
    }
    assert payloads["FinishRun"] == {"finish_run.$": "$$.Execution.Name"}
    assert payloads["Notify"] == payloads["NotifyFailedRun"] == {"notify_run.$": "$$.Execution.Name"}
    assert m["ItemSelector"]["run_id.$"] == "$$.Execution.Name"
    assert m["ItemSelector"]["force.$"] == "$.config.force"
    assert m["Next"] == "FinishRun" and invokes["FinishRun"]["Next"] == "Notify"
    assert invokes["Notify"]["Next"] == "RunVerdict"
    # failures reach the queue and end the execution as failed (the alarm's metric)
    assert any(s.get("Type") == "Fail" for s in states.values())
    alarms = resources(template, "AWS::CloudWatch::Alarm").values()
    assert any(a["Properties"]["MetricName"] == "ExecutionsFailed" for a in alarms)
    for fid in functions(template):
        assert any(a["Properties"]["MetricName"] == "Errors" and
                   ref_target(a["Properties"]["Dimensions"][0]["Value"]) == fid for a in alarms), \
            f"no Errors alarm for {fid}"


def test_every_checkov_skip_is_justified(template):
    skips = 0
    for rid, res in template["Resources"].items():
        for skip in ((res.get("Metadata") or {}).get("checkov") or {}).get("skip", []):
            skips += 1
            assert re.fullmatch(r"CKV2?_AWS_\d+", skip["id"]), (rid, skip)
            comment = (skip.get("comment") or "").strip()
            assert len(comment) >= 60, f"{rid}: checkov skip {skip['id']} needs a written justification"
    raw = TEMPLATE.read_text()
    assert "checkov:skip=" not in raw, "use Metadata.checkov.skip with a comment, not inline skips"
    assert skips <= 6, "more skips than reviewed; justify and raise this bound deliberately"


# --------------------------------------------------------------------------
# The scanner itself: it must see what it claims to see.
# --------------------------------------------------------------------------


def test_scanner_ignores_comments_tests_and_test_support():
    src = '''
    // let _ = std::env::var("CHURN_COMMENTED");
    /* client.delete_object() "CHURN_BLOCK" */
    fn real() { let _ = std::env::var("CHURN_REAL"); let s = "}{"; client.get_object(); }
    #[cfg(test)]
    mod tests { fn t() { std::env::var("CHURN_TEST_ONLY"); client.delete_object(); } }
    #[cfg(any(test, feature = "test-support"))]
    pub fn helper() { std::env::var("CHURN_HELPER"); }
    #[cfg(not(test))]
    fn prod() { std::env::var("CHURN_NOT_TEST"); let c = '{'; }
    '''
    code, mods = rust_scan.strip_nonprod(rust_scan._code_only(rust_scan.segments(src)))
    names = {m.group(1) for m in rust_scan.ENV_NAME.finditer(code)}
    assert names == {"CHURN_REAL", "CHURN_NOT_TEST"}
    calls = {m.group(1) for m in rust_scan._CALL.finditer(code)}
    assert "get_object" in calls and "delete_object" not in calls
    code2, mods2 = rust_scan.strip_nonprod('#[cfg(feature = "test-support")]\npub mod test_support;\npub mod config;')
    assert mods2 == ["test_support"] and "config" in code2


def test_scanner_follows_the_module_tree(tmp_path):
    src = tmp_path / "service" / "src"
    (src / "store").mkdir(parents=True)
    (tmp_path / "service" / "Cargo.toml").write_text("[package]\nname = 'x'\n")
    (src / "lib.rs").write_text(
        'pub mod store;\n#[cfg(feature = "test-support")]\npub mod test_support;\n'
        '#[cfg(test)]\nmod tests;\n#[path = "odd_place.rs"]\nmod odd;\n'
    )
    (src / "store.rs").write_text("mod s3;\n")
    (src / "store" / "s3.rs").write_text('fn f() { std::env::var("CHURN_IN_TREE"); }')
    (src / "odd_place.rs").write_text('const X: &str = "CHURN_BY_PATH";')
    (src / "test_support.rs").write_text('fn f() { std::env::var("CHURN_TEST_SUPPORT"); }')
    (src / "tests.rs").write_text('fn f() { std::env::var("CHURN_TESTS"); }')
    (src / "orphan.rs").write_text('fn f() { std::env::var("CHURN_ORPHAN"); }')
    files = rust_scan.production_files(tmp_path)
    assert {f.path.name for f in files} == {"lib.rs", "store.rs", "s3.rs", "odd_place.rs"}
    assert set(rust_scan.env_vars_read(files)) == {"CHURN_IN_TREE", "CHURN_BY_PATH"}


def test_scanner_maps_operations_to_iam_actions(sdk_ops):
    assert rust_scan.iam_alternatives("s3", "list_objects_v2") == [{"s3:ListBucket"}]
    assert rust_scan.iam_alternatives("s3", "get_object") == [{"s3:GetObject"}]
    assert rust_scan.iam_alternatives("dynamodb", "batch_write_item") == [{"dynamodb:BatchWriteItem"}]
    assert rust_scan.iam_alternatives("dynamodb", "query") == [{"dynamodb:Query"}]
    assert rust_scan.iam_alternatives("dynamodb", "update_item") == [{"dynamodb:UpdateItem"}]
    # a transaction needs the action of every item kind it holds, all together
    assert rust_scan.iam_alternatives("dynamodb", "transact_write_items", {"Put", "ConditionCheck"}) == [
        {"dynamodb:PutItem", "dynamodb:ConditionCheckItem"}]
    assert rust_scan.iam_alternatives("dynamodb", "transact_write_items", {"Put"}) == [{"dynamodb:PutItem"}]
    assert {"dynamodb:UpdateItem"} in rust_scan.iam_alternatives("dynamodb", "transact_write_items")
    # EventBridge's IAM prefix is events
    assert rust_scan.iam_alternatives("eventbridge", "put_events") == [{"events:PutEvents"}]
    assert rust_scan.iam_alternatives("secretsmanager", "get_secret_value") == [{"secretsmanager:GetSecretValue"}]
    for svc, op in [("s3", "get_object"), ("s3", "put_object"), ("s3", "list_objects_v2"),
                    ("dynamodb", "batch_write_item"), ("dynamodb", "query"), ("dynamodb", "put_item"),
                    ("dynamodb", "transact_write_items"), ("dynamodb", "update_item"),
                    ("eventbridge", "put_events"), ("secretsmanager", "get_secret_value")]:
        assert op in sdk_ops[svc], f"{op} not an operation of the locked {rust_scan.SDK_CRATES[svc]}"


def test_scanner_sees_the_eventbridge_and_secrets_manager_clients(sdk_ops):
    code = lambda src: rust_scan.strip_nonprod(rust_scan._code_only(rust_scan.segments(src)))[0]  # noqa: E731
    src = code('''
    use aws_sdk_eventbridge::types::PutEventsRequestEntry;
    async fn put(c: &aws_sdk_eventbridge::Client) { c.put_events().send().await; }
    async fn secret(c: &aws_sdk_secretsmanager::Client) { c.get_secret_value().secret_id("x").send().await; }
    ''')
    assert rust_scan.services_named(src) == {"eventbridge", "secretsmanager"}
    files = [rust_scan.SourceFile(path=REPO / "x.rs", crate="service", code=src)]
    calls = {(c.service, c.operation) for c in rust_scan.sdk_calls(files, sdk_ops)}
    assert {("eventbridge", "put_events"), ("secretsmanager", "get_secret_value")} <= calls
    # the same calls through a client the file does not name are suspicious
    hidden = [rust_scan.SourceFile(path=REPO / "y.rs", crate="service",
                                   code=code("async fn f(c: &Bus) { c.put_events().send().await; }"))]
    assert rust_scan.suspicious_calls(hidden, sdk_ops) == [(REPO / "y.rs", "put_events")]


def test_scanner_finds_the_item_kinds_of_transactions():
    src = rust_scan._code_only(rust_scan.segments('''
    use aws_sdk_dynamodb::types::{ConditionCheck, Put, PutRequest, TransactWriteItem};
    let a = Put::builder().table_name(t).build();
    let b = aws_sdk_dynamodb::types::ConditionCheck::builder().table_name(t).build();
    let c = PutRequest::builder().build(); // BatchWriteItem: no transaction
    let d = AttributeValueUpdate::builder().build();
    // Delete::builder() in a comment
    '''))
    files = [rust_scan.SourceFile(path=REPO / "x.rs", crate="service", code=src)]
    assert rust_scan.transact_write_kinds(files) == {"Put", "ConditionCheck"}
    # a file that does not name the DynamoDB SDK builds no DynamoDB items
    other = [rust_scan.SourceFile(path=REPO / "y.rs", crate="service", code="let x = Update::builder();")]
    assert rust_scan.transact_write_kinds(other) == set()


def test_scanner_reads_the_attributes_of_dynamodb_updates():
    ea = rust_scan.expression_attributes
    assert ea("REMOVE unprojected", {}) == {"unprojected"}
    assert ea("rev = :rev", {}) == {"rev"}
    assert ea("contains(due, :dest) AND size(due) = :one", {}) == {"due"}
    assert ea("DELETE due :set SET delivered.#d = :at REMOVE event_pending", {"#d": "slack"}) == \
        {"due", "delivered", "event_pending"}
    assert ea("SET failures.#d = if_not_exists(failures.#d, :zero) + :one, last_error.#d = :e", {}) == \
        {"failures", "last_error"}
    assert ea("SET #ack = :ack ADD #rev :one", {"#ack": "ack", "#rev": "rev"}) == {"ack", "rev"}
    assert ea("SET #unknown = :v", {}) is None
    src = rust_scan._code_only(rust_scan.segments('''
    use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
    async fn clear(c: &Client, id: &str) {
        c.update_item()
            .table_name(t)
            .key("customer_id", s(id))
            .condition_expression("rev = :rev") // not "ack = :x"
            .update_expression("REMOVE unprojected")
            .send()
            .await;
    }
    async fn mark(c: &Client, id: &str, update: &str) {
        let mut u = c.update_item().key("customer_id", s(event_key(id))).update_expression(update);
        u = u.expression_attribute_names("#d", "slack");
        u.send().await;
    }
    async fn ack(c: &Client, id: &str) {
        let r = c.update_item()
            .key("customer_id", AttributeValue::S(id.to_string()))
            .expression_attribute_names("#ack", "ack")
            .return_values(ReturnValue::AllNew);
        let r = r.update_expression("SET #ack = :ack");
        r.send().await;
    }
    '''))
    files = [rust_scan.SourceFile(path=REPO / "x.rs", crate="service", code=src)]
    got = {u.fn: (u.key_attribute, u.key_value, u.attributes, u.return_values)
           for u in rust_scan.dynamodb_updates(files)}
    assert got == {
        "clear": ("customer_id", "s(id)", frozenset({"rev", "unprojected"}), "NONE"),
        "mark": ("customer_id", "s(event_key(id))", None, "NONE"),
        "ack": ("customer_id", "AttributeValue::S(id.to_string())", frozenset({"ack"}), "ALL_NEW"),
    }
    # a file that does not name the DynamoDB SDK has no DynamoDB updates
    other = [rust_scan.SourceFile(path=REPO / "y.rs", crate="service", code="c.update_item().send();")]
    assert rust_scan.dynamodb_updates(other) == []


# --------------------------------------------------------------------------
# The template as `sam deploy` expands it.
# --------------------------------------------------------------------------


def test_sam_expansion_keeps_the_security_settings():
    out = sam_translate.translate()
    res = out["Resources"]
    fns = {k: v for k, v in res.items() if v["Type"] == "AWS::Lambda::Function"}
    assert set(fns) == {"TrainFunction", "ScoreFunction", "RescoreFunction"}
    for fid, fn in fns.items():
        p = fn["Properties"]
        assert p["Architectures"] == ["arm64"] and p["Runtime"] == "provided.al2023", fid
        assert p["LoggingConfig"]["LogFormat"] == "JSON", fid
        assert p["TracingConfig"] == {"Mode": "Active"}, fid
        assert p["Role"] == {"Fn::GetAtt": [f"{fid.removesuffix('Function')}Role", "Arn"]}, fid
    urls = {k: v for k, v in res.items() if v["Type"] == "AWS::Lambda::Url"}
    assert list(urls) == ["ScoreFunctionUrl"]
    assert urls["ScoreFunctionUrl"]["Properties"]["AuthType"] == "AWS_IAM"
    assert "Cors" not in urls["ScoreFunctionUrl"]["Properties"]
    # SAM must not have added roles or public permissions of its own
    assert not [k for k, v in res.items() if v["Type"] == "AWS::IAM::Role" and k.endswith("FunctionRole")]
    for k, v in res.items():
        if v["Type"] == "AWS::Lambda::Permission":
            assert v["Properties"].get("Principal") != "*", k


# --------------------------------------------------------------------------
# The rescore state machine, run on a small simulator (tests/asl_sim.py).
# --------------------------------------------------------------------------

import asl_sim  # noqa: E402


def substituted_definition(template) -> dict:
    """The definition as deployed with the parameters' defaults."""
    (sm,) = resources(template, "AWS::StepFunctions::StateMachine").values()
    params = template["Parameters"]
    values = {
        "Bucket": "churn-risk-data-123456789012-eu-west-1",
        "SnapshotPrefix": params["SnapshotPrefix"]["Default"],
        "RescoreFunctionArn": "arn:aws:lambda:eu-west-1:123456789012:function:churn-risk-rescore",
        "FailureQueueUrl": "https://sqs.eu-west-1.amazonaws.com/123456789012/churn-risk-failures",
        "MaxConcurrency": str(params["RescoreMaxConcurrency"]["Default"]),
        "DirectMaxObjects": str(params["RescoreDirectMaxObjects"]["Default"]),
    }
    assert set(sm["Properties"]["DefinitionSubstitutions"]) == set(values)
    text = json.dumps(sm["Properties"]["Definition"])
    for k, v in values.items():
        text = text.replace("${" + k + "}", v)
    assert "${" not in text, "unsubstituted variable in the definition"
    return json.loads(text)


RESCORE_ARN = "arn:aws:lambda:eu-west-1:123456789012:function:churn-risk-rescore"


class FakeAws:
    """Answers the state machine's tasks; records what was asked.

    The rescore function is modelled on its contract: a shard invocation
    leaves a shard record under its run id (also when the snapshot check
    refuses it, before the function fails with ChurnInputError "snapshot
    refused: ..."), {"finish_run": run_id} aggregates them, and
    {"notify_run": run_id} delivers the pending events (a destination being
    down is part of its answer, not an error)."""

    def __init__(self, objects, fail_invocations=(), errors=None, finish=None):
        self.objects = objects  # [(key, size)]
        self.fail = set(fail_invocations)
        # snapshot (or "finish_run", "notify_run") -> what its invocations
        # raise, one per attempt, in order: an errorType, or (errorType, errorMessage)
        self.errors = {k: list(v) for k, v in (errors or {}).items()}
        # what finish_run answers; None: aggregate the shard records
        self.finish = finish
        self.invocations, self.messages, self.listings, self.written = [], [], [], []
        self.shard_records: dict[str, list[dict]] = {}

    @property
    def rescores(self):
        return [p for p in self.invocations if "snapshot" in p]

    @property
    def finishes(self):
        return [p for p in self.invocations if "finish_run" in p]

    @property
    def notifies(self):
        return [p for p in self.invocations if "notify_run" in p]

    def _invoke(self, params):
        assert params["FunctionName"] == RESCORE_ARN
        payload = params["Payload"]
        self.invocations.append(payload)
        key = next((k for k in ("finish_run", "notify_run") if k in payload), None) or payload["snapshot"]
        if key in self.fail:
            raise asl_sim.TaskFailed("RescoreError", "bad shard")
        pending = self.errors.get(key)
        if pending:
            error = pending.pop(0)
            etype, message = error if isinstance(error, tuple) else (error, "from the function")
            if payload.get("shard") and message.startswith("snapshot refused:"):
                self.shard_records.setdefault(payload["run_id"], []).append(
                    {"snapshot": payload["snapshot"], "refused": True, "forced": False})
            # Lambda's error payload, as Step Functions puts it in Cause
            raise asl_sim.TaskFailed(etype, json.dumps({"errorType": etype, "errorMessage": message}))
        if "notify_run" in payload:
            return {"StatusCode": 200, "Payload": {
                "run_id": payload["notify_run"], "delivered": {"slack": 2, "webhook": 2, "eventbridge": 2},
                "pending": 0, "failures": []}}
        if "finish_run" in payload:
            if self.finish is not None:
                return {"StatusCode": 200, "Payload": self.finish}
            records = self.shard_records.get(payload["finish_run"], [])
            refused = sum(r["refused"] for r in records)
            return {"StatusCode": 200, "Payload": {
                "run_id": payload["finish_run"], "status": "refuse" if refused else "ok",
                "shards": len(records), "refused_shards": refused,
                "forced": any(r["forced"] for r in records)}}
        if payload.get("shard"):
            self.shard_records.setdefault(payload["run_id"], []).append(
                {"snapshot": payload["snapshot"], "refused": False, "forced": payload["force"]})
        return {"StatusCode": 200, "Payload": {"scored": 10, "written": 1}}

    def __call__(self, resource, params):
        if resource == "arn:aws:states:::aws-sdk:s3:listObjectsV2":
            self.listings.append(params)
            assert isinstance(params["MaxKeys"], int)
            keys = [k for k, _ in self.objects if k.startswith(params["Prefix"])]
            return {"KeyCount": min(len(keys), params["MaxKeys"]), "IsTruncated": len(keys) > params["MaxKeys"]}
        if resource == "arn:aws:states:::s3:listObjectsV2":
            return [{"Key": k, "Size": s, "Etag": "x", "StorageClass": "STANDARD"}
                    for k, s in self.objects if k.startswith(params["Prefix"])]
        if resource == "arn:aws:states:::lambda:invoke":
            return self._invoke(params)
        if resource == "arn:aws:states:::s3:putObject":
            self.written.append(params)
            return {"ResultWriterDetails": {"Bucket": params["Bucket"], "Key": params["Prefix"] + "/manifest.json"}}
        if resource == "arn:aws:states:::sqs:sendMessage":
            self.messages.append(params)
            return {"MessageId": "m1"}
        raise AssertionError(f"unexpected task {resource}")


BUCKET_URI = "s3://churn-risk-data-123456789012-eu-west-1/"
RUN_ID = "exec-1"  # the simulator's execution name


def direct(prefix="snapshots/latest/", force=False):
    """The payload of a direct (whole-snapshot) rescore."""
    return {"snapshot": BUCKET_URI + prefix, "run_id": RUN_ID, "force": force}


def shard(key, force=False):
    """The payload of one shard's rescore in the Distributed Map."""
    return {"snapshot": BUCKET_URI + key, "run_id": RUN_ID, "force": force, "shard": True}


REFUSED = ("ChurnInputError", "snapshot refused: PSI 0.41 of logins_30d over 0.25")

SHARDS = [("snapshots/latest/part-0.csv", 1), ("snapshots/latest/part-1.csv", 1),
          ("snapshots/latest/part-2.csv", 1)]


def test_state_machine_rescores_a_one_object_snapshot_directly(template):
    aws = FakeAws([("snapshots/latest/customers.parquet", 1000)])
    status, out = asl_sim.run(substituted_definition(template), {}, aws)
    assert status == "SUCCEEDED"
    # the run id is the execution's name; force defaults to false; a direct
    # run writes its own run record and delivers its own events at its end,
    # so no finish_run and no notify_run
    assert aws.invocations == [direct()]
    assert aws.listings[0]["MaxKeys"] == 2 and aws.listings[0]["Prefix"] == "snapshots/latest/"
    assert out["result"]["summary"] == {"scored": 10, "written": 1}
    assert not aws.messages


def test_state_machine_fans_out_one_invocation_per_shard_then_finishes_the_run(template):
    aws = FakeAws([("snapshots/latest/", 0), ("snapshots/latest/_SUCCESS", 0),
                   ("snapshots/latest/part-0000.csv", 500), ("snapshots/latest/part-0001.csv", 700),
                   ("snapshots/other/part-0000.csv", 9)])
    trace = []
    status, out = asl_sim.run(substituted_definition(template), {}, aws, trace=trace)
    assert status == "SUCCEEDED", out
    assert "RescoreShards" in trace and "RescoreWhole" not in trace
    # every shard gets the parent's execution name as run id (not its child
    # execution's), FinishRun comes once, after the last shard, then the
    # notify step delivers the run's events
    assert aws.invocations == [shard("snapshots/latest/part-0000.csv"),
                               shard("snapshots/latest/part-0001.csv"),
                               {"finish_run": RUN_ID},
                               {"notify_run": RUN_ID}]
    assert aws.written and aws.written[0]["Prefix"] == "rescore-runs"
    assert out["run"]["run"] == {"run_id": RUN_ID, "status": "ok", "shards": 2, "refused_shards": 0, "forced": False}
    assert out["notify"]["delivery"]["run_id"] == RUN_ID and "notify_error" not in out
    assert trace[-4:] == ["FinishRun", "Notify", "RunVerdict", "Done"]


def test_run_id_is_the_execution_name_also_inside_the_map(template):
    """Each Distributed Map item runs as a child execution with a name of its
    own: the run id must come from the parent (ItemSelector), never from
    $$.Execution inside the ItemProcessor."""
    (sm,) = resources(template, "AWS::StepFunctions::StateMachine").values()
    states = sm["Properties"]["Definition"]["States"]
    processor = states["RescoreShards"]["ItemProcessor"]
    assert "$$.Execution" not in json.dumps(processor)
    context = {"Execution": {"Id": "arn:exec:daily", "Name": "2026-11-23-daily", "Input": {}}}
    aws = FakeAws(SHARDS[:2])
    status, _ = asl_sim.run(substituted_definition(template), {}, aws, context=context)
    assert status == "SUCCEEDED"
    assert {p["run_id"] for p in aws.rescores} == {"2026-11-23-daily"}
    assert aws.finishes == [{"finish_run": "2026-11-23-daily"}]
    assert aws.notifies == [{"notify_run": "2026-11-23-daily"}]


@pytest.mark.parametrize("force", [True, False])
def test_force_from_the_input_reaches_every_payload(template, force):
    aws = FakeAws(SHARDS)
    status, _ = asl_sim.run(substituted_definition(template), {"force": force}, aws)
    assert status == "SUCCEEDED"
    assert aws.rescores == [shard(k, force=force) for k, _ in SHARDS]
    aws = FakeAws([("snapshots/latest/all.csv", 1)])
    status, _ = asl_sim.run(substituted_definition(template), {"force": force}, aws)
    assert status == "SUCCEEDED"
    assert aws.invocations == [direct(force=force)]


@pytest.mark.parametrize("force", ["true", 1, None, {"on": True}])
def test_a_force_that_is_not_a_boolean_is_refused_before_anything_runs(template, force):
    aws = FakeAws(SHARDS)
    status, out = asl_sim.run(substituted_definition(template), {"force": force}, aws)
    assert status == "FAILED" and out["Error"] == "InvalidInput"
    assert not aws.listings and not aws.invocations
    (msg,) = aws.messages
    assert msg["MessageBody"]["error"]["Error"] == "InvalidInput"


def test_a_refused_shard_does_not_stop_the_others_and_fails_the_run(template):
    refused = BUCKET_URI + "snapshots/latest/part-1.csv"
    aws = FakeAws(SHARDS, errors={refused: [REFUSED]})
    trace = []
    status, out = asl_sim.run(substituted_definition(template), {}, aws, trace=trace)
    # every shard ran, the refused one once (input errors are not retried)
    assert aws.rescores == [shard(k) for k, _ in SHARDS]
    assert "ShardRejected" in trace
    # the map itself succeeded: its results hold the refused item with its error
    (results,) = [w["results"] for w in aws.written]
    (rejected,) = [r for r in results if r.get("refused")]
    assert rejected["key"] == "snapshots/latest/part-1.csv"
    assert rejected["error"]["Error"] == "ChurnInputError"
    assert "snapshot refused:" in rejected["error"]["Cause"]
    # then FinishRun with the execution name, whose "refuse" fails the run,
    # after the notify step delivered the events of the shards that wrote
    assert aws.invocations[-2:] == [{"finish_run": RUN_ID}, {"notify_run": RUN_ID}]
    assert trace.index("Notify") < trace.index("SnapshotRefused")
    assert status == "FAILED" and out["Error"] == "SnapshotRefused", out
    assert "1 of 3 shards" in out["Cause"] and f"runs/{RUN_ID}.json" in out["Cause"]
    assert "force" in out["Cause"]
    (msg,) = aws.messages
    assert msg["MessageBody"]["error"]["Error"] == "SnapshotRefused"
    assert msg["MessageBody"]["run_id"] == RUN_ID
    assert trace[-4:] == ["RunVerdict", "SnapshotRefused", "ReportFailure", "Failed"]


@pytest.mark.parametrize("status", ["ok", "warn"])
def test_finish_run_ok_or_warn_ends_in_done(template, status):
    record = {"run_id": RUN_ID, "status": status, "shards": 3, "refused_shards": 0, "forced": False}
    aws = FakeAws(SHARDS, finish=record)
    trace = []
    result, out = asl_sim.run(substituted_definition(template), {}, aws, trace=trace)
    assert result == "SUCCEEDED", out
    assert trace[-1] == "Done" and not aws.messages
    assert out["run"]["run"] == record


def test_finish_run_refuse_ends_in_report_failure(template):
    """What FinishRun answers decides, whatever the shards did (a forced
    shard of a refused run, a refused record of an earlier attempt)."""
    record = {"run_id": RUN_ID, "status": "refuse", "shards": 3, "refused_shards": 2, "forced": False}
    aws = FakeAws(SHARDS, finish=record)
    trace = []
    status, out = asl_sim.run(substituted_definition(template), {}, aws, trace=trace)
    assert status == "FAILED" and out["Error"] == "SnapshotRefused"
    assert "2 of 3 shards" in out["Cause"]
    assert trace[-2:] == ["ReportFailure", "Failed"]
    assert len(aws.messages) == 1


@pytest.mark.parametrize("record", [{"run_id": RUN_ID}, {"run_id": RUN_ID, "status": "refused"}, None])
def test_a_run_record_without_a_known_status_fails_the_run(template, record):
    aws = FakeAws(SHARDS, finish=record if record is not None else {})
    status, out = asl_sim.run(substituted_definition(template), {}, aws)
    assert status == "FAILED" and out["Error"] == "RunRecordInvalid"
    assert RUN_ID in out["Cause"]
    assert len(aws.messages) == 1


def test_a_failing_finish_run_is_retried_if_transient_then_reported(template):
    aws = FakeAws(SHARDS, errors={"finish_run": ["ChurnTransientError"]})
    status, out = asl_sim.run(substituted_definition(template), {}, aws)
    assert status == "SUCCEEDED", out
    assert aws.finishes == [{"finish_run": RUN_ID}] * 2
    aws = FakeAws(SHARDS, errors={"finish_run": ["ChurnInternalError"]})
    status, out = asl_sim.run(substituted_definition(template), {}, aws)
    assert status == "FAILED" and out["Error"] == "ChurnInternalError"
    assert len(aws.finishes) == 1 and len(aws.messages) == 1


def test_a_refused_direct_run_goes_to_report_failure(template):
    aws = FakeAws([("snapshots/latest/all.csv", 1)], errors={BUCKET_URI + "snapshots/latest/": [REFUSED]})
    status, out = asl_sim.run(substituted_definition(template), {}, aws)
    assert status == "FAILED" and out["Error"] == "ChurnInputError"
    assert "snapshot refused:" in out["Cause"]
    assert aws.invocations == [direct()], "not retried, no finish_run for a direct run"
    assert len(aws.messages) == 1


def test_state_machine_input_overrides_prefix_and_sizing(template):
    aws = FakeAws([("snapshots/2026-11-23/a.csv", 5)])
    status, _ = asl_sim.run(substituted_definition(template),
                            {"prefix": "snapshots/2026-11-23/", "direct_max_objects": 0, "max_concurrency": 3}, aws)
    assert status == "SUCCEEDED"
    assert aws.listings[0] == {"Bucket": "churn-risk-data-123456789012-eu-west-1",
                               "Prefix": "snapshots/2026-11-23/", "MaxKeys": 1}
    assert aws.rescores == [shard("snapshots/2026-11-23/a.csv")]


def test_state_machine_reports_a_missing_snapshot(template):
    aws = FakeAws([])
    status, out = asl_sim.run(substituted_definition(template), {}, aws)
    assert status == "FAILED" and out["Error"] == "SnapshotMissing"
    assert "snapshots/latest/" in out["Cause"]
    (msg,) = aws.messages
    assert msg["QueueUrl"].endswith("/churn-risk-failures")
    assert msg["MessageBody"]["error"]["Error"] == "SnapshotMissing"
    assert msg["MessageBody"]["execution"] == "arn:exec:1"
    assert msg["MessageBody"]["run_id"] == RUN_ID
    assert not aws.invocations


def test_state_machine_reports_a_failed_shard(template):
    bad = BUCKET_URI + "snapshots/latest/part-1.csv"
    aws = FakeAws([("snapshots/latest/part-0.csv", 1), ("snapshots/latest/part-1.csv", 1)], fail_invocations={bad})
    status, out = asl_sim.run(substituted_definition(template), {}, aws)
    assert status == "FAILED" and out["Error"] == "States.ExceedToleratedFailureThreshold"
    (msg,) = aws.messages
    assert msg["MessageBody"]["prefix"] == "snapshots/latest/"
    assert msg["MessageBody"]["error"]["Error"] == "States.ExceedToleratedFailureThreshold"
    # The shards that ran still leave the run's record before the failure is reported.
    assert aws.finishes == [{"finish_run": RUN_ID}]


def test_a_failing_finish_after_a_failed_map_still_reports_the_map_error(template):
    bad = BUCKET_URI + "snapshots/latest/part-1.csv"
    aws = FakeAws([("snapshots/latest/part-0.csv", 1), ("snapshots/latest/part-1.csv", 1)],
                  fail_invocations={bad}, errors={"finish_run": ["ChurnInputError"]})
    status, out = asl_sim.run(substituted_definition(template), {}, aws)
    assert status == "FAILED" and out["Error"] == "States.ExceedToleratedFailureThreshold"
    (msg,) = aws.messages
    assert msg["MessageBody"]["error"]["Error"] == "States.ExceedToleratedFailureThreshold"


def test_state_machine_reports_a_failed_direct_run(template):
    aws = FakeAws([("snapshots/latest/all.csv", 1)], fail_invocations={BUCKET_URI + "snapshots/latest/"})
    status, out = asl_sim.run(substituted_definition(template), {}, aws)
    assert status == "FAILED" and out == {"Error": "RescoreError", "Cause": "bad shard"}
    assert len(aws.messages) == 1


ERROR_TYPES = ("ChurnInputError", "ChurnTransientError", "ChurnInternalError")


def test_error_types_are_the_ones_the_functions_report():
    """The errorType names the state machine matches are the ones the Rust
    code gives each error kind (model/src/error.rs)."""
    source = (REPO / "model" / "src" / "error.rs").read_text()
    for name in ERROR_TYPES:
        assert f'"{name}"' in source, f"{name} is not an errorType of the functions"


def test_rescore_invocations_retry_transient_errors_only(template):
    (sm,) = resources(template, "AWS::StepFunctions::StateMachine").values()
    states = dict(walk_states(sm["Properties"]["Definition"]["States"]))
    invokes = [s for s in states.values() if s.get("Resource") == "arn:aws:states:::lambda:invoke"]
    assert invokes
    for s in invokes:
        retried = {e for r in s["Retry"] for e in r["ErrorEquals"]}
        assert "States.ALL" not in retried, "input errors and bugs must not be retried"
        assert "ChurnTransientError" in retried
        assert not retried & {"ChurnInputError", "ChurnInternalError"}


def test_state_machine_retries_a_transient_failure_and_succeeds(template):
    snapshot = BUCKET_URI + "snapshots/latest/"
    aws = FakeAws([("snapshots/latest/all.csv", 1)], errors={snapshot: ["ChurnTransientError"]})
    status, out = asl_sim.run(substituted_definition(template), {}, aws)
    assert status == "SUCCEEDED", out
    assert aws.invocations == [direct()] * 2
    assert not aws.messages


@pytest.mark.parametrize("error", ["ChurnInputError", "ChurnInternalError"])
def test_state_machine_sends_input_errors_and_bugs_straight_to_failure(template, error):
    snapshot = BUCKET_URI + "snapshots/latest/"
    aws = FakeAws([("snapshots/latest/all.csv", 1)], errors={snapshot: [error, error]})
    status, out = asl_sim.run(substituted_definition(template), {}, aws)
    assert status == "FAILED" and out["Error"] == error
    assert len(aws.invocations) == 1, "not retried"
    assert len(aws.messages) == 1


def test_a_shard_with_bad_input_fails_the_run_without_retries(template):
    """An input error that is not a refusal (an unreadable or malformed
    shard) still fails the item and so the map, as before the snapshot check:
    only refusals are tolerated, because only they leave a shard record."""
    bad = BUCKET_URI + "snapshots/latest/part-1.csv"
    aws = FakeAws([("snapshots/latest/part-0.csv", 1), ("snapshots/latest/part-1.csv", 1)],
                  errors={bad: [("ChurnInputError", "snapshot: line 7: 3 fields, header has 5")]})
    trace = []
    status, out = asl_sim.run(substituted_definition(template), {}, aws, trace=trace)
    assert status == "FAILED" and out["Error"] == "States.ExceedToleratedFailureThreshold"
    assert aws.rescores.count(shard("snapshots/latest/part-1.csv")) == 1
    assert "ShardFailed" in trace and "ShardRejected" not in trace
    assert trace.index("FinishFailedRun") < trace.index("ReportFailure")
    assert aws.finishes == [{"finish_run": RUN_ID}]


def test_a_shard_bug_is_not_caught_as_a_refusal(template):
    bad = BUCKET_URI + "snapshots/latest/part-1.csv"
    aws = FakeAws(SHARDS, errors={bad: [("ChurnInternalError", "snapshot refused: but by a bug")]})
    trace = []
    status, out = asl_sim.run(substituted_definition(template), {}, aws, trace=trace)
    assert status == "FAILED" and out["Error"] == "States.ExceedToleratedFailureThreshold"
    assert "ShardRejected" not in trace and "FinishRun" not in trace


# --------------------------------------------------------------------------
# The notify step: delivering a sharded run's risk-change events.
# --------------------------------------------------------------------------


def test_notify_runs_after_the_finished_map_with_the_execution_name(template):
    context = {"Execution": {"Id": "arn:exec:daily", "Name": "2026-11-23-daily", "Input": {}}}
    aws = FakeAws(SHARDS)
    trace = []
    status, out = asl_sim.run(substituted_definition(template), {}, aws, context=context, trace=trace)
    assert status == "SUCCEEDED", out
    assert aws.invocations[-2:] == [{"finish_run": "2026-11-23-daily"}, {"notify_run": "2026-11-23-daily"}]
    assert trace.index("FinishRun") < trace.index("Notify") < trace.index("RunVerdict")
    # the answer is kept for the execution's history; the verdict still reads the run record
    assert out["notify"]["delivery"] == {"run_id": "2026-11-23-daily",
                                         "delivered": {"slack": 2, "webhook": 2, "eventbridge": 2},
                                         "pending": 0, "failures": []}
    assert out["run"]["run"]["status"] == "ok"


LAMBDA_DOWN = ["Lambda.ServiceException"] * 7  # more than the 6 retries


@pytest.mark.parametrize("errors", [["ChurnInternalError"], ["ChurnInputError"],
                                    ["ChurnTransientError"] * 3, LAMBDA_DOWN, ["States.Timeout"]])
@pytest.mark.parametrize("run_status", ["ok", "warn", "refuse"])
def test_a_failing_notify_never_changes_the_verdict(template, errors, run_status):
    """Whatever the notify step fails with, the run ends as its record says:
    ok / warn succeed, refuse fails as SnapshotRefused (one failure message,
    the refusal's); the step's error is kept in $.notify_error."""
    record = {"run_id": RUN_ID, "status": run_status, "shards": 3,
              "refused_shards": 1 if run_status == "refuse" else 0, "forced": False}
    aws = FakeAws(SHARDS, finish=record, errors={"notify_run": list(errors)})
    trace = []
    status, out = asl_sim.run(substituted_definition(template), {}, aws, trace=trace)
    assert "Notify" in trace and trace.index("Notify") < trace.index("RunVerdict")
    if run_status == "refuse":
        assert status == "FAILED" and out["Error"] == "SnapshotRefused", out
        (msg,) = aws.messages
        assert msg["MessageBody"]["error"]["Error"] == "SnapshotRefused"
    else:
        assert status == "SUCCEEDED", out
        assert not aws.messages
        assert out["notify_error"]["Error"] == errors[0]
        assert out["run"]["run"] == record
    # transient errors and Lambda's own are retried, input errors and bugs not
    expected_attempts = {"ChurnTransientError": 3, "Lambda.ServiceException": 7}.get(errors[0], 1)
    assert len(aws.notifies) == expected_attempts


def test_a_transient_notify_failure_is_retried_then_delivers(template):
    aws = FakeAws(SHARDS, errors={"notify_run": ["ChurnTransientError"]})
    status, out = asl_sim.run(substituted_definition(template), {}, aws)
    assert status == "SUCCEEDED", out
    assert aws.notifies == [{"notify_run": RUN_ID}] * 2
    assert "notify_error" not in out and out["notify"]["delivery"]["pending"] == 0


def test_a_refused_run_delivers_its_events_before_it_fails(template):
    """The accepted shards of a refused run wrote real flag changes: their
    events are delivered, then the run fails as SnapshotRefused."""
    aws = FakeAws(SHARDS, errors={BUCKET_URI + "snapshots/latest/part-2.csv": [REFUSED]})
    trace = []
    status, out = asl_sim.run(substituted_definition(template), {}, aws, trace=trace)
    assert status == "FAILED" and out["Error"] == "SnapshotRefused"
    assert aws.notifies == [{"notify_run": RUN_ID}]
    assert trace[-6:] == ["FinishRun", "Notify", "RunVerdict", "SnapshotRefused", "ReportFailure", "Failed"]


@pytest.mark.parametrize("notify_errors", [[], ["ChurnInternalError"]])
def test_a_failed_map_still_delivers_then_reports_the_maps_error(template, notify_errors):
    bad = BUCKET_URI + "snapshots/latest/part-1.csv"
    aws = FakeAws(SHARDS, fail_invocations={bad}, errors={"notify_run": notify_errors})
    trace = []
    status, out = asl_sim.run(substituted_definition(template), {}, aws, trace=trace)
    assert status == "FAILED" and out["Error"] == "States.ExceedToleratedFailureThreshold"
    assert trace[-4:] == ["FinishFailedRun", "NotifyFailedRun", "ReportFailure", "Failed"]
    assert aws.notifies == [{"notify_run": RUN_ID}]
    (msg,) = aws.messages
    assert msg["MessageBody"]["error"]["Error"] == "States.ExceedToleratedFailureThreshold"


def test_a_failing_finish_run_still_delivers_then_reports_its_error(template):
    aws = FakeAws(SHARDS, errors={"finish_run": ["ChurnInternalError"]})
    trace = []
    status, out = asl_sim.run(substituted_definition(template), {}, aws, trace=trace)
    assert status == "FAILED" and out["Error"] == "ChurnInternalError"
    assert trace[-4:] == ["FinishRun", "NotifyFailedRun", "ReportFailure", "Failed"]
    assert aws.notifies == [{"notify_run": RUN_ID}]
    assert len(aws.messages) == 1


def test_the_state_machine_never_notifies_a_direct_run(template):
    """A direct invocation delivers its own events at its end (it is not sent
    "notify": false); refused or failed, it wrote nothing to deliver, and
    what an earlier run left pending goes with the next delivery."""
    for errors in ({}, {BUCKET_URI + "snapshots/latest/": [REFUSED]},
                   {BUCKET_URI + "snapshots/latest/": ["ChurnInternalError"]}):
        aws = FakeAws([("snapshots/latest/all.csv", 1)], errors=errors)
        asl_sim.run(substituted_definition(template), {}, aws)
        assert aws.invocations == [direct()], errors
    (sm,) = resources(template, "AWS::StepFunctions::StateMachine").values()
    states = sm["Properties"]["Definition"]["States"]
    assert "notify" not in states["RescoreWhole"]["Parameters"]["Payload"]


# --------------------------------------------------------------------------
# Snapshot-check alarms.
# --------------------------------------------------------------------------


def test_snapshot_check_alarms(template):
    alarms = resources(template, "AWS::CloudWatch::Alarm")
    refused = alarms["RescoreRefusedAlarm"]["Properties"]
    drift = alarms["DriftAlertAlarm"]["Properties"]
    for p in (refused, drift):
        assert p["Namespace"] == "ChurnRisk"
        assert p["Dimensions"] == [{"Name": "function", "Value": "rescore"}]
        assert p["TreatMissingData"] == "notBreaching"
        assert p["EvaluationPeriods"] == 1 and p["Period"] == 300
    assert refused["MetricName"] == "RefusedRuns" and refused["Statistic"] == "Sum"
    assert refused["Threshold"] == 1 and refused["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert drift["MetricName"] == "MaxPsi" and drift["Statistic"] == "Maximum"
    assert drift["Threshold"] == {"Ref": "DriftAlarmPsi"}
    assert drift["ComparisonOperator"] == "GreaterThanThreshold"
    param = template["Parameters"]["DriftAlarmPsi"]
    assert param["Type"] == "Number" and float(param["Default"]) == 0.25
    assert 0 < float(param["MinValue"]) <= 0.1 and float(param["MaxValue"]) >= 1


def test_every_alarm_notifies_the_same_topic(template):
    alarms = resources(template, "AWS::CloudWatch::Alarm")
    expected = {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}
    wrong = [aid for aid, a in alarms.items() if a["Properties"].get("AlarmActions") != expected]
    assert not wrong, f"alarms without the stack's alarm actions: {wrong}"
    assert {"RescoreRefusedAlarm", "DriftAlertAlarm"} <= set(alarms)


def test_notify_backlog_alarm(template):
    """Events left pending after a delivery attempt (metric of churn-rescore)
    over about a day, notifying the stack's alarm topic like the others."""
    p = resources(template, "AWS::CloudWatch::Alarm")["NotifyBacklogAlarm"]["Properties"]
    assert (p["Namespace"], p["MetricName"]) == ("ChurnRisk", "EventsPending")
    assert p["Dimensions"] == [{"Name": "function", "Value": "rescore"}]
    assert p["Statistic"] == "Sum" and 6 * 3600 <= p["Period"] * p["EvaluationPeriods"] <= 86400
    assert p["Threshold"] == 0 and p["ComparisonOperator"] == "GreaterThanThreshold"
    assert p["TreatMissingData"] == "notBreaching"


# --------------------------------------------------------------------------
# The event bus, its example rule and the alert topic.
# --------------------------------------------------------------------------

# Fields of the risk-change event (the detail of every EventBridge event).
EVENT_FIELDS = {"id", "type", "customer_id", "old_band", "new_band", "churn_probability",
                "previous_probability", "reasons", "attributes", "model_id", "scored_at", "run_id"}


def test_event_bus_and_example_rule(template):
    res = template["Resources"]
    bus = res["RiskEventBus"]["Properties"]
    assert bus["Name"] == {"Fn::Sub": "${NamePrefix}-risk-events"}
    (rule_id,) = resources(template, "AWS::Events::Rule")
    rule = res[rule_id]["Properties"]
    assert ref_target(rule["EventBusName"]) == "RiskEventBus"
    assert rule["State"] == "ENABLED"
    assert rule["EventPattern"] == {"source": [EVENT_SOURCE], "detail-type": [EVENT_DETAIL_TYPE],
                                    "detail": {"type": ["became_at_risk", "escalated"]}}
    (target,) = rule["Targets"]
    assert ref_target(target["Arn"]) == "RiskAlertTopic"
    # the readable message reads fields of the event only
    paths = target["InputTransformer"]["InputPathsMap"]
    assert {v.removeprefix("$.detail.") for v in paths.values()} <= EVENT_FIELDS
    assert all(v.startswith("$.detail.") for v in paths.values())
    template_text = target["InputTransformer"]["InputTemplate"]
    assert set(re.findall(r"<([A-Za-z0-9_]+)>", template_text)) == set(paths)
    assert template_text.count("<") == template_text.count(">") == len(re.findall(r"<[A-Za-z0-9_]+>", template_text))
    json.loads(template_text.replace("<", "").replace(">", ""))  # a JSON string once filled in


def test_alert_topic_is_encrypted_and_only_the_rule_publishes(template):
    res = template["Resources"]
    topic = res["RiskAlertTopic"]["Properties"]
    key_id = ref_target(topic["KmsMasterKeyId"])
    key = res[key_id]
    assert key["Type"] == "AWS::KMS::Key" and key["Properties"]["EnableKeyRotation"] is True
    statements = as_list(key["Properties"]["KeyPolicy"]["Statement"])
    events = [s for s in statements if s.get("Principal") == {"Service": "events.amazonaws.com"}]
    (use,) = events
    assert set(as_list(use["Action"])) == {"kms:GenerateDataKey*", "kms:Decrypt"}
    assert key_id != "DataKey", "EventBridge's unconditioned KMS grant stays off the data key"
    for s in statements:
        assert s.get("Principal") != "*" and s.get("Principal") != {"AWS": "*"}
    (policy,) = resources(template, "AWS::SNS::TopicPolicy").values()
    assert [ref_target(x) for x in policy["Properties"]["Topics"]] == ["RiskAlertTopic"]
    (publish,) = as_list(policy["Properties"]["PolicyDocument"]["Statement"])
    assert publish["Effect"] == "Allow" and publish["Principal"] == {"Service": "events.amazonaws.com"}
    assert as_list(publish["Action"]) == ["sns:Publish"] and ref_target(publish["Resource"]) == "RiskAlertTopic"
    assert publish["Condition"] == {"ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": ["RiskAlertRule", "Arn"]}}}


def test_email_subscription_only_when_an_address_is_given(template):
    (sid, sub), = resources(template, "AWS::SNS::Subscription").items()
    assert sub["Condition"] == "HasRiskAlertEmail"
    assert template["Conditions"]["HasRiskAlertEmail"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "RiskAlertEmail"}, ""]}]}
    p = sub["Properties"]
    assert p["Protocol"] == "email" and p["Endpoint"] == {"Ref": "RiskAlertEmail"}
    assert ref_target(p["TopicArn"]) == "RiskAlertTopic"
    assert template["Parameters"]["RiskAlertEmail"]["Default"] == ""
    outputs = template["Outputs"]
    assert ref_target(outputs["RiskEventBusName"]["Value"]) == "RiskEventBus"
    assert ref_target(outputs["RiskAlertTopicArn"]["Value"]) == "RiskAlertTopic"


def test_the_event_fields_are_the_codes(source_files):
    """The rule and its message read these fields of the event's JSON."""
    code = rescore_code(source_files)
    missing = sorted(f for f in EVENT_FIELDS if not names_field(code, f))
    assert not missing, f"event fields {missing} are not in functions/"


# --------------------------------------------------------------------------
# The rescore contract in the Rust code: what the state machine sends and
# reads, and what the alarms watch. These fail until the Rust side names
# them (see infra/README.md "Run records").
# --------------------------------------------------------------------------


def rescore_code(source_files) -> str:
    """Production code that runs in churn-rescore: the shared library and the binary."""
    return "\n".join(f.code for f in source_files if f.crate in ("service", "rescore"))


def names_field(code: str, name: str) -> bool:
    """The code reads or writes JSON field `name`: a string literal (`obj.get("name")`,
    `json!({"name": ..})`) or a struct field (serde derives)."""
    return f'"{name}"' in code or re.search(r"\b" + re.escape(name) + r"\s*:\s*[A-Za-z&(<\[]", code) is not None


def test_names_field_helper():
    assert names_field('let s = obj.get("run_id");', "run_id")
    assert names_field("pub struct R { pub refused_shards: usize }", "refused_shards")
    assert not names_field('let s = obj.get("run");', "run_id")
    assert not names_field("let x = shards::Thing;", "shards")


def test_every_payload_field_the_state_machine_sends_is_read_by_rescore(template, source_files):
    (sm,) = resources(template, "AWS::StepFunctions::StateMachine").values()
    sent = set()
    for _name, st in walk_states(sm["Properties"]["Definition"]["States"]):
        if st.get("Resource") == "arn:aws:states:::lambda:invoke":
            sent |= {k.removesuffix(".$") for k in st["Parameters"]["Payload"]}
    assert sent == {"snapshot", "run_id", "force", "shard", "finish_run", "notify_run"}
    code = rescore_code(source_files)
    missing = sorted(k for k in sent if not names_field(code, k))
    assert not missing, f"the rescore event fields {missing} are sent by the state machine but read nowhere in functions/"


def test_finish_run_answer_and_refusal_message_are_the_codes(template, source_files):
    code = rescore_code(source_files)
    problems = []
    # what RunVerdict / SnapshotRefused read of FinishRun's answer
    for field in ("run_id", "status", "shards", "refused_shards", "forced"):
        if not names_field(code, field):
            problems.append(f"finish_run's answer field {field!r} is not in functions/")
    if not ('"refuse"' in code or re.search(r"\bRefuse\b", code)):
        problems.append('no "refuse" run status in functions/')
    # ShardInputError tells a refusal from other input errors by the message
    (sm,) = resources(template, "AWS::StepFunctions::StateMachine").values()
    states = dict(walk_states(sm["Properties"]["Definition"]["States"]))
    (rule,) = states["ShardInputError"]["Choices"]
    prefix = rule["StringMatches"].strip("*")
    assert prefix == "snapshot refused:"
    if '"' + prefix not in code:
        problems.append(f"no error message starting with {prefix!r} in functions/")
    assert not problems, "\n".join(problems)


def test_churnrisk_alarms_watch_metrics_the_code_emits(template, source_files):
    (metrics,) = [f for f in source_files if f.path == FUNCTIONS / "service" / "src" / "metrics.rs"]
    consts = dict(re.findall(r'\bconst\s+([A-Z_]+)\s*:\s*&str\s*=\s*"([^"]*)"', metrics.code))
    namespace, dimension = consts.pop("NAMESPACE"), consts.pop("DIMENSION")
    emitted = set(consts.values())
    assert {"RowsFailed", "Duration"} <= emitted, "metric constants not found in metrics.rs"
    watched = [(aid, a["Properties"]) for aid, a in resources(template, "AWS::CloudWatch::Alarm").items()
               if a["Properties"]["Namespace"] == namespace]
    assert {aid for aid, _ in watched} >= {"RescoreRefusedAlarm", "DriftAlertAlarm"}
    problems = []
    for aid, p in watched:
        if p["MetricName"] not in emitted:
            problems.append(f"{aid} watches {namespace}/{p['MetricName']}, which functions/ never emits")
        (dim,) = p["Dimensions"]
        if not (dim["Name"] == dimension and f'"{dim["Value"]}"' in metrics.code):
            problems.append(f"{aid}: dimension {dim} is not one metrics.rs writes")
    assert not problems, "\n".join(problems)
