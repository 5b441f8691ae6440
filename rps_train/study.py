"""`rps-train study --config FILE --out DIR`: the whole RPS-vs-EPS study as one resumable command.

Steps, each a list of ordinary commands (`--dry-run` prints them all):
  model     (tiny configs only) build the tiny random Qwen3 the study runs on
  rejected  the small model's ordinary answers on the training tasks: `inspect eval` of our task
  data      the DPO data: `rps-train data` (chosen traces vs those answers, checked by the scorer)
  rps       RPS stage 1 and stage 2: `rps-train train` (rps-s<seed>: one step per training seed)
  eps       EPS stage 2 from RPS's stage-1 adapter of the same seed: `rps-train train --stage1_adapter`
  evaluate  base, RPS and EPS through the Inspect task on the evaluation sets (every adapter with
            every sampling seed), each log made a run directory by `rps-evals report`; on GPU one
            `vllm serve` holds every adapter, on CPU the adapters are merged into full models for
            Inspect's `hf/` provider
  compare   `rps-evals compare` RPS vs EPS, RPS vs base, EPS vs base -> DIR/comparison.json: with
            several training seeds a method-level result per metric, and a one-line verdict each

`replicates: {training_seeds: [0, 1], sampling_seeds: [0]}` in the config makes the study a
replicate design (docs/metrics.md, "Replicate runs"): a training seed is a replicate of its method;
the sampling passes of one adapter are averaged into that replicate. Without it: one run per arm.

DIR/study.json is the manifest: for each finished step, a key (the hash of its commands and of the
content of its inputs) and the hashes of its outputs. A step whose key and outputs still match is
skipped, so a killed study resumes where it stopped, and a changed config or input re-runs exactly
the steps that depend on it. Training steps pass `--resume true`, so an interrupted stage goes on from
its last checkpoint.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

FORMAT = "rps-train-study/1"
STEPS = ("model", "rejected", "data", "rps", "eps", "evaluate", "compare")
SCHEDULES = {"rps": 0.1, "eps": 1.0}  # stage-2 LR / stage-1 LR (the study's RPS and its control)
# (X, Y): "X vs Y", compared as `rps-evals compare Y --vs X`, so every difference reads X - Y
COMPARISONS = (("rps", "eps"), ("rps", "base"), ("eps", "base"))
PRIMARY = "attempts_from_executed_programs"  # the metric the verdicts read (compare's default primary)
LOG = "{log}"  # in a command: the one Inspect log its step wrote to the log dir after it


class StudyError(ValueError):
    """A study config that cannot run; raised before any step starts."""


@dataclass
class Step:
    name: str
    commands: list[list[str]]
    inputs: list[Path] = field(default_factory=list)  # content hashed into the key
    outputs: list[Path] = field(default_factory=list)  # must exist after; hashed into the manifest
    fresh: list[Path] = field(default_factory=list)  # removed before the step runs (stale logs)
    server: list[str] | None = None  # started before the commands, stopped after (vllm serve)
    server_url: str | None = None
    finish: Callable[[], None] | None = None  # Python work after the commands (combine comparisons)
    note: str = ""


# --------------------------------------------------------------------------------------------
# Config


def _resolve(value: str, base: Path) -> str:
    """A relative path in a config is taken from the config file's folder when it exists there."""
    candidate = base / value
    return str(candidate.resolve()) if not Path(value).is_absolute() and candidate.exists() else value


