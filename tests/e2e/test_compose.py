"""docker-compose.yml and the Dockerfile, checked without a Docker engine (none runs on our build
machines): Debian's docker-compose (v1) validates and renders the compose file, the rendered
wiring is checked against the service's own Settings, and the Dockerfile's install steps are
compared with the ones `make install` runs (derived from `make -n`, not copied here)."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from app.settings import Settings
from tests.helpers import ROOT
from tests.system_deps import require_system

DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "docker-compose.yml"
POSTGRES_OVERRIDE = ROOT / "docker-compose.postgres.yml"


def _require(tool: str, hint: str) -> str:
    """The tool's path (skips, or fails in CI, without it)."""
    path = shutil.which(tool)
    require_system(tool, path is not None, hint)
    return path


# ---------------------------------------------------------------------------------------------
# docker-compose.yml

def _compose(*args: str, files: tuple[Path, ...] = (COMPOSE,),
             **env: str) -> subprocess.CompletedProcess:
    exe = _require("docker-compose", "Debian: apt-get install docker-compose")
    # Without the caller's own settings, from the shell or from a .env file next to the
    # compose file: they would change what the file renders to.
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith("COMPOSE_") and k not in ("OLLAMA_MODEL", "RAG_API_KEY")}
    with tempfile.TemporaryDirectory() as tmp:
        no_env_file = Path(tmp, "empty.env")
        no_env_file.touch()
        chosen = [arg for f in files for arg in ("-f", str(f))]
        return subprocess.run([exe, "--env-file", str(no_env_file), *chosen, *args],
                              cwd=ROOT, env={**clean, **env}, capture_output=True, text=True,
                              timeout=60)


def _rendered(files: tuple[Path, ...] = (COMPOSE,), **env: str) -> dict:
    """`docker-compose config`: the file as compose reads it (variables substituted, YAML
    anchors resolved, defaults filled in)."""
    result = _compose("config", files=files, **env)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


@pytest.fixture(scope="module")
def config() -> dict:
    return _rendered()


@pytest.fixture(scope="module")
def services(config) -> dict:
    return config["services"]


def test_compose_file_is_valid():
    result = _compose("config", "-q")
    assert result.returncode == 0, f"docker-compose config -q: {result.stderr}"


def test_the_postgres_override_is_valid_and_puts_the_index_in_postgres():
    both = (COMPOSE, POSTGRES_OVERRIDE)
    result = _compose("config", "-q", files=both)
    assert result.returncode == 0, f"docker-compose config -q: {result.stderr}"
    config = _rendered(both, POSTGRES_PASSWORD="pw-from-the-shell")
    api, pg = config["services"]["api"], config["services"]["postgres"]
    assert re.fullmatch(r"pgvector/pgvector:[0-9.]+-pg18", pg["image"])  # major pinned
    url = urlsplit(api["environment"]["RAG_DATABASE_URL"])
    assert api["environment"]["RAG_STORE"] == "postgres"
    assert (url.hostname, url.port, url.path, url.username) == (
        "postgres", 5432, "/" + pg["environment"]["POSTGRES_DB"], pg["environment"]["POSTGRES_USER"])
    assert url.password == pg["environment"]["POSTGRES_PASSWORD"] == "pw-from-the-shell"
    assert api["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert api["depends_on"]["ollama-pull"]["condition"] == "service_completed_successfully"
    assert "pg_isready" in " ".join(pg["healthcheck"]["test"])
    assert _mounts(pg)["/var/lib/postgresql"] in config["volumes"]
    assert "ports" not in pg  # only the api reaches it
    settings = Settings(**{k[4:].lower(): v for k, v in api["environment"].items()
                           if k.startswith("RAG_") and v != ""})
    assert settings.store == "postgres" and settings.database_url.startswith("postgresql://")


def _mounts(service: dict) -> dict[str, str]:
    """Container path -> source (a host path or a named volume), from short or long syntax."""
    mounts = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
        else:
            source, target = volume["source"], volume["target"]
        mounts[target] = source
    return mounts


def test_api_reaches_ollama_and_asks_for_the_model_that_was_pulled(services):
    api, pull = services["api"]["environment"], services["ollama-pull"]
    assert api["RAG_GENERATOR"] == "openai"
    base = urlsplit(api["RAG_OPENAI_BASE_URL"])
    assert (base.hostname, base.port, base.path) == ("ollama", 11434, "/v1")
    assert "ollama" in services
    # The pull talks to the same server, pulls the model the api asks for, and waits for it.
    assert urlsplit(pull["environment"]["OLLAMA_HOST"]).hostname == "ollama"
    assert pull["environment"]["MODEL"] == api["RAG_OPENAI_MODEL"] == "qwen2.5:1.5b-instruct"
    assert 'ollama pull "$$MODEL"' in " ".join(pull["command"])  # $$: the shell's $MODEL
    assert pull["depends_on"]["ollama"]["condition"] == "service_healthy"
    assert "healthcheck" in services["ollama"]
    # Ollama's window holds the prompt + answer the api budgets for.
    assert (int(services["ollama"]["environment"]["OLLAMA_CONTEXT_LENGTH"])
            >= int(api["RAG_CONTEXT_WINDOW"]))


def test_model_is_overridable_in_one_place():
    services = _rendered(OLLAMA_MODEL="llama3.2:1b")["services"]
    assert services["ollama-pull"]["environment"]["MODEL"] == "llama3.2:1b"
    assert services["api"]["environment"]["RAG_OPENAI_MODEL"] == "llama3.2:1b"


def test_api_starts_after_the_pull_and_is_healthy_when_ready(services):
    api = services["api"]
    assert api["depends_on"]["ollama-pull"]["condition"] == "service_completed_successfully"
    assert api["build"]["context"] == str(ROOT)
    assert api.get("restart") in ("unless-stopped", "always", "on-failure")
    probe = " ".join(api["healthcheck"]["test"])
    assert f"127.0.0.1:{api['environment']['RAG_PORT']}/readyz" in probe


def test_api_serves_on_all_interfaces_inside_the_container_and_publishes_its_port(services):
    api = services["api"]
    env = api["environment"]
    assert env["RAG_HOST"] == "0.0.0.0"  # the default, 127.0.0.1, is unreachable from the host
    published = [str(p).split("/")[0].split(":")[-1] for p in api["ports"]]
    assert env["RAG_PORT"] in published


def test_corpus_is_bind_mounted_and_index_is_a_named_volume(config):
    api = config["services"]["api"]
    mounts, env = _mounts(api), api["environment"]
    assert mounts[env["RAG_CORPUS_DIR"]] == str(ROOT / "corpus")
    assert mounts[env["RAG_INDEX_DIR"]] in config["volumes"]
    assert _mounts(config["services"]["ollama"])["/root/.ollama"] in config["volumes"]


def test_api_environment_is_what_the_service_reads(services, monkeypatch):
    """Every RAG_ variable is a real setting (Settings ignores unknown ones silently, so a typo
    would otherwise go unnoticed) and the values validate, read the way the service reads them."""
    env = services["api"]["environment"]
    fields = {f"RAG_{name.upper()}" for name in Settings.model_fields}
    assert {k for k in env if k.startswith("RAG_")} - fields == set()
    for key in [k for k in os.environ if k.startswith("RAG_") or k == "OPENAI_API_KEY"]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, str(value))
    settings = Settings()
    assert settings.generator == "openai"
    assert settings.host == "0.0.0.0"
    assert settings.openai_model == env["RAG_OPENAI_MODEL"]
    assert settings.openai_api_key is not None  # the client sends some key; Ollama ignores it
    assert settings.api_key is None  # RAG_API_KEY unset in the shell: compose passes "", no key


