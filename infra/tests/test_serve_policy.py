"""infra/policies/churn-serve.json checked against the Rust code `churn serve` runs.

`churn serve` (the web pages and the JSON API on one port) reads the model
store, the run records and the flag table, and writes one thing: an
acknowledgement. Its IAM policy is a file, not a role of the template
(docs/WEB.md, "IAM policy"). These tests keep that file exact:

- The serve path is found in the code, not listed by hand: the port methods
  (`FlagStore`, `ModelStore`, `ModelObjects`, `RunStore`) that the score
  API's routes, the web pages and the model cache call, followed through
  the S3 and DynamoDB adapters (and the ports' shared code) by name to the
  AWS SDK calls they make. `FlagStore::write_scores` (`POST /v1/score` with
  `"persist": true`) is left out on purpose: persisting scores is the score
  function's right, and under this policy AWS refuses it.
- The policy grants exactly the IAM actions of those calls, plus
  `kms:Decrypt` (the stack encrypts the bucket and the table with its data
  key), and no other write than the acknowledgement's `UpdateItem`.
- Its resources are exactly the object keys the code reads, the list
  prefixes it lists and the two risk-list indexes it queries.
- Start-up makes no AWS call outside the policy (no `DescribeTable` or
  `CreateTable`; the one optional call, the notification secret, is
  documented as left unset).
"""

from __future__ import annotations

import fnmatch
import json
import re
from pathlib import Path

import pytest

import rust_scan
from rust_scan import FUNCTIONS, REPO

POLICY = REPO / "infra" / "policies" / "churn-serve.json"
SRC = FUNCTIONS / "service" / "src"
CLI = REPO / "cli" / "src" / "commands"

# The placeholders of the policy file (docs/WEB.md explains them), with the
# example values the checks below substitute.
PLACEHOLDERS = {
    "MODEL_BUCKET": "acme-churn-data",
    "MODELS_PREFIX": "models",
    "FLAG_TABLE": "churn-risk-flags",
    "REGION": "eu-west-1",
    "ACCOUNT_ID": "123456789012",
    "DATA_KEY_ID": "1234abcd-12ab-34cd-56ef-1234567890ab",
}
BUCKET_ARN = "arn:aws:s3:::acme-churn-data"
TABLE_ARN = "arn:aws:dynamodb:eu-west-1:123456789012:table/churn-risk-flags"
KEY_ARN = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"

# Where the serve path starts: the code that handles a request of `churn
# serve`. Relative to functions/service/src: `x` is the module file `x.rs`,
# `x/` that file and every file under `x/`.
ENTRY_MODULES = ("handlers/score_api/", "web/", "model_store/cache")
# The ports and the adapters `churn serve` uses on AWS (and the ports' shared
# code: the blanket `ModelStore` impl, the `FlagStore` default methods).
WALK_MODULES = ("flag_store", "flag_store/dynamo/", "model_store", "model_store/s3",
                "run_store", "run_store/objects")
PORT_TRAITS = {"flag_store.rs": ("FlagStore",), "model_store.rs": ("ModelStore", "ModelObjects"),
               "run_store.rs": ("RunStore",)}
# Port methods the serve path calls that the policy deliberately does not
# allow, with why (docs/WEB.md says the same).
NOT_GRANTED = {
    "write_scores": 'POST /v1/score with "persist": true writes flags (BatchGetItem, PutItem, '
                    "UpdateItem): the score function's right, not the page's",
    "write_batch": "the same writes, through the default method",
}
# Beyond the SDK calls' own actions: objects and table are encrypted with the
# stack's data key (SSE-KMS), so reading them needs kms:Decrypt on it.
IMPLIED = {"kms:Decrypt": "GetObject of SSE-KMS objects (and the table's customer managed key)"}
# What the policy may write: the acknowledgement (set and clear).
ALLOWED_WRITES = {"dynamodb:UpdateItem"}
READ_ACTIONS = {"s3:GetObject", "s3:ListBucket", "dynamodb:GetItem", "dynamodb:Query",
                "dynamodb:BatchGetItem", "dynamodb:Scan", "kms:Decrypt"}