def load_config(path: str | Path, out: str | Path) -> dict[str, Any]:
    """The study config with `{out}` and `{base_model}` filled in and its file paths resolved."""
    import yaml

    path = Path(path)
    if not path.exists():
        raise StudyError(f"study config {str(path)!r} does not exist")
    try:
        config = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise StudyError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(config, dict):
        raise StudyError(f"{path}: expected a YAML mapping")
    for key in ("base_model", "rejected", "data", "train", "evaluate"):
        if key not in config:
            raise StudyError(f"{path}: missing key {key!r}")
    unknown = set(config) - {"base_model", "tiny_model", "rejected", "data", "train", "evaluate", "thinking",
                             "replicates"}
    if unknown:
        raise StudyError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}")
    out = str(Path(out).resolve())
    base_model = str(config["base_model"]).replace("{out}", out)

    def fill(value: Any) -> Any:
        if isinstance(value, str):
            return value.replace("{out}", out).replace("{base_model}", base_model)
        if isinstance(value, list):
            return [fill(v) for v in value]
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        return value

    config = fill(config)
    config["base_model"] = base_model
    here = path.resolve().parent
    data = config["data"]
    if isinstance(data.get("traces"), str):
        data["traces"] = _resolve(data["traces"], here)
    train = config["train"]
    if "config" not in train:
        raise StudyError(f"{path}: train needs `config` (an `rps-train train` YAML)")
    train["config"] = _resolve(train["config"], here)
    if not Path(train["config"]).exists():
        raise StudyError(f"{path}: train config {train['config']!r} does not exist")
    backend = config["evaluate"].get("backend", "hf")
    if backend not in ("hf", "vllm"):
        raise StudyError(f"{path}: evaluate.backend must be hf (CPU) or vllm (GPU), got {backend!r}")
    for section in ("rejected", "evaluate"):
        if not config[section].get("sets"):
            raise StudyError(f"{path}: {section}.sets must list at least one evaluation set")
        for item in config[section]["sets"]:
            if not isinstance(item, dict) or item.get("task") not in ("rps_evals/arc1", "rps_evals/arc2"):
                raise StudyError(f"{path}: each of {section}.sets needs task: rps_evals/arc1 or rps_evals/arc2")
            if not all(isinstance(t, str) for t in item.get("task_ids") or []):
                raise StudyError(f"{path}: {section}.sets task_ids must be quoted strings (YAML reads an id "
                                 "such as 00576224 as a number)")
    _check_replicates(config.get("replicates"), path)
    return config


def _check_replicates(replicates: Any, path: Path) -> None:
    if replicates is None:
        return
    if not isinstance(replicates, dict) or set(replicates) - {"training_seeds", "sampling_seeds"}:
        raise StudyError(f"{path}: replicates takes training_seeds and sampling_seeds (lists of integers)")
    for key in ("training_seeds", "sampling_seeds"):
        seeds = replicates.get(key, [0])
        if (not isinstance(seeds, list) or not seeds or len(set(seeds)) != len(seeds)
                or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)):
            raise StudyError(f"{path}: replicates.{key} must be a list of different integers >= 0, got {seeds!r}")


def seeds(config: dict) -> tuple[list[int | None], list[int | None]]:
    """Training and sampling seeds; [None] each without `replicates` (no seed flags, today's names)."""
    replicates = config.get("replicates")
    if replicates is None:
        return [None], [None]
    return list(replicates.get("training_seeds", [0])), list(replicates.get("sampling_seeds", [0]))


def _suffix(seed: int | None, letter: str) -> str:
    return "" if seed is None else f"-{letter}{seed}"


def _with_seed(flags: list[str], seed: int | None) -> list[str]:
    """Generation flags with `--seed` set to this sampling seed (any other --seed removed)."""
    if seed is None:
        return flags
    out, skip = [], False
    for flag in flags:
        if skip:
            skip = False
        elif flag == "--seed":
            skip = True
        elif not flag.startswith("--seed="):
            out.append(flag)
    return out + ["--seed", str(seed)]


def eval_runs(config: dict, out: Path, arm: str, set_name: str) -> list[list[Path]]:
    """An arm's evaluated runs on one set as replicates: per training seed the run directories of its
    sampling passes (averaged into one replicate); the base model has no training seed, so each of
    its sampling passes is a replicate of its own."""
    training, sampling = seeds(config)
    if arm == "base":
        return [[out / "eval" / f"base{_suffix(p, 'p')}-{set_name}"] for p in sampling]
    return [[out / "eval" / f"{arm}{_suffix(seed, 's')}{_suffix(p, 'p')}-{set_name}" for p in sampling]
            for seed in training]


