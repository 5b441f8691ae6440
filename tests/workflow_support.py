"""Runs a GitHub Actions job's own steps, read from its YAML, on this machine (tests/test_workflow.py).

What GitHub does that a workflow relies on, and nothing more: `workflow_dispatch` inputs with their
defaults and types, the `${{ }}` expression language as far as the workflow uses it (contexts
inputs, env, secrets, github; literals; ! == != && || and parentheses; always(), success(),
failure(), fromJSON(), format()), job and step `env`, `defaults.run.shell`, step `if` (implicitly
`success() && ...`), `$GITHUB_PATH` / `$GITHUB_ENV`, and the shells' exact command lines. `uses:`
steps are handled by name: `actions/checkout` (the workspace is already the checkout) and
`actions/upload-artifact` (which paths matched is recorded, as the artifact would hold them).
A step the test cannot run as written (it installs packages, say) is handed to a `replace`
function that checks its script and returns what to run instead.
"""

from __future__ import annotations

import glob
import json
import os
import re
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

SHELLS = {"bash": ["bash", "--noprofile", "--norc", "-eo", "pipefail"], None: ["bash", "-e"], "sh": ["sh", "-e"]}
STATUS_FUNCTIONS = ("always", "success", "failure", "cancelled")


def load_workflow(path: Path) -> dict[str, Any]:
    """The workflow as data; YAML 1.1 reads the key `on` as True, GitHub reads it as "on"."""
    workflow = yaml.safe_load(path.read_text(encoding="utf-8"))
    if True in workflow:
        workflow["on"] = workflow.pop(True)
    return workflow


# -- expressions ------------------------------------------------------------------------------------

_TOKEN = re.compile(r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>-?\d+(?:\.\d+)?)|(?P<op>==|!=|&&|\|\||[!(),])"
                    r"|(?P<name>[A-Za-z_][A-Za-z0-9_\-]*(?:\.[A-Za-z_][A-Za-z0-9_\-]*|\[\d+\])*))")


class Expression:
    """A `${{ }}` expression, parsed by recursive descent, evaluated against a context dict."""

    def __init__(self, text: str):
        self.tokens, at = [], 0
        text = text.strip()
        while at < len(text):
            match = _TOKEN.match(text, at)
            if not match or match.end() == at:
                raise ValueError(f"cannot parse expression {text!r} at {text[at:]!r}")
            kind = match.lastgroup
            self.tokens.append((kind, match.group(kind)))
            at = match.end()
            while at < len(text) and text[at].isspace():
                at += 1
        self.text = text

    def uses_status_function(self) -> bool:
        return any(kind == "name" and value in STATUS_FUNCTIONS for kind, value in self.tokens)

    def evaluate(self, context: dict[str, Any]) -> Any:
        self.at, self.context = 0, context
        value = self._or()
        if self.at != len(self.tokens):
            raise ValueError(f"unexpected {self.tokens[self.at][1]!r} in {self.text!r}")
        return value

    def _peek(self) -> str | None:
        return self.tokens[self.at][1] if self.at < len(self.tokens) else None

    def _take(self, expected: str | None = None) -> tuple[str, str]:
        token = self.tokens[self.at]
        if expected is not None and token[1] != expected:
            raise ValueError(f"expected {expected!r}, got {token[1]!r} in {self.text!r}")
        self.at += 1
        return token

    def _or(self) -> Any:
        value = self._and()
        while self._peek() == "||":
            self._take()
            right = self._and()
            value = value if truthy(value) else right
        return value

    def _and(self) -> Any:
        value = self._equality()
        while self._peek() == "&&":
            self._take()
            right = self._equality()
            value = right if truthy(value) else value
        return value

    def _equality(self) -> Any:
        value = self._unary()
        while self._peek() in ("==", "!="):
            op = self._take()[1]
            same = loose_equal(value, self._unary())
            value = same if op == "==" else not same
        return value

    def _unary(self) -> Any:
        if self._peek() == "!":
            self._take()
            return not truthy(self._unary())
        return self._primary()

    def _primary(self) -> Any:
        kind, value = self._take()
        if value == "(":
            inner = self._or()
            self._take(")")
            return inner
        if kind == "str":
            return value[1:-1].replace("''", "'")
        if kind == "num":
            return float(value)
        if value in ("true", "false"):
            return value == "true"
        if value == "null":
            return None
        if self._peek() == "(":
            self._take()
            args = []
            while self._peek() != ")":
                args.append(self._or())
                if self._peek() == ",":
                    self._take()
            self._take(")")
            return call(value, args, self.context)
        return lookup(value, self.context)


def truthy(value: Any) -> bool:
    return value not in (False, None, 0, "") and not (isinstance(value, float) and value != value)


def loose_equal(a: Any, b: Any) -> bool:
    """GitHub's ==: strings compare case-insensitively; mixed types compare as numbers."""
    if isinstance(a, str) and isinstance(b, str):
        return a.lower() == b.lower()
    if type(a) is type(b) or a is None or b is None:
        return a == b
    return as_number(a) == as_number(b)


