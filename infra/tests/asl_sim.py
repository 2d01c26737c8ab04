"""A small interpreter for the subset of Amazon States Language (JSONPath
flavour) the rescore state machine uses, so tests can run its data flow:
Pass / Task / Choice / Map / Succeed / Fail; Parameters, ItemSelector,
ResultSelector, ResultPath, Catch (also inside a Map's ItemProcessor), Retry
counts; Choice rules And / Or / Not, Numeric*, StringEquals, StringMatches,
IsPresent, IsBoolean, IsString, IsNumeric, IsNull; the intrinsics
States.Format, States.StringToJson, States.JsonToString, States.JsonMerge,
States.MathAdd. Tasks are answered by a callback (resource, parameters) ->
result, or raise TaskFailed.

A Distributed Map runs each item as a child execution, as Step Functions
does: its ItemSelector is evaluated with the parent's input and context (plus
$$.Map.Item), the ItemProcessor's states with a context of their own (their
$$.Execution is the child execution, not the parent).

It is not a reimplementation of Step Functions: waits, timeouts and
concurrency are not simulated. It checks that every path the definition
reads exists at that point (a Choice rule other than IsPresent on a missing
path fails, as States.Runtime does) and that the states route as intended.
"""

from __future__ import annotations

import copy
import fnmatch
import json
import re
from typing import Any, Callable


class TaskFailed(Exception):
    def __init__(self, error: str, cause: str = ""):
        super().__init__(error)
        self.error, self.cause = error, cause


class PathMissing(AssertionError):
    pass


def get_path(path: str, data: Any, context: dict) -> Any:
    if path.startswith("$$"):
        node, rest = context, path[2:]
    elif path.startswith("$"):
        node, rest = data, path[1:]
    else:
        raise PathMissing(f"not a path: {path!r}")
    for part in [p for p in rest.split(".") if p]:
        if not isinstance(node, dict) or part not in node:
            raise PathMissing(f"{path}: no {part!r} in {json.dumps(node)[:200]}")
        node = node[part]
    return node


def set_path(path: str | None, data: Any, value: Any) -> Any:
    if path is None:
        return data
    if path == "$":
        return value
    assert path.startswith("$."), path
    out = copy.deepcopy(data) if isinstance(data, dict) else {}
    node = out
    parts = path[2:].split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = value
    return out


_ARG = re.compile(r"\s*('(?:\\.|[^'\\])*'|\$\$?[A-Za-z0-9_.]*|-?\d+(?:\.\d+)?|true|false|null|States\.\w+\((?:[^()]|\([^()]*\))*\))\s*(?:,|$)")


def _split_args(text: str) -> list[str]:
    args, pos = [], 0
    while pos < len(text):
        m = _ARG.match(text, pos)
        if not m:
            raise AssertionError(f"cannot parse intrinsic arguments {text!r} at {pos}")
        args.append(m.group(1))
        pos = m.end()
    return args


def _arg_value(arg: str, data: Any, context: dict) -> Any:
    if arg.startswith("'"):
        return arg[1:-1].replace("\\'", "'")
    if arg.startswith("$"):
        return get_path(arg, data, context)
    if arg.startswith("States."):
        return intrinsic(arg, data, context)
    return json.loads(arg)


def intrinsic(expr: str, data: Any, context: dict) -> Any:
    m = re.fullmatch(r"(States\.\w+)\((.*)\)", expr.strip(), re.S)
    assert m, expr
    name, args = m.group(1), [_arg_value(a, data, context) for a in _split_args(m.group(2))]
    if name == "States.Format":
        template, values = args[0], list(args[1:])
        assert template.count("{}") == len(values), expr
        out = template
        for v in values:
            out = out.replace("{}", v if isinstance(v, str) else json.dumps(v), 1)
        return out
    if name == "States.StringToJson":
        return json.loads(args[0])
    if name == "States.JsonToString":
        return json.dumps(args[0], separators=(",", ":"))
    if name == "States.JsonMerge":
        a, b, deep = args
        assert isinstance(a, dict) and isinstance(b, dict) and deep is False, expr
        return {**a, **b}
    if name == "States.MathAdd":
        a, b = args
        assert isinstance(a, int) and isinstance(b, int), f"{expr}: MathAdd needs integers, got {a!r}, {b!r}"
        return a + b
    raise AssertionError(f"intrinsic {name} not simulated")


def evaluate(template: Any, data: Any, context: dict) -> Any:
    """Parameters / ItemSelector / ResultSelector payload templates."""
    if isinstance(template, dict):
        out = {}
        for k, v in template.items():
            if k.endswith(".$"):
                out[k[:-2]] = intrinsic(v, data, context) if v.startswith("States.") else get_path(v, data, context)
            else:
                out[k] = evaluate(v, data, context)
        return out
    if isinstance(template, list):
        return [evaluate(v, data, context) for v in template]
    return template


def _rule_matches(rule: dict, data: Any, context: dict) -> bool:
    if "Or" in rule:
        return any(_rule_matches(r, data, context) for r in rule["Or"])
    if "And" in rule:
        return all(_rule_matches(r, data, context) for r in rule["And"])
    if "Not" in rule:
        return not _rule_matches(rule["Not"], data, context)
    if "IsPresent" in rule:
        try:
            get_path(rule["Variable"], data, context)
            present = True
        except PathMissing:
            present = False
        return present == rule["IsPresent"]
    value = get_path(rule["Variable"], data, context)
    for op, ref in rule.items():
        if op in ("Variable", "Next"):
            continue
        if op.endswith("Path"):
            op, ref = op[:-4], get_path(ref, data, context)
        if op == "NumericEquals":
            return value == ref
        if op == "NumericLessThanEquals":
            return value <= ref
        if op == "NumericGreaterThan":
            return value > ref
        if op == "StringEquals":
            return value == ref
        if op == "StringMatches":
            return isinstance(value, str) and fnmatch.fnmatchcase(value, ref)
        if op == "IsBoolean":
            return isinstance(value, bool) == ref
        if op == "IsString":
            return isinstance(value, str) == ref
        if op == "IsNumeric":
            return (isinstance(value, (int, float)) and not isinstance(value, bool)) == ref
        if op == "IsNull":
            return (value is None) == ref
        raise AssertionError(f"choice operator {op} not simulated")
    raise AssertionError(f"rule without operator: {rule}")