# --------------------------------------------------------------------------------------------
# Commands


def _set_name(item: dict) -> str:
    return f"{item['task'].rsplit('/', 1)[-1]}-{item.get('split', 'evaluation')}"


def _inspect_eval(item: dict, model: str, model_args: dict, generate: list[str], log_dir: Path,
                  sandbox: str) -> list[str]:
    from rps_evals.serving import inspect_vllm_args

    argv = ["inspect", "eval", item["task"], "--model", model]
    if model.startswith("vllm/"):  # Inspect starts vLLM itself: the same serving recipe
        argv += inspect_vllm_args()
    task_args = {"split": item.get("split", "evaluation"), "attempts": item.get("attempts", 2),
                 "sandbox": sandbox}
    if item.get("task_ids"):
        task_args["task_ids"] = ",".join(item["task_ids"])
    for key, value in task_args.items():
        argv += ["-T", f"{key}={value}"]
    for key, value in (model_args or {}).items():
        argv += ["-M", f"{key}={value}"]
    return argv + [str(a) for a in generate] + ["--log-dir", str(log_dir), "--display", "none"]


def _flags(values: dict[str, Any]) -> list[str]:
    argv = []
    for key, value in values.items():
        if isinstance(value, list):
            argv += [f"--{key}", *[str(v) for v in value]]
        else:
            argv += [f"--{key}", str(value).lower() if isinstance(value, bool) else str(value)]
    return argv


def _generate_flags(config: dict, section: dict) -> list[str]:
    """Sampling flags: Qwen3's recommended settings for the study's thinking mode on vLLM, plus the
    section's own `generate` flags."""
    from rps_evals.serving import generate_args

    flags = []
    if section.get("qwen3_sampling"):
        flags += generate_args(bool(config.get("thinking", True)))
    return flags + [str(a) for a in section.get("generate", [])]


def plan(config: dict, out: Path) -> list[Step]:
    """Every step of the study with its commands, inputs and outputs."""
    base = config["base_model"]
    steps: list[Step] = []
    base_inputs = [Path(base)] if config.get("tiny_model") else []
    if config.get("tiny_model"):
        steps.append(Step("model", [["rps-train", "tiny-model", "--out", base]],
                          outputs=[Path(base) / "config.json", Path(base) / "model.safetensors"]))

    rejected = config["rejected"]
    sandbox = rejected.get("sandbox", "docker")
    commands, logs = [], []
    for item in rejected["sets"]:
        log_dir = out / "logs" / f"rejected-{_set_name(item)}"
        logs.append(log_dir)
        commands.append(_inspect_eval(item, rejected["model"], rejected.get("model_args", {}),
                                      _generate_flags(config, rejected), log_dir, sandbox))
    steps.append(Step("rejected", commands, inputs=base_inputs, outputs=logs, fresh=logs,
                      note="the small model's ordinary answers on the training tasks"))

    data_dir = out / "data"
    data = dict(config["data"])
    data.setdefault("tokenizer", base)  # response_tokens counted with the trained model's tokenizer
    data_cmd = ["rps-train", "data", *_flags({k: v for k, v in data.items() if k != "allow_eval_overlap"}),
                "--rejected", *[f"{d}/{LOG}" for d in logs], "--out", str(data_dir)]
    if data.get("allow_eval_overlap"):
        data_cmd.append("--allow-eval-overlap")
    traces = Path(str(data.get("traces", "")))
    steps.append(Step("data", [data_cmd], inputs=logs + ([traces] if traces.is_file() else []) + base_inputs,
                      outputs=[data_dir / "manifest.json", data_dir / "stage1", data_dir / "stage2"],
                      fresh=[data_dir]))

    train = config["train"]
    launcher = train.get("launcher", ["rps-train"])
    common = ["--config", train["config"], "--model_name_or_path", base, "--data_dir", str(data_dir),
              *_flags(train.get("args", {})), "--resume", "true"]
    adapters = {}
    for seed in seeds(config)[0]:  # stage 1 once per training seed (in RPS's run); EPS continues from it
        suffix = _suffix(seed, "s")
        for schedule, ratio in SCHEDULES.items():
            name = schedule + suffix
            run_dir = out / name
            argv = [*launcher, "train", *common, "--output_dir", str(run_dir), "--schedule_name", schedule,
                    "--stage2_lr_ratio", str(ratio)] + ([] if seed is None else ["--seed", str(seed)])
            inputs = [data_dir / "manifest.json", Path(train["config"])] + base_inputs
            if schedule == "eps":  # the control continues from the SAME stage-1 model as RPS
                argv += ["--stage1_adapter", str(out / f"rps{suffix}" / "stage1")]
                inputs.append(out / f"rps{suffix}" / "stage1" / "adapter_model.safetensors")
            adapters[name] = run_dir / "stage2"
            steps.append(Step(name, [argv], inputs=inputs,
                              outputs=[run_dir / "manifest.json", run_dir / "stage2" / "adapter_model.safetensors"]))

    steps.append(_evaluate_step(config, out, adapters, base_inputs))
    steps.append(_compare_step(config, out))
    return steps