# --------------------------------------------------------------------------
# Helpers.
# --------------------------------------------------------------------------


def rel(path: Path) -> str:
    return str(path.relative_to(SRC))


def in_modules(relpath: str, modules) -> bool:
    """`relpath` belongs to one of `modules` (`x`: the file `x.rs`; `x/`:
    `x.rs` and every file under `x/`)."""
    for m in modules:
        name = m.rstrip("/")
        if relpath == name + ".rs" or (m.endswith("/") and relpath.startswith(m)):
            return True
    return False


def fn_bodies(code: str) -> list[tuple[str, str]]:
    """(name, body) of every `fn` with a body (nested ones too)."""
    skeleton = rust_scan._blank_quoted(code)
    out = []
    for m in re.finditer(r"\bfn\s+([A-Za-z_]\w*)", skeleton):
        j = m.end()
        while j < len(skeleton) and skeleton[j] not in "{;":
            j += 1
        if j >= len(skeleton) or skeleton[j] == ";":
            continue
        out.append((m.group(1), code[j:rust_scan._matching_brace(skeleton, j)]))
    return out


def trait_methods(code: str, trait: str) -> set[str]:
    skeleton = rust_scan._blank_quoted(code)
    m = re.search(r"\btrait\s+" + trait + r"\b[^{]*\{", skeleton)
    assert m, f"trait {trait} not found"
    end = rust_scan._matching_brace(skeleton, m.end() - 1)
    return set(re.findall(r"\bfn\s+([A-Za-z_]\w*)", skeleton[m.start():end]))


def arn_matches(pattern: str, value: str) -> bool:
    """IAM wildcards: `*` any run of characters (`/` included), `?` one."""
    return fnmatch.fnmatchcase(value, pattern)


def as_list(x):
    return x if isinstance(x, list) else [x]


def substituted(text: str) -> str:
    for name, value in PLACEHOLDERS.items():
        text = re.sub(r"\b" + name + r"\b", value, text)
    return text


# --------------------------------------------------------------------------
# Fixtures.
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def raw_policy() -> str:
    return POLICY.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def policy(raw_policy) -> dict:
    return json.loads(substituted(raw_policy))


@pytest.fixture(scope="module")
def grants(policy) -> dict[str, list[dict]]:
    """action -> statements allowing it."""
    out: dict[str, list[dict]] = {}
    for st in policy["Statement"]:
        for a in as_list(st["Action"]):
            out.setdefault(a, []).append(st)
    return out


@pytest.fixture(scope="module")
def service_files():
    files = {rel(f.path): f for f in rust_scan.production_files() if f.crate == "service"}
    assert "flag_store/dynamo.rs" in files and "model_store/s3.rs" in files, \
        "the AWS adapters moved: update WALK_MODULES"
    return files


@pytest.fixture(scope="module")
def sdk_ops():
    return rust_scan.sdk_operations()


@pytest.fixture(scope="module")
def serve_path(service_files, sdk_ops):
    return find_serve_path(service_files, sdk_ops)