def as_number(value: Any) -> float:
    if value is None:
        return 0.0
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(value) if str(value).strip() else 0.0
    except ValueError:
        return float("nan")


def lookup(path: str, context: dict[str, Any]) -> Any:
    value: Any = context
    for part in re.findall(r"[^.\[\]]+", path):
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def call(name: str, args: list[Any], context: dict[str, Any]) -> Any:
    if name in STATUS_FUNCTIONS:
        failed = context["__job_failed__"]
        return {"always": True, "success": not failed, "failure": failed, "cancelled": False}[name]
    if name == "fromJSON":
        return json.loads(args[0])
    if name == "format":
        return re.sub(r"\{(\d+)\}", lambda m: render(args[1 + int(m.group(1))]), args[0])
    raise ValueError(f"the workflow calls {name}(), which this runner does not know")


def render(value: Any) -> str:
    """A value as `${{ }}` puts it into text."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else str(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def substitute(text: str, context: dict[str, Any]) -> str:
    return re.sub(r"\$\{\{(.*?)\}\}", lambda m: render(Expression(m.group(1)).evaluate(context)), text, flags=re.S)


def evaluate_value(value: Any, context: dict[str, Any]) -> Any:
    """A YAML value: a string that is one whole `${{ }}` keeps its type, other strings are rendered."""
    if isinstance(value, str):
        whole = re.fullmatch(r"\s*\$\{\{(.*)\}\}\s*", value, flags=re.S)
        if whole and "}}" not in whole.group(1):
            return Expression(whole.group(1)).evaluate(context)
        return substitute(value, context)
    if isinstance(value, list):
        return [evaluate_value(v, context) for v in value]
    if isinstance(value, dict):
        return {k: evaluate_value(v, context) for k, v in value.items()}
    return value


# -- running a job ----------------------------------------------------------------------------------

@dataclass
class StepResult:
    name: str
    ran: bool
    returncode: int | None = None
    output: str = ""
    script: str | None = None  # what ran (after a replacement)
    seconds: float = 0.0


@dataclass
class JobResult:
    runs_on: Any
    steps: list[StepResult]
    artifacts: dict[str, list[str]] = field(default_factory=dict)  # name -> files, relative to the workspace

    def step(self, name: str) -> StepResult:
        (found,) = [s for s in self.steps if s.name == name]
        return found

    @property
    def failed(self) -> bool:
        return any(s.ran and s.returncode != 0 for s in self.steps)


def dispatch_inputs(workflow: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """The `inputs` context of a workflow_dispatch: given values or defaults, booleans as booleans."""
    declared = workflow["on"]["workflow_dispatch"]["inputs"]
    unknown = set(given) - set(declared)
    if unknown:
        raise ValueError(f"the workflow has no input(s) {sorted(unknown)}")
    inputs = {}
    for name, spec in declared.items():
        if name not in given and spec.get("required"):
            raise ValueError(f"input {name} is required")
        value = given.get(name, spec.get("default", "" if spec.get("type") != "boolean" else False))
        if spec.get("type") == "boolean":
            value = value if isinstance(value, bool) else str(value).lower() == "true"
        else:
            value = render(value) if not isinstance(value, str) else value
        inputs[name] = value
    return inputs


def step_name(step: dict[str, Any]) -> str:
    return step.get("name") or (f"Run {step['uses']}" if "uses" in step else f"Run {step['run'].splitlines()[0]}")


def job_context(workflow: dict[str, Any], job: str, workspace: Path, inputs: dict[str, Any] | None = None,
                secrets: dict[str, str] | None = None, job_env_override: dict[str, str] | None = None
                ) -> tuple[dict[str, Any], dict[str, str]]:
    """The expression context a job's steps see, and the job's env (overrides applied)."""
    context: dict[str, Any] = {
        "inputs": dispatch_inputs(workflow, inputs or {}),
        "secrets": dict(secrets or {}),
        "github": {"run_id": "4242", "sha": "0" * 40, "ref": "refs/heads/main", "workspace": str(workspace),
                   "event_name": "workflow_dispatch"},
        "env": {},
        "__job_failed__": False,
    }
    job_env = {k: render(evaluate_value(v, context)) for k, v in (workflow["jobs"][job].get("env") or {}).items()}
    job_env.update(job_env_override or {})
    context["env"] = dict(job_env)
    return context, job_env


def step_script(workflow: dict[str, Any], job: str, name: str, workspace: Path,
                inputs: dict[str, Any] | None = None) -> tuple[str, dict[str, str]]:
    """One run step's script as the runner would write it, and the env it would get from the job
    and the step (for running that step alone)."""
    context, job_env = job_context(workflow, job, workspace, inputs)
    (step,) = [s for s in workflow["jobs"][job]["steps"] if step_name(s) == name]
    step_env = {k: render(evaluate_value(v, context)) for k, v in (step.get("env") or {}).items()}
    return substitute(step["run"], context), {**job_env, **step_env}


def run_job(workflow: dict[str, Any], job: str, workspace: Path, *, inputs: dict[str, Any] | None = None,
            secrets: dict[str, str] | None = None, runner_env: dict[str, str] | None = None,
            job_env_override: dict[str, str] | None = None,
            replace: dict[str, Callable[[str], str]] | None = None, step_timeout: float = 600) -> JobResult:
    """Run `job` of `workflow` in `workspace` (already the checkout). `runner_env` is the runner's
    own environment; `job_env_override` replaces job env values (e.g. a port that is free here)."""
    spec = workflow["jobs"][job]
    context, job_env = job_context(workflow, job, workspace, inputs, secrets, job_env_override)
    runs_on = evaluate_value(spec["runs-on"], context)
    shell = ((spec.get("defaults") or {}).get("run") or {}).get("shell")
    replace = dict(replace or {})
    scratch = Path(tempfile.mkdtemp(prefix="runner-", dir=workspace.parent))
    files = {name: scratch / name for name in ("path", "env", "output")}
    for file in files.values():
        file.touch()
    env = {**(runner_env or {}), "CI": "true", "GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": str(workspace),
           "GITHUB_RUN_ID": context["github"]["run_id"], "GITHUB_SHA": context["github"]["sha"],
           "GITHUB_REF": context["github"]["ref"], "RUNNER_TEMP": str(scratch),
           "GITHUB_PATH": str(files["path"]), "GITHUB_ENV": str(files["env"]), "GITHUB_OUTPUT": str(files["output"])}
    result = JobResult(runs_on, [])
    for number, step in enumerate(spec["steps"]):
        name = step_name(step)
        condition = step.get("if")
        if condition is not None:
            text = condition.strip()
            text = text[3:-2] if text.startswith("${{") and text.endswith("}}") else text
            expression = Expression(text)
            run_it = truthy(expression.evaluate(context))
            if not expression.uses_status_function():
                run_it = run_it and not context["__job_failed__"]
        else:
            run_it = not context["__job_failed__"]
        if not run_it:
            result.steps.append(StepResult(name, ran=False))
            continue
        step_env = {k: render(evaluate_value(v, context)) for k, v in (step.get("env") or {}).items()}
        if "uses" in step:
            outcome = _uses(step, context, workspace, result)
        else:
            script = substitute(step["run"], context)
            if name in replace:
                script = replace.pop(name)(script)
            path_dirs = [line for line in files["path"].read_text().splitlines() if line.strip()]
            full_env = {**env, **job_env, **_read_env_file(files["env"]), **step_env}
            full_env["PATH"] = os.pathsep.join([*reversed(path_dirs), full_env.get("PATH", "")])
            script_file = scratch / f"step-{number}.sh"
            script_file.write_text(script, encoding="utf-8")
            started = time.monotonic()
            try:
                proc = subprocess.run([*SHELLS[step.get("shell", shell)], str(script_file)], cwd=workspace,
                                      env=full_env, capture_output=True, text=True,
                                      timeout=min(step_timeout, 60 * float(step.get("timeout-minutes", 1e9))))
                outcome = StepResult(name, True, proc.returncode, proc.stdout + proc.stderr, script)
            except subprocess.TimeoutExpired as exc:
                output = (exc.stdout or b"").decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
                outcome = StepResult(name, True, 124, output + "\n[runner: step timed out]", script)
            outcome.seconds = time.monotonic() - started
        result.steps.append(outcome)
        if outcome.returncode != 0:
            context["__job_failed__"] = True
        context["env"] = {**job_env, **_read_env_file(files["env"])}
    if replace:
        raise AssertionError(f"replacements for steps that did not run: {sorted(replace)}")
    return result


def _read_env_file(path: Path) -> dict[str, str]:
    """$GITHUB_ENV: NAME=value lines and NAME<<DELIMITER blocks."""
    values, lines = {}, path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            block = []
            i += 1
            while i < len(lines) and lines[i] != delimiter:
                block.append(lines[i])
                i += 1
            values[name] = "\n".join(block)
        elif "=" in line:
            name, value = line.split("=", 1)
            values[name] = value
        i += 1
    return values


def _uses(step: dict[str, Any], context: dict[str, Any], workspace: Path, result: JobResult) -> StepResult:
    action = step["uses"].split("@")[0]
    name = step_name(step)
    if action == "actions/checkout":
        return StepResult(name, True, 0, "the workspace is the checkout")
    if action == "actions/upload-artifact":
        options = evaluate_value(step.get("with") or {}, context)
        patterns = [p.strip() for p in str(options["path"]).splitlines() if p.strip()]
        found = sorted({str(Path(f).relative_to(workspace)) for pattern in patterns
                        for match in glob.glob(str(workspace / pattern), recursive=True)
                        for f in (_files_under(Path(match)))})
        if not found and options.get("if-no-files-found", "warn") == "error":
            return StepResult(name, True, 1, f"no files found for {patterns}")
        result.artifacts[options.get("name", "artifact")] = found
        return StepResult(name, True, 0, "\n".join(found))
    return StepResult(name, True, 1, f"this runner does not know the action {action}")


def _files_under(path: Path) -> list[Path]:
    return [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