# ---------------------------------------------------------------------------------------------
# Dockerfile vs Makefile

def _instructions(text: str) -> list[tuple[str, str]]:
    """The Dockerfile's (INSTRUCTION, arguments): comment lines dropped (also inside a
    continuation, as Docker does) and lines ending in a backslash joined."""
    out, pending = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#") or (not stripped and not pending):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        word, _, rest = (pending + stripped).strip().partition(" ")
        out.append((word.upper(), rest.strip()))
        pending = ""
    return out


def _arg_defaults(text: str) -> dict[str, str]:
    defaults = {}
    for instruction, rest in _instructions(text):
        if instruction == "ARG" and "=" in rest:
            name, _, value = rest.partition("=")
            defaults[name] = value.strip("\"'")
    return defaults


def _argv(command: str, env: dict[str, str]) -> list[str]:
    """The words `sh -c` makes of one command: what both `RUN` (shell form: /bin/sh -c, with
    the ARGs in the environment) and make run, expansions included."""
    result = subprocess.run(["sh", "-c", f'printf "%s\\0" {command}'], env=env,
                            capture_output=True, text=True, timeout=10)
    assert result.returncode == 0, f"{command!r}: {result.stderr}"
    return result.stdout.split("\0")[:-1]


def _pip_step(argv: list[str]) -> tuple[str, ...] | None:
    """What follows `pip` in `pip ...` or `<any>/python3.x -m pip ...`; None for other commands.
    This drops the interpreter's path, the one thing that may differ (.venv vs /opt/venv)."""
    if argv and re.fullmatch(r"(.*/)?pip[\d.]*", argv[0]):
        return tuple(argv[1:])
    if (len(argv) >= 3 and re.fullmatch(r"(.*/)?python[\d.]*", argv[0])
            and argv[1:3] == ["-m", "pip"]):
        return tuple(argv[3:])
    return None


def _pip_steps(commands: list[str], env: dict[str, str]) -> list[tuple[str, ...]]:
    steps = []
    for line in commands:
        for command in re.split(r"\s*&&\s*", line):
            if "pip" in command and (step := _pip_step(_argv(command, env))) is not None:
                steps.append(step)
    return steps


def _docker_pip_steps(text: str) -> list[tuple[str, ...]]:
    runs = [rest for instruction, rest in _instructions(text) if instruction == "RUN"]
    assert not any(run.startswith("[") for run in runs), "exec-form RUN: extend this parser"
    return _pip_steps(runs, {"PATH": os.environ["PATH"], **_arg_defaults(text)})


