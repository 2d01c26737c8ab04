"""Static facts about the Rust sources of the Lambda functions.

What a deployed function can do is decided by its production code: the crates
under functions/ (the shared `churn-service` library and the three binaries),
without `#[cfg(test)]` items, without modules only compiled for tests or the
`test-support` feature, and without comments. This module extracts from that
code the environment variables it reads and the AWS SDK operations it calls.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FUNCTIONS = REPO / "functions"

# --------------------------------------------------------------------------
# Lexing: split Rust source into code / string / comment segments.
# --------------------------------------------------------------------------

_RAW_STR = re.compile(r'b?r(#*)"')
_CHAR = re.compile(r"b?'(?:\\(?:x[0-9a-fA-F]{2}|u\{[0-9a-fA-F]{1,6}\}|.)|[^\\'\n])'")


def segments(src: str) -> list[tuple[str, str]]:
    """Splits `src` into ("code" | "str" | "comment", text) runs.

    String segments hold the literal's contents (without quotes); comments are
    dropped by callers. Handles nested block comments, raw strings, byte
    strings, escapes and char literals (a `'` not starting a char literal is a
    lifetime or label and stays code).
    """
    out: list[tuple[str, str]] = []
    code: list[str] = []
    i, n = 0, len(src)

    def flush() -> None:
        if code:
            out.append(("code", "".join(code)))
            code.clear()

    while i < n:
        c = src[i]
        if src.startswith("//", i):
            j = src.find("\n", i)
            j = n if j < 0 else j
            flush()
            out.append(("comment", src[i:j]))
            i = j
        elif src.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if src.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif src.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            flush()
            out.append(("comment", src[i:j]))
            i = j
        elif (m := _RAW_STR.match(src, i)) and (i == 0 or not (src[i - 1].isalnum() or src[i - 1] == "_")):
            hashes = m.group(1)
            end = src.find('"' + hashes, m.end())
            end = n if end < 0 else end
            flush()
            out.append(("str", src[m.end():end]))
            i = end + 1 + len(hashes)
        elif c == '"' or (c == "b" and src.startswith('b"', i) and (i == 0 or not (src[i - 1].isalnum() or src[i - 1] == "_"))):
            j = i + (2 if c == "b" else 1)
            buf = []
            while j < n and src[j] != '"':
                if src[j] == "\\" and j + 1 < n:
                    buf.append(src[j : j + 2])
                    j += 2
                else:
                    buf.append(src[j])
                    j += 1
            flush()
            out.append(("str", "".join(buf)))
            i = j + 1
        elif c in "'b" and (m := _CHAR.match(src, i)):
            flush()
            out.append(("str", m.group(0)))
            i = m.end()
        else:
            code.append(c)
            i += 1
    flush()
    return out


def _code_only(segs: list[tuple[str, str]]) -> str:
    """Code with string literals kept (quoted) and comments removed."""
    parts = []
    for kind, text in segs:
        if kind == "code":
            parts.append(text)
        elif kind == "str":
            parts.append('"' + text.replace('"', "'") + '"')
        else:
            parts.append(" ")
    return "".join(parts)


# --------------------------------------------------------------------------
# Removing items compiled only for tests.
# --------------------------------------------------------------------------

_CFG = re.compile(r"#\s*\[\s*cfg\s*\((?P<pred>(?:[^()\]]|\((?:[^()]|\([^()]*\))*\))*)\)\s*\]")
_NONPROD_ATOMS = {"test", 'feature="test-support"'}


def _is_nonprod(pred: str) -> bool:
    p = re.sub(r"\s+", "", pred)
    if p in _NONPROD_ATOMS:
        return True
    m = re.fullmatch(r"any\((.*)\)", p)
    if m:
        atoms = [a for a in m.group(1).split(",") if a]
        return bool(atoms) and all(a in _NONPROD_ATOMS for a in atoms)
    return False


def _matching_brace(code: str, open_at: int) -> int:
    """Index just past the `}` matching the `{` at `open_at` (string contents
    were quoted by `_code_only`, so braces inside them cannot appear)."""
    depth, j = 0, open_at
    in_str = False
    while j < len(code):
        ch = code[j]
        if ch == '"':
            in_str = not in_str
        elif not in_str:
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
                if depth == 0:
                    return j + 1
        j += 1
    return len(code)


def _blank_quoted(code: str) -> str:
    """Same length, string literal contents replaced by spaces (for structure)."""
    return re.sub(r'"[^"]*"', lambda m: '"' + " " * (len(m.group(0)) - 2) + '"', code)


def strip_nonprod(code: str) -> tuple[str, list[str]]:
    """Removes items under a test-only `#[cfg(...)]`. Returns the remaining
    code and the names of test-only `mod x;` declarations (their files are
    not production code either)."""
    skeleton = _blank_quoted(code)
    cut: list[tuple[int, int]] = []
    nonprod_mods: list[str] = []
    for m in _CFG.finditer(skeleton):
        # the skeleton has string contents blanked; read the predicate from the code
        if not _is_nonprod(code[m.start("pred") : m.end("pred")]):
            continue
        # the attributed item ends at the first `;` or at the block opened by
        # the first `{` (whichever comes first) at depth 0
        j = m.end()
        while j < len(skeleton) and skeleton[j] not in "{;":
            j += 1
        head = skeleton[m.end() : j]
        if j < len(skeleton) and skeleton[j] == ";":
            mm = re.search(r"\bmod\s+([A-Za-z_][A-Za-z0-9_]*)\s*$", head)
            if mm:
                nonprod_mods.append(mm.group(1))
            cut.append((m.start(), j + 1))
        else:
            cut.append((m.start(), _matching_brace(skeleton, j)))
    if not cut:
        return code, nonprod_mods
    out, last = [], 0
    for a, b in sorted(cut):
        if a < last:
            continue
        out.append(code[last:a])
        last = b
    out.append(code[last:])
    return "".join(out), nonprod_mods


# --------------------------------------------------------------------------
# Production files.
# --------------------------------------------------------------------------


@dataclasses.dataclass
class SourceFile:
    path: Path
    crate: str  # "service", "train", "score", "rescore"
    code: str  # production code, comments removed, string literals quoted


def _crate_roots(functions_dir: Path = FUNCTIONS) -> dict[str, Path]:
    roots = {}
    for toml in sorted(functions_dir.glob("*/Cargo.toml")):
        roots[toml.parent.name] = toml.parent / "src"
    return roots


_MOD_DECL = re.compile(
    r'(?:#\s*\[\s*path\s*=\s*"(?P<path>[^"]+)"\s*\]\s*)?'
    r"(?:pub(?:\s*\([^)]*\))?\s+)?mod\s+(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*;"
)


def _read_production(path: Path) -> str:
    code, _ = strip_nonprod(_code_only(segments(path.read_text(encoding="utf-8"))))
    return code


def production_files(functions_dir: Path = FUNCTIONS) -> list[SourceFile]:
    """The files the compiler builds for the functions, found like rustc does:
    from each crate root (src/lib.rs, src/main.rs, src/bin/*.rs) through the
    `mod x;` declarations that are not under a test-only `#[cfg]`. Files no
    module declares (or only tests declare) are not production code."""
    files: list[SourceFile] = []
    for crate, src_dir in _crate_roots(functions_dir).items():
        roots = [p for p in (src_dir / "lib.rs", src_dir / "main.rs") if p.is_file()]
        roots += sorted((src_dir / "bin").glob("*.rs")) if (src_dir / "bin").is_dir() else []
        seen: set[Path] = set()
        queue = list(roots)
        while queue:
            path = queue.pop(0)
            if path in seen or not path.is_file():
                continue
            seen.add(path)
            code = _read_production(path)
            files.append(SourceFile(path=path, crate=crate, code=code))
            if path in roots or path.name == "mod.rs":
                mod_dir = path.parent
            else:
                mod_dir = path.parent / path.stem
            for m in _MOD_DECL.finditer(_blank_quoted(code)):
                name = m.group("name")
                explicit = code[m.start("path"):m.end("path")] if m.group("path") else None
                if explicit:
                    queue.append((path.parent / explicit).resolve())
                    continue
                for candidate in (mod_dir / f"{name}.rs", mod_dir / name / "mod.rs"):
                    if candidate.is_file():
                        queue.append(candidate)
                        break
    return files


# --------------------------------------------------------------------------
# Environment variables.
# --------------------------------------------------------------------------

ENV_NAME = re.compile(r'"((?:CHURN|AWS)_[A-Z0-9_]+)"')
ENV_READ = re.compile(r'\benv::var(?:_os)?\s*\(\s*"([^"]*)"')


def env_vars_read(files: list[SourceFile]) -> dict[str, set[str]]:
    """Variable name -> crates whose production code names it as a string
    literal (`"CHURN_..."` / `"AWS_..."`), plus any `env::var("X")` literal."""
    found: dict[str, set[str]] = {}
    for f in files:
        for rx in (ENV_NAME, ENV_READ):
            for m in rx.finditer(f.code):
                found.setdefault(m.group(1), set()).add(f.crate)
    return found


# --------------------------------------------------------------------------
# AWS SDK operations.
# --------------------------------------------------------------------------

# Service key (as used below and in iam_alternatives) -> SDK crate. A file
# that names the crate (`aws_sdk_<name>::...`, e.g. its Client type) is taken
# to call that service's operations (`sdk_calls`).
SDK_CRATES = {
    "s3": "aws-sdk-s3",
    "dynamodb": "aws-sdk-dynamodb",
    "eventbridge": "aws-sdk-eventbridge",
    "secretsmanager": "aws-sdk-secretsmanager",
}
# The IAM service prefix where it is not the service key.
IAM_PREFIX = {"eventbridge": "events"}


def _locked_version(package: str) -> str | None:
    lock = (REPO / "Cargo.lock").read_text(encoding="utf-8")
    m = re.search(r'\[\[package\]\]\nname = "' + re.escape(package) + r'"\nversion = "([^"]+)"', lock)
    return m.group(1) if m else None


def _sdk_client_dir(package: str) -> Path | None:
    version = _locked_version(package)
    if version is None:
        return None
    cargo_home = Path(os.environ.get("CARGO_HOME", Path.home() / ".cargo"))
    hits = glob.glob(str(cargo_home / "registry" / "src" / "*" / f"{package}-{version}" / "src" / "client"))
    return Path(hits[0]) if hits else None


def sdk_operations() -> dict[str, set[str]]:
    """Service -> snake_case operation names of the locked SDK version, read
    from the crate's sources (one `src/client/<operation>.rs` per operation).
    Runs `cargo fetch --locked` once if the sources are not downloaded yet.
    A crate that is not in Cargo.lock is no dependency: no code can call it,
    and its service has no operations."""
    locked = {svc: pkg for svc, pkg in SDK_CRATES.items() if _locked_version(pkg) is not None}
    dirs = {svc: _sdk_client_dir(pkg) for svc, pkg in locked.items()}
    if any(d is None for d in dirs.values()):
        subprocess.run(["cargo", "fetch", "--locked"], cwd=REPO, check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        dirs = {svc: _sdk_client_dir(pkg) for svc, pkg in locked.items()}
    ops: dict[str, set[str]] = {svc: set() for svc in SDK_CRATES}
    for svc, d in dirs.items():
        if d is None:
            raise RuntimeError(
                f"sources of {SDK_CRATES[svc]} (version from Cargo.lock) not found under "
                "$CARGO_HOME/registry/src; run `cargo fetch --locked`"
            )
        ops[svc] = {p.stem for p in d.glob("*.rs") if p.stem not in ("customize",)}
    return ops


_CALL = re.compile(r"\.\s*([a-z][a-z0-9_]*)\s*\(\s*\)")


@dataclasses.dataclass(frozen=True)
class SdkCall:
    service: str
    operation: str
    path: Path
    crate: str
    offset: int


def services_named(code: str) -> set[str]:
    return {svc for svc, pkg in SDK_CRATES.items() if pkg.replace("-", "_") in code}


def sdk_calls(files: list[SourceFile], ops: dict[str, set[str]]) -> list[SdkCall]:
    """Zero-argument builder calls `.operation()` in files that name the SDK
    crate of a service whose operation set contains `operation`."""
    calls = []
    for f in files:
        for svc in services_named(f.code):
            for m in _CALL.finditer(f.code):
                if m.group(1) in ops[svc]:
                    calls.append(SdkCall(svc, m.group(1), f.path, f.crate, m.start()))
    return calls


def suspicious_calls(files: list[SourceFile], ops: dict[str, set[str]]) -> list[tuple[Path, str]]:
    """Distinctive operation names (with an underscore, e.g. `.get_object()`)
    called in files that name no SDK crate: probably an SDK call through a
    re-exported or aliased client, which `sdk_calls` would miss."""
    distinctive = {op for s in ops.values() for op in s if "_" in op}
    out = []
    for f in files:
        if services_named(f.code):
            continue
        for m in _CALL.finditer(f.code):
            if m.group(1) in distinctive:
                out.append((f.path, m.group(1)))
    return out


def enclosing_fn(code: str, offset: int) -> str | None:
    """Name of the innermost `fn` whose body contains `offset`."""
    skeleton = _blank_quoted(code)
    best = None
    for m in re.finditer(r"\bfn\s+([A-Za-z_][A-Za-z0-9_]*)", skeleton):
        if m.start() > offset:
            break
        j = m.end()
        while j < len(skeleton) and skeleton[j] not in "{;":
            j += 1
        if j >= len(skeleton) or skeleton[j] == ";":
            continue
        end = _matching_brace(skeleton, j)
        if j < offset < end:
            best = m.group(1)
    return best


# --------------------------------------------------------------------------
# SDK operation -> IAM actions.
# --------------------------------------------------------------------------


def _pascal(snake: str) -> str:
    return "".join(w[:1].upper() + w[1:] for w in snake.split("_"))


# Operations whose IAM action is not simply the operation's name. Each value
# is a list of alternatives; each alternative is the set of actions needed.
_S3_SPECIAL = {
    "list_objects_v2": [{"s3:ListBucket"}],
    "list_objects": [{"s3:ListBucket"}],
    "head_object": [{"s3:GetObject"}],
    "head_bucket": [{"s3:ListBucket"}],
    "get_object_attributes": [{"s3:GetObjectAttributes"}],
    "select_object_content": [{"s3:GetObject"}],
    "copy_object": [{"s3:GetObject", "s3:PutObject"}],
    "create_multipart_upload": [{"s3:PutObject"}],
    "upload_part": [{"s3:PutObject"}],
    "upload_part_copy": [{"s3:GetObject", "s3:PutObject"}],
    "complete_multipart_upload": [{"s3:PutObject"}],
    "abort_multipart_upload": [{"s3:AbortMultipartUpload"}],
    "list_parts": [{"s3:ListMultipartUploadParts"}],
    "list_multipart_uploads": [{"s3:ListBucketMultipartUploads"}],
    "list_object_versions": [{"s3:ListBucketVersions"}],
    "delete_objects": [{"s3:DeleteObject"}],
}
# A TransactWriteItems request is authorized per item, by the action of the
# item's kind: `TransactWriteItem` kind -> IAM action.
TRANSACT_WRITE_KIND_ACTIONS = {
    "Put": "dynamodb:PutItem",
    "Update": "dynamodb:UpdateItem",
    "Delete": "dynamodb:DeleteItem",
    "ConditionCheck": "dynamodb:ConditionCheckItem",
}

_DYNAMODB_SPECIAL = {
    "transact_get_items": [{"dynamodb:GetItem"}],
    # Kinds unknown (see iam_alternatives): any of them.
    "transact_write_items": [{a} for a in TRANSACT_WRITE_KIND_ACTIONS.values()],
    "execute_statement": [{"dynamodb:PartiQLSelect"}, {"dynamodb:PartiQLInsert"},
                          {"dynamodb:PartiQLUpdate"}, {"dynamodb:PartiQLDelete"}],
    "batch_execute_statement": [{"dynamodb:PartiQLSelect"}, {"dynamodb:PartiQLInsert"},
                                {"dynamodb:PartiQLUpdate"}, {"dynamodb:PartiQLDelete"}],
    "execute_transaction": [{"dynamodb:PartiQLSelect"}, {"dynamodb:PartiQLInsert"},
                            {"dynamodb:PartiQLUpdate"}, {"dynamodb:PartiQLDelete"}],
}


_SECRETSMANAGER_SPECIAL = {
    # the batch call is authorized for itself and for each secret it reads
    "batch_get_secret_value": [{"secretsmanager:BatchGetSecretValue", "secretsmanager:GetSecretValue"}],
}


def iam_alternatives(service: str, operation: str, transact_kinds: set[str] | None = None) -> list[set[str]]:
    """The alternative sets of IAM actions `service`'s `operation` needs.

    TransactWriteItems needs the actions of every item kind its requests hold:
    with `transact_kinds` (the kinds the code builds, `transact_write_kinds`)
    exactly those, all together; without, any one of them."""
    if (service, operation) == ("dynamodb", "transact_write_items") and transact_kinds:
        return [{TRANSACT_WRITE_KIND_ACTIONS[k] for k in transact_kinds}]
    special = {"s3": _S3_SPECIAL, "dynamodb": _DYNAMODB_SPECIAL,
               "secretsmanager": _SECRETSMANAGER_SPECIAL}.get(service, {})
    if operation in special:
        return special[operation]
    return [{f"{IAM_PREFIX.get(service, service)}:{_pascal(operation)}"}]


# `Put::builder(`, `types::ConditionCheck::builder(`, ... (not `PutRequest::`
# or `DeleteRequest::` of BatchWriteItem, nor `AttributeValueUpdate::`).
_TRANSACT_KIND = re.compile(r"\b(Put|Update|Delete|ConditionCheck)\s*::\s*builder\s*\(")


def transact_write_kinds(files: list[SourceFile]) -> set[str]:
    """The kinds of `TransactWriteItem` ("Put", "Update", "Delete",
    "ConditionCheck") whose builders are called in files that name the
    DynamoDB SDK."""
    return {m.group(1) for f in files if "dynamodb" in services_named(f.code)
            for m in _TRANSACT_KIND.finditer(f.code)}


# --------------------------------------------------------------------------
# DynamoDB UpdateItem calls: which item, which attributes.
# --------------------------------------------------------------------------

# Words of update and condition expressions that are no attribute names
# (keywords are case-insensitive; functions are followed by `(`).
_EXPRESSION_KEYWORDS = {"SET", "REMOVE", "ADD", "DELETE", "AND", "OR", "NOT", "BETWEEN", "IN"}
_EXPRESSION_FUNCTIONS = {"attribute_exists", "attribute_not_exists", "attribute_type", "begins_with",
                         "contains", "size", "if_not_exists", "list_append"}
# A name token that starts a path: not a `:value`, not a `.nested` segment.
_EXPRESSION_NAME = re.compile(r"(?<![\w:#.])(#?[A-Za-z_][A-Za-z0-9_]*)(\s*\()?")
_STRING_ARG = re.compile(r'\s*"([^"]*)"\s*')


def expression_attributes(expr: str, names: dict[str, str]) -> set[str] | None:
    """The top-level attribute names an update or condition expression
    reads or writes (`#x` resolved through `names`; None when one is not
    there). Nested paths count by their first segment."""
    out = set()
    for m in _EXPRESSION_NAME.finditer(expr):
        token, call = m.group(1), m.group(2)
        if call and token in _EXPRESSION_FUNCTIONS:
            continue
        if token.upper() in _EXPRESSION_KEYWORDS:
            continue
        if token.startswith("#"):
            if token not in names:
                return None
            token = names[token]
        out.add(token)
    return out


def _call_args(code: str, skeleton: str, open_paren: int) -> str:
    """The text between the `(` at `open_paren` and its matching `)`."""
    depth = 0
    for j in range(open_paren, len(skeleton)):
        if skeleton[j] == "(":
            depth += 1
        elif skeleton[j] == ")":
            depth -= 1
            if depth == 0:
                return code[open_paren + 1 : j]
    return code[open_paren + 1 :]


def _builder_args(code: str, method: str) -> list[str]:
    """The argument text of every `.method(...)` call in `code`."""
    skeleton = _blank_quoted(code)
    return [_call_args(code, skeleton, m.end() - 1)
            for m in re.finditer(r"\.\s*" + method + r"\s*\(", skeleton)]


def _split_args(args: str) -> list[str]:
    """Top-level comma-separated arguments."""
    skeleton = _blank_quoted(args)
    parts, depth, last = [], 0, 0
    for j, ch in enumerate(skeleton):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(args[last:j])
            last = j + 1
    parts.append(args[last:])
    return [p.strip() for p in parts if p.strip()]


def _literal(arg: str) -> str | None:
    m = _STRING_ARG.fullmatch(arg)
    return m.group(1) if m else None


@dataclasses.dataclass(frozen=True)
class DynamoUpdate:
    """One `.update_item()` request as its builder chain (up to the next
    `.send()`) shows it."""

    path: Path
    crate: str
    fn: str | None
    # the key attribute and its value expression, as written
    key_attribute: str | None
    key_value: str
    # top-level attributes its expressions name (the key attribute not
    # included); None when an expression or a `#name` is not a literal
    attributes: frozenset[str] | None
    # "NONE" when the request sets none; None when it is not a literal
    return_values: str | None


def dynamodb_updates(files: list[SourceFile]) -> list[DynamoUpdate]:
    """Every `.update_item()` of files that name the DynamoDB SDK."""
    out = []
    for f in files:
        if "dynamodb" not in services_named(f.code):
            continue
        for m in re.finditer(r"\.\s*update_item\s*\(\s*\)", f.code):
            end = re.compile(r"\.\s*send\s*\(\s*\)").search(f.code, m.end())
            chain = f.code[m.end() : end.start() if end else len(f.code)]
            names: dict[str, str] = {}
            for args in _builder_args(chain, "expression_attribute_names"):
                parts = [_literal(a) for a in _split_args(args)]
                if len(parts) == 2 and None not in parts:
                    names[parts[0]] = parts[1]
            attributes: set[str] | None = set()
            for method in ("update_expression", "condition_expression"):
                for args in _builder_args(chain, method):
                    expr = _literal(args)
                    found = expression_attributes(expr, names) if expr is not None else None
                    if found is None or attributes is None:
                        attributes = None
                    else:
                        attributes |= found
            keys = [_split_args(a) for a in _builder_args(chain, "key")]
            key_attribute, key_value = (_literal(keys[0][0]), keys[0][1]) if keys and len(keys[0]) == 2 else (None, "")
            returns = _builder_args(chain, "return_values")
            if not returns:
                return_values = "NONE"
            else:
                rv = re.fullmatch(r"\s*(?:[A-Za-z_]\w*::)*ReturnValue::([A-Za-z]+)\s*", returns[0])
                return_values = re.sub(r"(?<!^)(?=[A-Z])", "_", rv.group(1)).upper() if rv else None
            out.append(DynamoUpdate(
                path=f.path, crate=f.crate, fn=enclosing_fn(f.code, m.start()),
                key_attribute=key_attribute, key_value=key_value.strip(),
                attributes=frozenset(attributes) if attributes is not None else None,
                return_values=return_values,
            ))
    return out