def _evaluate_step(config: dict, out: Path, adapters: dict[str, Path], base_inputs: list[Path]) -> Step:
    from rps_evals.serving import DEFAULT_PORT, served_model, vllm_serve_args

    evaluate = config["evaluate"]
    base = config["base_model"]
    sandbox = evaluate.get("sandbox", "docker")
    generate = _generate_flags(config, evaluate)
    commands: list[list[str]] = []
    server = url = None
    if evaluate.get("backend", "hf") == "vllm":
        port = int(evaluate.get("port", DEFAULT_PORT))
        server = vllm_serve_args(base, {n: str(p) for n, p in adapters.items()}, port=port,
                                 **evaluate.get("serve", {}))
        url = f"http://127.0.0.1:{port}/v1"
        models = {"base": (served_model(base), {}), **{n: (served_model(n), {}) for n in adapters}}
    else:  # CPU: Inspect's hf/ provider loads a directory, so each adapter is merged into a full model
        models = {"base": (f"hf/{Path(base).name}", {"model_path": base})}
        for name, adapter in adapters.items():
            merged = out / "models" / name
            commands.append(["rps-train", "merge", "--base", base, "--adapter", str(adapter), "--out", str(merged)])
            models[name] = (f"hf/{name}", {"model_path": str(merged)})
        for _, args in models.values():
            args.update(evaluate.get("model_args", {}))
    outputs, fresh = [], []
    for item in evaluate["sets"]:
        for name, (model, model_args) in models.items():
            for sampling_seed in seeds(config)[1]:
                run_name = f"{name}{_suffix(sampling_seed, 'p')}-{_set_name(item)}"
                log_dir = out / "logs" / f"eval-{run_name}"
                run_dir = out / "eval" / run_name
                fresh += [log_dir, run_dir]
                commands.append(_inspect_eval(item, model, model_args, _with_seed(generate, sampling_seed),
                                              log_dir, sandbox))
                commands.append(["rps-evals", "report", f"{log_dir}/{LOG}", "--out", str(run_dir)])
                outputs.append(run_dir / "results.json")
    inputs = [p / "adapter_model.safetensors" for p in adapters.values()] + base_inputs
    return Step("evaluate", commands, inputs=inputs, outputs=outputs, fresh=fresh, server=server, server_url=url)