def find_serve_path(service_files, sdk_ops):
    """What the serve path calls: (port methods called by the entry code,
    functions reached in the ports and adapters, and the SDK calls in those
    functions as (file, function, call))."""
    methods: set[str] = set()
    for path, traits in PORT_TRAITS.items():
        for t in traits:
            methods |= trait_methods(service_files[path].code, t)
    called: set[str] = set()
    for r, f in service_files.items():
        if in_modules(r, ENTRY_MODULES):
            called |= {m for m in re.findall(r"\.\s*([a-z_]\w*)\s*\(", f.code) if m in methods}
    walk = {r: f for r, f in service_files.items() if in_modules(r, WALK_MODULES)}
    bodies: dict[str, list[str]] = {}
    for f in walk.values():
        for name, body in fn_bodies(f.code):
            bodies.setdefault(name, []).append(body)
    # An SDK builder call (`.query()`) is no call of a function of that name.
    all_ops = {op for ops in sdk_ops.values() for op in ops}
    builder = re.compile(r"\.\s*(" + "|".join(sorted(all_ops, key=len, reverse=True)) + r")\s*\(\s*\)")
    reached: set[str] = set()
    queue = sorted(called - set(NOT_GRANTED))
    while queue:
        name = queue.pop()
        if name in reached or name not in bodies or name in NOT_GRANTED:
            continue
        reached.add(name)
        for body in bodies[name]:
            body = builder.sub(" ", body)
            for callee in re.findall(r"\b([A-Za-z_]\w*)\s*(?:::\s*<[^>]*>)?\s*\(", body):
                if callee in bodies and callee not in reached:
                    queue.append(callee)
    calls = []
    for call in rust_scan.sdk_calls(list(walk.values()), sdk_ops):
        fn = rust_scan.enclosing_fn(walk[rel(call.path)].code, call.offset)
        if fn in reached:
            calls.append((rel(call.path), fn, call))
    return called, reached, calls


# --------------------------------------------------------------------------
# The file itself.
# --------------------------------------------------------------------------


def test_policy_is_a_plain_identity_policy_with_known_placeholders(raw_policy, policy):
    words = set(re.findall(r"\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b|\b[A-Z]{3,}\b", raw_policy))
    assert words <= set(PLACEHOLDERS), f"unknown placeholders {sorted(words - set(PLACEHOLDERS))}"
    assert "${" not in raw_policy, "no ${...}: IAM reads it as a policy variable"
    assert policy["Version"] == "2012-10-17"
    sids = [st.get("Sid") for st in policy["Statement"]]
    assert all(sids) and len(set(sids)) == len(sids), f"each statement needs its own Sid: {sids}"
    for st in policy["Statement"]:
        assert st["Effect"] == "Allow", st["Sid"]
        assert not {"NotAction", "NotResource", "Principal"} & set(st), st["Sid"]
        for a in as_list(st["Action"]):
            assert "*" not in a and "?" not in a, f"{st['Sid']}: wildcard action {a}"
        for r in as_list(st["Resource"]):
            assert r != "*" and r.startswith("arn:aws:"), f"{st['Sid']}: resource {r}"


# --------------------------------------------------------------------------
# Actions against the code.
# --------------------------------------------------------------------------


def test_the_scanner_finds_the_serve_path(serve_path):
    """The walk must see what it claims: the customer read, the risk-list
    queries, the acknowledgement and the object reads and listings; and the
    persist route it leaves out must still exist (else NOT_GRANTED is stale)."""
    called, reached, calls = serve_path
    found = {(r, fn, c.operation) for r, fn, c in calls}
    for expected in [("flag_store/dynamo.rs", "customer", "get_item"),
                     ("flag_store/dynamo/reads.rs", "query_partition", "query"),
                     ("flag_store/dynamo/reads.rs", "set_ack", "update_item"),
                     ("model_store/s3.rs", "get_object", "get_object"),
                     ("model_store/s3.rs", "list_keys", "list_objects_v2")]:
        assert expected in found, f"serve path call {expected} not found; found {sorted(found)}"
    for method in ("customer", "list", "summary", "acknowledge", "unacknowledge", "runs", "run",
                   "outcomes", "current_pointer", "load"):
        assert method in called, f"the serve path no longer calls {method}(): scanner or code moved"
    assert "write_scores" in called, "no persist route any more: drop it from NOT_GRANTED and docs/WEB.md"


def test_policy_grants_exactly_the_actions_of_the_serve_paths_calls(serve_path, grants):
    _, _, calls = serve_path
    needed: dict[str, list[str]] = {}
    for r, fn, call in calls:
        alternatives = rust_scan.iam_alternatives(call.service, call.operation)
        assert len(alternatives) == 1, f"{r} {fn}: .{call.operation}() maps to several action sets"
        for action in alternatives[0]:
            needed.setdefault(action, []).append(f"{r} fn {fn} .{call.operation}()")
    granted = set(grants)
    missing = sorted(set(needed) - granted)
    assert not missing, "the serve path calls what churn-serve.json does not grant:\n" + "\n".join(
        f"{a}: {needed[a]}" for a in missing)
    extra = sorted(granted - set(needed) - set(IMPLIED))
    assert not extra, f"churn-serve.json grants {extra}, which no call of the serve path needs"
    # Every granted action is a call of the flag-store / model-store /
    # run-store code (or implied by one).
    for action in granted:
        assert action in needed or action in IMPLIED, action