def _make_dry_run(target: str, tmp: Path, **variables: str) -> list[str]:
    """The commands `make <target>` would run (-n: printed, not run; -B: all of them, whatever
    is installed already), with the venv in a folder that must stay absent."""
    make = _require("make", "Debian: apt-get install make")
    venv = tmp / "venv"
    env = {k: v for k, v in os.environ.items()  # not a parent make's flags (`make test`)
           if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "VENV", "PYTHON", "TORCH_INDEX")}
    args = [f"{k}={v}" for k, v in {"VENV": str(venv), **variables}.items()]
    result = subprocess.run([make, "-n", "-B", "--no-print-directory", target, *args], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert not venv.exists(), "make -n created the venv"
    return [line for line in result.stdout.splitlines() if line and not line.startswith("#")]


@pytest.fixture(scope="module")
def dockerfile() -> str:
    return DOCKERFILE.read_text()


def test_dockerignore_lets_in_what_the_dockerfile_copies(dockerfile):
    """.dockerignore is an allow-list (`*`, then `!path`): a COPY of anything else would fail
    only at build time, on a machine with Docker."""
    rules = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert rules[0] == "*"  # so .venv, index/, .git, tests, caches, a .env stay out
    allowed = {rule[1:].rstrip("/") for rule in rules if rule.startswith("!")}
    copied = {source.rstrip("/") for instruction, rest in _instructions(dockerfile)
              if instruction == "COPY" for source in rest.split()[:-1]
              if not source.startswith("--")}
    assert {"pyproject.toml", "app", "ingest"} <= copied <= allowed
    assert all((ROOT / source).exists() for source in copied)


@pytest.fixture(scope="module")
def make_install_steps(tmp_path_factory, dockerfile) -> list[tuple[str, ...]]:
    """`make install`'s pip steps with the CPU torch index the image builds with."""
    torch_index = _arg_defaults(dockerfile)["TORCH_INDEX"]
    commands = _make_dry_run("install", tmp_path_factory.mktemp("make"), TORCH_INDEX=torch_index)
    return _pip_steps(commands, {"PATH": os.environ["PATH"]})


def test_image_builds_the_cpu_torch(dockerfile):
    assert _arg_defaults(dockerfile)["TORCH_INDEX"] == "https://download.pytorch.org/whl/cpu"


def test_dockerfile_installs_like_make(dockerfile, make_install_steps):
    # Several steps, torch among them: the make side really was parsed.
    assert len(make_install_steps) >= 3
    assert any(arg.startswith("torch==") for step in make_install_steps for arg in step)
    assert _docker_pip_steps(dockerfile) == make_install_steps


@pytest.mark.parametrize("old, new", [
    ("torch==2.13.0", "torch==2.12.0"),                 # another torch
    (' ${TORCH_INDEX:+--index-url "$TORCH_INDEX"}', ""),  # PyPI's (CUDA) torch
    ("-m pip install -e .", "-m pip install ."),        # not the same install of the project
    ("--upgrade pip \\\n && ", ""),                     # a step missing
])
def test_the_comparison_notices_drift(dockerfile, make_install_steps, old, new):
    assert old in dockerfile, "the mutation no longer applies: update it"
    assert _docker_pip_steps(dockerfile.replace(old, new, 1)) != make_install_steps


def test_the_comparison_notices_a_different_order(dockerfile, make_install_steps):
    # torch after the project: the same steps, but pip would have picked PyPI's torch by then
    torch, project = 'torch==2.13.0 ${TORCH_INDEX:+--index-url "$TORCH_INDEX"}', "-e ."
    assert f"install {torch}\n" in dockerfile and f"install {project}\n" in dockerfile
    swapped = (dockerfile.replace(f"install {torch}\n", "install SWAP\n")
               .replace(f"install {project}\n", f"install {torch}\n")
               .replace("install SWAP\n", f"install {project}\n"))
    steps = _docker_pip_steps(swapped)
    assert sorted(steps) == sorted(make_install_steps) and steps != make_install_steps


def test_image_runs_what_make_serve_runs_with_the_installed_python(dockerfile, tmp_path):
    instructions = _instructions(dockerfile)
    cmd = json.loads([rest for instruction, rest in instructions if instruction == "CMD"][-1])
    serve = _make_dry_run("serve", tmp_path)[-1].split()  # the last command is serve's own
    assert _pip_step(serve) is None and re.fullmatch(r".*/python[\d.]*", serve[0])
    assert cmd[0] == "python" and cmd[1:] == serve[1:] == ["-m", "app"]
    # `python` is the venv's, the one the pip steps installed into: its bin/ is first on PATH.
    runs = [rest for instruction, rest in instructions if instruction == "RUN"]
    pythons = {m for run in runs for m in re.findall(r"(\S+)/python -m pip", run)}
    path = [rest.split("PATH=")[1].split()[0] for instruction, rest in instructions
            if instruction == "ENV" and "PATH=" in rest][-1]
    assert pythons and pythons == {path.split(":")[0]}