def _compare_step(config: dict, out: Path) -> Step:
    commands, pieces, inputs = [], {}, []
    for item in config["evaluate"]["sets"]:
        name = _set_name(item)
        for x, y in COMPARISONS:
            target = out / "comparisons" / f"{x}-vs-{y}-{name}.json"
            side_y, side_x = eval_runs(config, out, y, name), eval_runs(config, out, x, name)
            commands.append(["rps-evals", "compare", *[",".join(map(str, r)) for r in side_y], "--vs",
                             *[",".join(map(str, r)) for r in side_x], "--out", str(target)])
            pieces[(x, y, name)] = target
            inputs += [run / "results.json" for side in (side_x, side_y) for replicate in side for run in replicate]

    def combine() -> None:
        combined: dict[str, Any] = {"format": FORMAT, "comparisons": {}, "verdicts": {}}
        for (x, y, name), path in pieces.items():
            comparison = json.loads(path.read_text())
            combined["comparisons"].setdefault(f"{x}_vs_{y}", {})[name] = comparison
            combined["verdicts"].setdefault(f"{x}_vs_{y}", {})[name] = named_verdicts(comparison, y, x)
        _write_json(out / "comparison.json", combined)

    return Step("compare", commands, inputs=sorted(set(inputs)),
                outputs=[out / "comparison.json", *pieces.values()], fresh=[out / "comparisons"], finish=combine,
                note=f"then {out / 'comparison.json'} holds all of them, with a verdict per metric")


def named_verdicts(comparison: dict[str, Any], a: str, b: str) -> dict[str, str]:
    """Each metric's one-line verdict (at its Holm-adjusted p; the primary's own), naming the arms."""
    from rps_evals.replicates import verdict

    return {metric: f"{row['level']} level: " + verdict(row["diff"], row["ci95"], row["p_holm"], row["level"],
                                                        names=(a, b))
            for metric, row in comparison["metrics"].items()}


# --------------------------------------------------------------------------------------------
# Running


def _hash(path: Path) -> str | None:
    """sha256 of a file, or of a folder's files (names and contents); None when it is missing."""
    if not path.exists():
        return None
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        h.update(str(file.relative_to(path) if file != path else file.name).encode())
        with file.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def step_key(step: Step) -> str:
    payload = {"commands": step.commands, "server": step.server,
               "inputs": {str(p): _hash(p) for p in step.inputs}}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _write_json(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(value, indent=2) + "\n")
    os.replace(tmp, path)


def _find_log(log_dir: Path) -> Path:
    logs = sorted(log_dir.glob("*.eval")) + sorted(log_dir.glob("*.json"))
    if len(logs) != 1:
        raise StudyError(f"expected one Inspect log in {log_dir}, found {len(logs)}")
    return logs[0]


def _expand(argv: list[str]) -> list[str]:
    return [str(_find_log(Path(a[: -len(LOG) - 1]))) if a.endswith("/" + LOG) else a for a in argv]


# Set for every step of a study that needs nothing from the Hub: without them transformers, datasets
# and Inspect's hf/ provider still ask the Hugging Face Hub about names they were given a path for, and
# retry for minutes on a machine without internet.
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def _is_local(config: dict) -> bool:
    """Every model and data set of the study is a path: the tiny model it builds (or a model
    directory), a rejected model loaded by `model_path`, the traces a file."""
    base_local = bool(config.get("tiny_model")) or Path(config["base_model"]).is_dir()
    rejected_local = "model_path" in (config["rejected"].get("model_args") or {})
    traces = config["data"].get("traces")
    return base_local and rejected_local and (traces is None or Path(str(traces)).is_file())


def _environment(config: dict) -> dict[str, str]:
    """The steps' environment: this Python's scripts first on PATH, so `rps-train`/`inspect` are the
    ones installed with it; the Hub switched off for a local study; no VLLM_BASE_URL from the
    caller (Inspect's vllm/ provider would use that server instead of starting its own; a step
    with a server of its own sets it to that server)."""
    env = {k: v for k, v in os.environ.items() if k != "VLLM_BASE_URL"}
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    if _is_local(config):
        env.update(OFFLINE_ENV)
    return env