def test_the_only_write_is_the_acknowledgement(serve_path, grants, service_files):
    writes = {a for a in grants if a not in READ_ACTIONS}
    assert writes == ALLOWED_WRITES, f"writes granted: {sorted(writes)}"
    _, reached, _ = serve_path
    walk = [f for r, f in service_files.items() if in_modules(r, WALK_MODULES)]
    updates = [u for u in rust_scan.dynamodb_updates(walk) if u.fn in reached]
    assert updates, "no UpdateItem on the serve path: how is an acknowledgement written?"
    for u in updates:
        assert u.attributes is not None and "ack" in u.attributes, \
            f"{rel(u.path)} fn {u.fn}: an UpdateItem on the serve path that is no acknowledgement"
        assert u.attributes <= {"customer_id", "ack", "rev"}, \
            f"{rel(u.path)} fn {u.fn}: the acknowledgement names {sorted(u.attributes)}"
    # Neither PutItem (scores, event items) nor BatchGetItem (persist's read).
    for action in ("dynamodb:PutItem", "dynamodb:BatchGetItem", "dynamodb:BatchWriteItem",
                   "s3:PutObject", "dynamodb:DescribeTable", "dynamodb:CreateTable"):
        assert action not in grants, action


def test_kms_is_decrypt_on_the_data_key_only(grants):
    kms = {a: sts for a, sts in grants.items() if a.startswith("kms:")}
    assert list(kms) == ["kms:Decrypt"]
    (st,) = kms["kms:Decrypt"]
    assert as_list(st["Action"]) == ["kms:Decrypt"] and as_list(st["Resource"]) == [KEY_ARN]


# --------------------------------------------------------------------------
# Resources against the code.
# --------------------------------------------------------------------------


def test_dynamodb_grants_name_the_table_and_the_two_risk_list_indexes(serve_path, grants, service_files):
    dynamo = service_files["flag_store/dynamo.rs"].code
    index = {c: re.search(c + r'\s*:\s*&str\s*=\s*"([^"]+)"', dynamo).group(1)
             for c in ("RISK_LIST_INDEX", "OWNER_LIST_INDEX")}
    (query,) = grants["dynamodb:Query"]
    assert sorted(as_list(query["Resource"])) == sorted(f"{TABLE_ARN}/index/{i}" for i in index.values())
    # the queries of the serve path are the risk-list reads, which name those indexes
    _, _, calls = serve_path
    for r, fn, call in calls:
        if call.operation == "query":
            code = service_files[r].code
            assert r == "flag_store/dynamo/reads.rs" and all(c in code for c in index), (r, fn)
    for action in ("dynamodb:GetItem", "dynamodb:UpdateItem"):
        (st,) = grants[action]
        assert as_list(st["Resource"]) == [TABLE_ARN], action
        assert "Condition" not in st, action


def literal(code: str, text: str, where: str) -> str:
    assert f'"{text}"' in code, f'{where} no longer names "{text}": the object layout changed; ' \
                                f"update churn-serve.json, docs/WEB.md and this test"
    return text