TaskHandler = Callable[[str, Any], Any]


def run(machine: dict, data: Any, task: TaskHandler, context: dict | None = None,
        trace: list | None = None) -> tuple[str, Any]:
    """Runs `machine` (a dict with StartAt/States) on `data`. Returns
    ("SUCCEEDED", output) or ("FAILED", {"Error": ..., "Cause": ...})."""
    context = context if context is not None else {"Execution": {"Id": "arn:exec:1", "Name": "exec-1", "Input": data}}
    trace = trace if trace is not None else []
    states, name = machine["States"], machine["StartAt"]
    for _ in range(1000):
        st = states[name]
        trace.append(name)
        kind = st["Type"]
        if kind == "Succeed":
            return "SUCCEEDED", data
        if kind == "Fail":
            err = get_path(st["ErrorPath"], data, context) if "ErrorPath" in st else st.get("Error")
            cause = get_path(st["CausePath"], data, context) if "CausePath" in st else st.get("Cause")
            return "FAILED", {"Error": err, "Cause": cause}
        if kind == "Choice":
            name = next((r["Next"] for r in st["Choices"] if _rule_matches(r, data, context)), st.get("Default"))
            assert name, "Choice with no match and no Default"
            continue
        effective = evaluate(st["Parameters"], data, context) if "Parameters" in st else data
        try:
            if kind == "Pass":
                result = st.get("Result", effective)
            elif kind == "Task":
                result = _run_task_with_retries(st, effective, task, context)
            elif kind == "Map":
                result = _run_map(st, data, task, context, trace)
            else:
                raise AssertionError(f"state type {kind} not simulated")
        except TaskFailed as failure:
            catcher = next((c for c in st.get("Catch", [])
                            if "States.ALL" in c["ErrorEquals"] or failure.error in c["ErrorEquals"]), None)
            if catcher is None:
                return "FAILED", {"Error": failure.error, "Cause": failure.cause}
            data = set_path(catcher.get("ResultPath", "$"), data, {"Error": failure.error, "Cause": failure.cause})
            name = catcher["Next"]
            continue
        if kind == "Pass" and "ResultPath" not in st:
            data = result
        else:
            data = set_path(st.get("ResultPath", "$"), data, result)
        if st.get("End"):
            return "SUCCEEDED", data
        name = st["Next"]
    raise AssertionError("state machine did not end within 1000 transitions")


def _run_task_with_retries(st: dict, effective: Any, task: TaskHandler, context: dict) -> Any:
    """A Task with its Retry clauses: the first retrier whose ErrorEquals names
    the error (or States.ALL) retries it up to its MaxAttempts (default 3);
    waits are not simulated."""
    attempts = [0] * len(st.get("Retry", []))
    while True:
        try:
            result = task(st["Resource"], effective)
            if "ResultSelector" in st:
                result = evaluate(st["ResultSelector"], result, context)
            return result
        except TaskFailed as failure:
            index = next((i for i, r in enumerate(st.get("Retry", []))
                          if failure.error in r["ErrorEquals"] or "States.ALL" in r["ErrorEquals"]), None)
            if index is None or attempts[index] >= st["Retry"][index].get("MaxAttempts", 3):
                raise
            attempts[index] += 1


def _run_map(st: dict, data: Any, task: TaskHandler, context: dict, trace: list) -> Any:
    reader = st.get("ItemReader")
    if reader:
        params = evaluate(reader.get("Parameters", {}), data, context)
        items = task(reader["Resource"], params)
    else:
        items = get_path(st.get("ItemsPath", "$"), data, context)
    if "MaxConcurrencyPath" in st:
        mc = get_path(st["MaxConcurrencyPath"], data, context)
        assert isinstance(mc, int) and mc >= 0, f"MaxConcurrencyPath must give an integer, got {mc!r}"
    proc = st.get("ItemProcessor") or st["Iterator"]
    distributed = (proc.get("ProcessorConfig") or {}).get("Mode") == "DISTRIBUTED"
    results, failures = [], 0
    for i, item in enumerate(items):
        ctx = dict(context, Map={"Item": {"Index": i, "Value": item}})
        item_input = evaluate(st["ItemSelector"], data, ctx) if "ItemSelector" in st else item
        if distributed:
            # a child execution: its own id, name and input; nothing of the parent's context
            parent = context["Execution"]
            ctx = {"Execution": {"Id": f"{parent['Id']}/map-child-{i}", "Name": f"map-child-{i}",
                                 "Input": item_input}}
        status, out = run(proc, item_input, task, ctx, trace)
        if status == "FAILED":
            failures += 1
        results.append(out)
    tolerated = st.get("ToleratedFailurePercentage", 0)
    if items and failures * 100 / len(items) > tolerated:
        raise TaskFailed("States.ExceedToleratedFailureThreshold", f"{failures} of {len(items)} items failed")
    if "ResultWriter" in st:
        params = evaluate(st["ResultWriter"].get("Parameters", {}), data, context)
        return task(st["ResultWriter"]["Resource"], {"results": results, **params})
    return results