def _start_server(step: Step, env: dict[str, str], log) -> subprocess.Popen:
    log(f"$ {shlex.join(step.server)} &")
    process = subprocess.Popen(step.server, env=env, start_new_session=True)
    deadline = time.monotonic() + 3600
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise StudyError(f"the vLLM server exited with code {process.returncode} before it was ready")
        try:
            with urllib.request.urlopen(f"{step.server_url}/models", timeout=5):
                return process
        except OSError:
            time.sleep(5)
    _stop(process)
    raise StudyError(f"the vLLM server did not answer at {step.server_url} within an hour")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def run_step(step: Step, env: dict[str, str], log) -> None:
    for path in step.fresh:
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
    for path in step.outputs:
        path.parent.mkdir(parents=True, exist_ok=True)
    server = _start_server(step, env, log) if step.server else None
    if server:
        env = {**env, "VLLM_BASE_URL": step.server_url, "VLLM_API_KEY": env.get("VLLM_API_KEY", "EMPTY")}
    try:
        for argv in step.commands:
            argv = _expand(argv)
            log(f"$ {shlex.join(argv)}")
            done = subprocess.run(argv, env=env)
            if done.returncode != 0:
                raise StepFailed(step.name, argv, done.returncode)
        if step.finish:
            step.finish()
    finally:
        if server:
            _stop(server)
    missing = [str(p) for p in step.outputs if not p.exists()]
    if missing:
        raise StudyError(f"step {step.name} finished without writing {', '.join(missing)}")


class StepFailed(RuntimeError):
    def __init__(self, name: str, argv: list[str], code: int):
        super().__init__(f"step {name}: `{shlex.join(argv)}` exited with code {code}; fix it and run the same "
                         "study command again: finished steps are kept")
        self.code = code


def print_plan(steps: list[Step], out: Path, log=print, offline: bool = False) -> None:
    log(f"# rps-train study: {len(steps)} steps into {out} (manifest {out / 'study.json'})")
    log("# steps run without the caller's VLLM_BASE_URL" + (
        " and with " + " ".join(f"{k}={v}" for k, v in OFFLINE_ENV.items()) if offline else ""))
    for step in steps:
        log(f"\n# step {step.name}" + (f": {step.note}" if step.note else ""))
        if step.server:
            log(shlex.join(step.server) + " &")
            log(f"# wait until {step.server_url}/models answers, then with VLLM_BASE_URL={step.server_url}:")
        for argv in step.commands:
            log(" ".join(shlex.quote(a) if LOG not in a else shlex.quote(a).replace(LOG, "<log>.eval")
                         for a in argv))
        if step.server:
            log("# stop the vLLM server")


def run(config_path: str, out_dir: str, dry_run: bool = False, until: str | None = None, log=print) -> dict:
    """Run (or print) the study; returns the manifest."""
    out = Path(out_dir).resolve()
    config = load_config(config_path, out)
    steps = plan(config, out)
    if until is not None and until not in [s.name for s in steps]:
        raise StudyError(f"--until must be one of {', '.join(s.name for s in steps)}, got {until!r}")
    if dry_run:
        print_plan(steps, out, log, offline=_is_local(config))
        return {}
    manifest_path = out / "study.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    if manifest.get("format") not in (None, FORMAT):
        raise StudyError(f"{manifest_path} is not a study manifest of this version")
    manifest.update(format=FORMAT, config=config, config_file=str(Path(config_path).resolve()))
    manifest.setdefault("steps", {})
    env = _environment(config)
    changed = False
    for step in steps:
        key = step_key(step)
        done = manifest["steps"].get(step.name)
        if not changed and done and done["key"] == key and all(
                _hash(p) is not None and done["outputs"].get(str(p)) == _hash(p) for p in step.outputs):
            log(f"== {step.name}: up to date, skipped")
        else:
            changed = True  # every later step depends on this one's outputs
            log(f"== {step.name}")
            manifest["steps"].pop(step.name, None)
            _write_json(manifest_path, manifest)
            started = time.monotonic()
            run_step(step, env, log)
            manifest["steps"][step.name] = {
                "key": key, "commands": step.commands, "seconds": round(time.monotonic() - started, 1),
                "outputs": {str(p): _hash(p) for p in step.outputs}}
            _write_json(manifest_path, manifest)
        if step.name == until:
            log(f"stopped after {until} (--until)")
            break
    else:
        manifest["summary"] = _summary(out, log)
        _write_json(manifest_path, manifest)
    return manifest