def test_object_reads_and_listings_are_exactly_the_keys_of_the_code(serve_path, grants, service_files):
    called, _, _ = serve_path
    models = service_files["model_store.rs"].code
    runs = service_files["run_store/objects.rs"].code
    prefix = PLACEHOLDERS["MODELS_PREFIX"]
    model_id, run_id = "m-7f3a", "run-20261201T041500Z-3f9a1c"
    # The keys the serve path reads (models under the store's prefix, runs
    # and outcomes at the bucket's root).
    reads = {
        f"{prefix}/{literal(models, 'current.json', 'model_store.rs')}",
        f"{prefix}/{literal(models, 'history.json', 'model_store.rs')}",
        f"{prefix}/" + literal(models, "{model_id}/model.json", "model_store.rs").format(model_id=model_id),
        literal(runs, "runs/{run_id}.json", "run_store/objects.rs").format(run_id=run_id),
        literal(runs, "outcomes/models/{id}.json", "run_store/objects.rs").format(id=model_id),
        literal(runs, "outcomes/latest.json", "run_store/objects.rs"),
    }
    # The stored report beside the model: `/models/{id}/report.html` draws
    # it from the artifact, so it is read only if the serve path starts
    # calling `ModelStore::report`.
    report = f"{prefix}/" + literal(models, "{model_id}/report.html", "model_store.rs").format(model_id=model_id)
    if "report" in called:
        reads.add(report)
    # The prefixes it lists: the models (`list_artifacts`: every key under
    # the store's prefix) and the run index.
    finish = re.search(r'FINISH_INDEX\s*:\s*&str\s*=\s*"([^"]+)"', runs)
    assert finish, "FINISH_INDEX not found in run_store/objects.rs"
    lists = {f"{prefix}/", finish.group(1)}

    objects = [r for st in grants["s3:GetObject"] for r in as_list(st["Resource"])]
    for key in sorted(reads):
        assert any(arn_matches(p, f"{BUCKET_ARN}/{key}") for p in objects), f"GetObject of {key} not granted"
    for p in objects:
        assert any(arn_matches(p, f"{BUCKET_ARN}/{key}") for key in reads), f"GetObject {p} matches no key the code reads"
        if report not in reads:
            assert not arn_matches(p, f"{BUCKET_ARN}/{report}"), f"{p}: the serve path reads no stored report"
        assert not arn_matches(p, f"{BUCKET_ARN}/snapshots/latest/part-0.csv"), f"{p}: snapshots are not the page's"

    (listing,) = grants["s3:ListBucket"]
    assert as_list(listing["Resource"]) == [BUCKET_ARN]
    assert set(listing["Condition"]) == {"StringLike"} and set(listing["Condition"]["StringLike"]) == {"s3:prefix"}
    patterns = as_list(listing["Condition"]["StringLike"]["s3:prefix"])
    # What the code lists, and (so that S3 answers a missing key with 404,
    # not 403) every key it reads.
    for value in sorted(lists | reads):
        assert any(fnmatch.fnmatchcase(value, p) for p in patterns), f"ListBucket does not cover {value!r}"
    for p in patterns:
        assert any(fnmatch.fnmatchcase(v, p) for v in lists | reads), f"ListBucket pattern {p} is not needed"
    assert not any(fnmatch.fnmatchcase("snapshots/latest/", p) for p in patterns)


# --------------------------------------------------------------------------
# Start-up.
# --------------------------------------------------------------------------


def test_start_up_calls_nothing_outside_the_policy(service_files, sdk_ops):
    """`churn serve` builds its stores with `context::services` ->
    `Services::from_config`: no table check (DescribeTable / CreateTable are
    the local-only `create_table_if_missing`), and the one possible AWS
    call, the notification secret, only with CHURN_NOTIFY_SECRET_ARN set
    (docs/WEB.md: leave it unset for `churn serve`)."""
    services = service_files["services.rs"]
    calls = {(c.service, c.operation) for c in rust_scan.sdk_calls([services], sdk_ops)}
    assert calls == {("secretsmanager", "get_secret_value")}, calls
    assert "SECRET_ARN" in services.code
    serve_code = [rust_scan._read_production(CLI / name) for name in ("serve.rs", "context.rs")]
    serve_code += [f.code for r, f in service_files.items()
                   if in_modules(r, ENTRY_MODULES) or r == "services.rs"]
    for code in serve_code:
        assert not re.search(r"\.\s*create_table_if_missing\s*\(", code), \
            "the serve path creates the table: it would need dynamodb:DescribeTable and CreateTable"
