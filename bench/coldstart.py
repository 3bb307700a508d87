"""Cold start of each handler in a fresh interpreter, and the size of each function's package.

A cold start here is the init phase Lambda bills: importing app.py (with the core layer on the path,
as the runtime lays it out) in a new interpreter. Next to it, the time of importing only the
third-party modules that this import loaded, so what remains is the work our own modules do at import.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS = ("submit", "status", "process", "sweeper")
BUILD_DIR = ROOT / ".aws-sam" / "build"
# Modules worth knowing about: status answers polls and needs neither the AWS SDK nor the LLM client.
# (Powertools itself imports botocore's top-level package, only to tag the SDK's user agent.)
HEAVY = ("boto3", "botocore", "botocore.session", "openai")

# Runs in the fresh interpreter: standard library only, nothing imported before the timer starts.
_INIT = """
import json, sys, time
sys.path[:0] = {paths!r}
before = set(sys.modules)
started = time.perf_counter()
import app
init_ms = (time.perf_counter() - started) * 1000
ours = {ours!r}
third_party = [
    name for name, module in list(sys.modules.items())
    if name not in before and getattr(module, "__file__", None) and "-packages" in module.__file__
    and not any(module.__file__.startswith(prefix) for prefix in ours)
]
print(json.dumps({{"init_ms": init_ms, "modules": sorted(sys.modules), "third_party": third_party}}))
"""

_DEPS = """
import importlib, json, sys, time
names = json.loads(sys.stdin.read())
started = time.perf_counter()
for name in names:
    try:
        importlib.import_module(name)
    except Exception:
        pass
print(json.dumps({"deps_ms": (time.perf_counter() - started) * 1000}))
"""


def function_dirs() -> dict[str, Path]:
    dirs = {name: ROOT / "functions" / name for name in FUNCTIONS}
    dirs["floor"] = ROOT / "bench" / "floor_function"
    return dirs


def _template_environment(name: str) -> dict[str, str]:
    """The function's variables from the template; endpoints only the cloud knows get placeholders."""
    from devstack.template import UNRESOLVED, load_template

    template = load_template(ROOT / "infra" / "template.yaml")
    if name not in {spec.short_name for spec in template.functions.values()}:
        return {}
    return {
        variable: "http://127.0.0.1:9/123456789012/never-used" if value is UNRESOLVED else str(value)
        for variable, value in template.function(name).environment.items()
    }


def _environment(code_dir: Path, name: str) -> dict[str, str]:
    """What Lambda and the template give a function; nothing is reached during init."""
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    env.update(
        {
            "LAMBDA_TASK_ROOT": str(code_dir),
            "AWS_LAMBDA_FUNCTION_NAME": f"coldstart-{code_dir.name}",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "POWERTOOLS_SERVICE_NAME": "guideline-ingest",
            "POWERTOOLS_METRICS_NAMESPACE": "GuidelineIngest",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "DATABASE_URL": "postgresql://bench@127.0.0.1:9/never-connected",
            "JOBS_QUEUE_URL": "http://127.0.0.1:9/123456789012/never-sent",
            "OPENAI_API_KEY": "never-used",
            "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
            "OPENAI_MODEL": "gpt-4o-mini",
        }
    )
    env.update(_template_environment(name))
    return env


def _run(code: str, code_dir: Path, env: dict[str, str], stdin: str = "") -> dict:
    completed = subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-P", "-c", code],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=code_dir,
        env=env,
        timeout=120,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"cold start of {code_dir.name} failed: {completed.stderr[-2000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def measure(name: str, code_dir: Path, runs: int) -> dict:
    paths = [str(code_dir), str(ROOT / "layers" / "core")]
    init_code = _INIT.format(
        paths=paths, ours=[str(ROOT / "layers"), str(ROOT / "functions"), str(ROOT / "bench")]
    )
    env = _environment(code_dir, name)
    inits, deps = [], []
    first = None
    for _ in range(runs):
        result = _run(init_code, code_dir, env)
        first = first or result
        inits.append(result["init_ms"])
        deps.append(_run(_DEPS, code_dir, env, json.dumps(result["third_party"]))["deps_ms"])
    init_ms, deps_ms = statistics.median(inits), statistics.median(deps)
    loaded = set(first["modules"])
    return {
        "function": name,
        "runs": runs,
        "init_ms": round(init_ms, 1),
        "deps_ms": round(deps_ms, 1),
        "ours_ms": round(init_ms - deps_ms, 1),
        "init_ms_min": round(min(inits), 1),
        "deps_ms_min": round(min(deps), 1),
        "third_party_packages": sorted({module.split(".")[0] for module in first["third_party"]}),
        "imports": {module: module in loaded for module in HEAVY},
    }


def _tree_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def package_sizes() -> dict:
    """Unzipped sizes after `sam build` (Lambda's 250 MB limit counts unzipped function + layers)."""
    if not (BUILD_DIR / "template.yaml").is_file():
        return {"built": False}
    layer = BUILD_DIR / "CoreLayer"
    layer_bytes = _tree_bytes(layer) if layer.is_dir() else 0
    layer_has_openai = any(layer.glob("python/openai")) if layer.is_dir() else False
    functions = {}
    for name in FUNCTIONS:
        folder = BUILD_DIR / f"{name.capitalize()}Function"
        if not folder.is_dir():
            continue
        functions[name] = {
            "bytes": _tree_bytes(folder),
            "with_layer_bytes": _tree_bytes(folder) + layer_bytes,
            "contains_openai": (folder / "openai").is_dir() or layer_has_openai,
        }
    return {
        "built": True,
        "built_at": int((BUILD_DIR / "template.yaml").stat().st_mtime),
        "layer_bytes": layer_bytes,
        "layer_contains_openai": layer_has_openai,
        "functions": functions,
    }


def run(runs: int) -> dict:
    return {
        "handlers": [measure(name, code_dir, runs) for name, code_dir in function_dirs().items()],
        "packages": package_sizes(),
    }


if __name__ == "__main__":
    json.dump(run(int(sys.argv[1]) if len(sys.argv) > 1 else 3), sys.stdout, indent=2)