def _summary(out: Path, log) -> dict[str, Any]:
    """What to look at first: the data's fairness and contamination figures, where the comparison is."""
    data = json.loads((out / "data" / "manifest.json").read_text())
    lengths = data["lengths"]
    summary = {
        "comparison": str(out / "comparison.json"),
        "eval_overlap_tasks": data["eval_overlap_tasks"],
        "pairs": {stage: meta["pairs"] for stage, meta in data["stages"].items()},
        "reasoning_chars_p50": {side: (lengths[side]["reasoning_chars"] or {}).get("p50")
                                for side in ("chosen", "rejected")},
        "empty_reasoning": {side: lengths[side]["empty_reasoning"] for side in ("chosen", "rejected")},
        "length_warnings": lengths["warnings"],
    }
    log(f"\nstudy finished: {summary['comparison']}")
    log(f"data: {summary['pairs']} pairs, eval_overlap_tasks {summary['eval_overlap_tasks']}, reasoning_chars "
        f"p50 chosen {summary['reasoning_chars_p50']['chosen']} / rejected {summary['reasoning_chars_p50']['rejected']}")
    summary["verdicts"] = print_verdicts(out / "comparison.json", log)
    return summary


def print_verdicts(comparison_file: Path, log) -> list[str]:
    """The study's last lines: one plain verdict per comparison and evaluation set, always "X vs Y"
    with the difference X - Y, on the primary metric."""
    verdicts = json.loads(comparison_file.read_text())["verdicts"]
    lines = [f"{PRIMARY}, X - Y in points (docs/metrics.md, Replicate runs):"]
    for pair, by_set in verdicts.items():
        for set_name, per_metric in by_set.items():
            lines.append(f"  {pair.replace('_vs_', ' vs ')} ({set_name}): {per_metric[PRIMARY]}")
    for line in lines:
        log(line)
    return lines


# --------------------------------------------------------------------------------------------
# Adapter merge (CPU evaluation through Inspect's hf/ provider)


def merge(base: str, adapter: str, out: str) -> Path:
    """A full model directory: `base` with the LoRA `adapter` merged in, plus the base's tokenizer."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), adapter)
    target = Path(out)
    model.merge_and_unload().save_pretrained(target)
    AutoTokenizer.from_pretrained(base).save_pretrained(target)
    return target


def merge_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rps-train merge", description=merge.__doc__)
    parser.add_argument("--base", required=True)
    parser.add_argument("--adapter", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    if not (Path(args.adapter) / "adapter_config.json").exists():
        print(f"error: {args.adapter!r} is not a PEFT adapter directory", file=sys.stderr)
        return 2
    print(merge(args.base, args.adapter, args.out))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rps-train study", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="study YAML (configs/study_tiny.yaml, study_qwen3_8b.yaml)")
    parser.add_argument("--out", required=True, help="study directory (manifest study.json)")
    parser.add_argument("--dry-run", action="store_true", help="print every command, run nothing")
    parser.add_argument("--until", metavar="STEP", help=f"stop after this step ({', '.join(STEPS)}; with "
                                                        "replicates rps-s<seed> and eps-s<seed>)")
    args = parser.parse_args(argv)
    try:
        run(args.config, args.out, dry_run=args.dry_run, until=args.until)
    except StudyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except StepFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
