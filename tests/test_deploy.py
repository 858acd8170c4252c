"""The deployment files and docs/deploy.md: what an operator copies must work as written.

No Docker, systemd or cluster is needed: every `notifier ...` they mention is parsed by
the real command line, every NOTIFIER_* variable is a real setting, and the unit files,
crontab, Dockerfile, compose file and Kubernetes manifests have what the docs promise.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from notifier.cli import cli
from notifier.settings import Settings, load_settings, parse_duration

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
DOCS = ROOT / "docs" / "deploy.md"
SYSTEMD = DEPLOY / "systemd"
K8S = DEPLOY / "k8s"
NOTIFIER = Path(sys.executable).parent / "notifier"
STATE_DIR = "/var/lib/notifier"

# ---------------------------------------------------------------------------
# Finding the `notifier ...` invocations in files and docs


@dataclass(frozen=True)
class Invocation:
    """One mention of a notifier command: where, its arguments, and how strictly to check."""

    where: str
    args: tuple[str, ...]
    command_line: bool  # a command as typed or run (full parse), not a mention in prose

    def __str__(self) -> str:
        return f"{self.where}: notifier {' '.join(self.args)}"


# ["notifier", "db", "upgrade"]: Dockerfile CMD, compose and Kubernetes commands.
JSON_COMMAND = re.compile(r'\[\s*"notifier"\s*(?:,\s*"[^"]*"\s*)*\]')
# The program: `notifier` alone or a path ending in it, as a whole word.
PROGRAM = re.compile(r"""(?:^|(?<=[\s"'`=(\[]))((?:[\w.~$/-]*/)?notifier)(?=[\s"'`]|$)""")
# Where a shell command ends: comments, redirections, operators, the end of inline code.
COMMAND_END = re.compile(r"`|\s#|\s\d?>|\s<|&&|\|\||;|\|")
SHELL_STARTS = ("&&", "||", ";", "|", "$", "CMD")
GLOBAL_FLAGS = {"--version", "--help", "-h"}


def _split(rest: str) -> list[str]:
    """Return the words of a command's arguments, up to where the shell command ends."""
    rest = COMMAND_END.split(rest, maxsplit=1)[0]
    try:
        return shlex.split(rest)
    except ValueError:  # the end of a quoted `sh -c '...'`
        return shlex.split(rest.replace("'", " ").replace('"', " "))


def _strip_config(args: list[str]) -> list[str]:
    """Drop the global --config PATH."""
    if args[:1] == ["--config"]:
        return args[2:]
    if args and args[0].startswith("--config="):
        return args[1:]
    return args


def invocations_in(text: str, where: str, markdown: bool = False) -> list[Invocation]:
    """Return every notifier invocation in text (markdown: its code blocks and inline code).

    A command line is what a shell or a service manager would run: a line of a code
    block, or the program at the start of a command (a path to it, after `&&`, CMD, or
    after a container named notifier). Elsewhere (comments, prose) it is a mention.
    """
    if markdown:
        fence = r"^```[^\n]*\n(.*?)^```"
        blocks = re.findall(fence, text, flags=re.MULTILINE | re.DOTALL)
        prose = re.sub(fence, "", text, flags=re.MULTILINE | re.DOTALL)
        spans = "\n".join(f"`{span}`" for span in re.findall(r"`([^`\n]+)`", prose))
        return [
            *(i for block in blocks for i in _invocations(block, where, in_code=True)),
            *_invocations(spans, where, in_code=False),
        ]
    return _invocations(text, where, in_code=False)


def _invocations(text: str, where: str, in_code: bool) -> list[Invocation]:
    """Return the invocations in plain text, line by line."""
    text = text.replace("\\\n", " ")
    found: list[Invocation] = []
    for number, raw in enumerate(text.splitlines(), 1):
        place = f"{where}:{number}" if where != "docs/deploy.md" else where
        for match in JSON_COMMAND.finditer(raw):
            found.append(Invocation(place, tuple(json.loads(match.group())[1:]), True))
        line = JSON_COMMAND.sub(" ", raw)
        for match in PROGRAM.finditer(line):
            before = line[: match.start()].rstrip()
            args = _strip_config(_split(line[match.end() :]))
            program = (
                match.group(1).endswith("/bin/notifier")
                or not before
                or before.endswith(SHELL_STARTS)
                or before.split()[-1:] == ["notifier"]  # docker exec notifier notifier ...
            )
            if not args or args[0].startswith("$"):  # no command, or a shell "$@"
                continue
            if args[0] in cli.commands or args[0] in GLOBAL_FLAGS:
                found.append(Invocation(place, tuple(args), in_code or program))
            elif program:
                found.append(Invocation(place, tuple(args), True))  # a misspelt command
    return found


def all_invocations() -> list[Invocation]:
    """Return the invocations in every deploy file and in docs/deploy.md."""
    found = []
    for path in sorted(p for p in DEPLOY.rglob("*") if p.is_file()):
        found += invocations_in(path.read_text(), str(path.relative_to(ROOT)))
    found += invocations_in(DOCS.read_text(), "docs/deploy.md", markdown=True)
    return found


INVOCATIONS = all_invocations()
PLACEHOLDER = re.compile(r"^[A-Z][A-Z_:]*$")  # EMAIL, N, HH:MM in prose


def resolve(args: tuple[str, ...]) -> tuple[list[str], click.Command, list[str]]:
    """Return the command path, the command and its remaining arguments."""
    command: click.Command = cli
    path: list[str] = []
    rest = list(args)
    while isinstance(command, click.Group) and rest and not rest[0].startswith("-"):
        sub = command.get_command(click.Context(command), rest[0])
        assert sub is not None, f"`notifier {' '.join([*path, rest[0]])}` is no command"
        command, path = sub, [*path, rest.pop(0)]
    return path, command, rest


@pytest.mark.parametrize("invocation", INVOCATIONS, ids=str)
def test_every_notifier_command_mentioned_is_real(invocation: Invocation) -> None:
    if invocation.args[0] in GLOBAL_FLAGS:
        assert CliRunner().invoke(cli, [invocation.args[0]]).exit_code == 0
        return
    path, command, rest = resolve(invocation.args)
    assert path and not isinstance(command, click.Group), f"{invocation}: names no command"
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    names = {n for p in command.params if isinstance(p, click.Option) for n in p.opts}
    names |= {n for p in command.params if isinstance(p, click.Option) for n in p.secondary_opts}
    for word in rest:
        if word.startswith("-"):
            assert word.split("=")[0] in names, f"{invocation}: {command.name} has no {word}"
    if invocation.command_line:
        # Parsed as the shell would hand it over: types, ranges, arguments, choices.
        assert not any(PLACEHOLDER.match(w) for w in rest), f"{invocation}: a placeholder"
        context = command.make_context(path[-1], list(rest))
        if "max_age" in context.params:
            parse_duration(context.params["max_age"])


def test_the_commands_an_operator_relies_on_are_there() -> None:
    def lines(where: str) -> set[tuple[str, ...]]:
        return {i.args for i in INVOCATIONS if i.command_line and i.where.startswith(where)}

    assert ("run-once",) in lines("deploy/crontab")
    assert ("health", "--max-age", "30m") in lines("deploy/crontab")
    assert lines("deploy/systemd/notifier.service") == {("run",), ("db", "upgrade")}
    assert lines("deploy/systemd/notifier-once.service") == {("run-once",)}
    assert lines("deploy/systemd/notifier-web.service") == {("serve",), ("db", "upgrade")}
    assert ("serve", "--host", "0.0.0.0") in lines("deploy/compose.yaml")
    assert {("run",), ("health", "--max-age", "15m")} <= lines("deploy/Dockerfile")
    assert lines("deploy/compose.yaml") >= {("run",), ("db", "upgrade")}
    assert lines("deploy/k8s/cronjob.yaml") == {("run-once",)}
    assert lines("deploy/k8s/db-upgrade-job.yaml") == {("db", "upgrade")}
    documented = lines("docs/deploy.md")
    for args in [("run-once",), ("db", "upgrade"), ("db", "current"), ("status",)]:
        assert args in documented, args
    assert ("send", "--workers", "4") in documented


def test_the_invocation_finder_tells_commands_from_prose() -> None:
    text = (
        "useradd --system --shell /usr/sbin/nologin notifier\n"
        "docker compose exec notifier notifier ingest https://example.org/feed\n"
        'CMD ["notifier", "run"]\n'
        "*/10 * * * * cd ~/n && .venv/bin/notifier --config n.toml run-once >>log 2>&1\n"
        "sudo -u notifier sh -c 'exec /opt/v/bin/notifier --config /etc/n.toml status'\n"
        "# see `notifier send --workers N` and the notifier user\n"
        "notifier runonce\n"
    )
    assert [(i.args, i.command_line) for i in invocations_in(text, "t")] == [
        (("ingest", "https://example.org/feed"), True),
        (("run",), True),
        (("run-once",), True),
        (("status",), True),
        (("send", "--workers", "N"), False),
        (("runonce",), True),  # and so test_every_notifier_command_mentioned_is_real fails
    ]


# ---------------------------------------------------------------------------
# Settings


def test_every_notifier_variable_is_a_setting() -> None:
    known = {f"NOTIFIER_{name.upper()}" for name in Settings.model_fields}
    known |= {"NOTIFIER_CONFIG", "NOTIFIER_DEBUG"}  # read by the command line, not Settings
    paths = [p for p in DEPLOY.rglob("*") if p.is_file()] + [DOCS, ROOT / ".dockerignore"]
    used = set()
    for path in paths:
        for name in re.findall(r"\bNOTIFIER_[A-Z0-9_]*[A-Z0-9]\b", path.read_text()):
            assert name in known, f"{path.relative_to(ROOT)}: {name} is no setting"
            used.add(name)
    assert {"NOTIFIER_DATABASE_URL", "NOTIFIER_SMTP_URL", "NOTIFIER_STATE_DIR"} <= used


def test_the_example_urls_are_valid_settings() -> None:
    # What the docs tell an operator to write must pass validation as it stands.
    text = DOCS.read_text() + (DEPLOY / "crontab").read_text()
    values = re.findall(r"\bNOTIFIER_(SMTP_URL|DATABASE_URL)=(\S+)", text)
    assert len(values) >= 4
    for name, value in values:
        Settings(**{name.lower(): value.rstrip("`'\")")})


# ---------------------------------------------------------------------------
# cron


CRON_FIELD = re.compile(r"^(\*|\d+(-\d+)?)(/\d+)?(,(\*|\d+(-\d+)?)(/\d+)?)*$")


def cron_lines() -> list[tuple[list[str], str]]:
    """Return (the five time fields, the command) of every crontab line, commented or not."""
    entries = []
    for raw in (DEPLOY / "crontab").read_text().splitlines():
        line = raw.lstrip("# ").strip()
        if not line or not re.match(r"^[\d*]", line):
            continue
        fields = line.split(None, 5)
        entries.append((fields[:5], fields[5]))
    return entries


def test_the_crontab_runs_run_once_every_ten_minutes() -> None:
    entries = cron_lines()
    assert entries
    for fields, command in entries:
        assert len(fields) == 5 and all(CRON_FIELD.match(f) for f in fields), fields
        assert "%" not in command  # cron turns % into a newline
    active = [
        line
        for line in (DEPLOY / "crontab").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    jobs = [line for line in active if not re.match(r"^[A-Z_]+=", line)]
    assert len(jobs) == 1
    fields, command = jobs[0].split(None, 5)[:5], jobs[0].split(None, 5)[5]
    assert fields == ["*/10", "*", "*", "*", "*"]
    assert "run-once" in command and "--config" in command
    assert ">>" in command and "2>&1" in command  # logged, not mailed every 10 minutes
    assert "flock" not in command


# ---------------------------------------------------------------------------
# systemd


def read_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """Return a unit file as section -> key -> values (keys may repeat)."""
    unit: dict[str, dict[str, list[str]]] = {}
    section = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            assert section not in unit, f"{path.name}: [{section}] twice"
            unit[section] = {}
            continue
        assert section is not None and "=" in line, f"{path.name}: {line!r}"
        key, _, value = line.partition("=")
        unit[section].setdefault(key.strip(), []).append(value.strip())
    return unit


def one(unit: dict[str, dict[str, list[str]]], section: str, key: str) -> str:
    """Return the single value of a key."""
    values = unit[section].get(key, [])
    assert len(values) == 1, f"[{section}] {key}: {values}"
    return values[0]


def seconds(value: str) -> float:
    """Return a systemd time span ("5min", "30s", "1h") in seconds."""
    units = {"s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600}
    total = 0.0
    for number, unit in re.findall(r"(\d+)\s*([a-z]*)", value):
        total += int(number) * units[unit or "s"]
    return total


HARDENING = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "User": "notifier",
    "Group": "notifier",
    "StateDirectory": "notifier",
    "ReadWritePaths": STATE_DIR,
    "EnvironmentFile": "-/etc/notifier/env",
    "WorkingDirectory": STATE_DIR,
}


def test_the_service_unit() -> None:
    unit = read_unit(SYSTEMD / "notifier.service")
    assert set(unit) == {"Unit", "Service", "Install"}
    service = unit["Service"]
    assert one(unit, "Service", "Type") == "exec"
    assert one(unit, "Service", "ExecStart").endswith("/bin/notifier run")
    assert one(unit, "Service", "ExecStartPre").endswith("/bin/notifier db upgrade")
    # A daemon that lost its database connection exits 0: it must be restarted too.
    assert one(unit, "Service", "Restart") == "always"
    assert one(unit, "Service", "KillSignal") == "SIGTERM"
    assert one(unit, "Service", "KillMode") == "mixed"  # notifier stops its own workers
    # Long enough for the messages in flight (smtp_timeout) and a fetch with its retries.
    defaults = Settings()
    assert seconds(one(unit, "Service", "TimeoutStopSec")) >= max(
        2 * defaults.smtp_timeout, defaults.fetch_timeout * defaults.fetch_attempts
    )
    assert f"NOTIFIER_STATE_DIR={STATE_DIR}" in service["Environment"]
    for key, value in HARDENING.items():
        assert one(unit, "Service", key) == value, key
    assert one(unit, "Install", "WantedBy") == "multi-user.target"


def test_the_web_unit_shares_the_service_user_state_and_hardening() -> None:
    web = read_unit(SYSTEMD / "notifier-web.service")
    service = read_unit(SYSTEMD / "notifier.service")
    assert one(web, "Service", "ExecStart").endswith("/bin/notifier serve")
    assert one(web, "Service", "ExecStartPre").endswith("/bin/notifier db upgrade")
    # The same state directory: feeds/ to serve and secret.key to check links with.
    for key in ("User", "Group", "EnvironmentFile", "WorkingDirectory", "StateDirectory"):
        assert one(web, "Service", key) == one(service, "Service", key), key
    assert web["Service"]["Environment"] == service["Service"]["Environment"]
    assert one(web, "Service", "Restart") == "always"
    for key, value in HARDENING.items():
        assert one(web, "Service", key) == value, key


def test_the_timer_and_its_oneshot_service() -> None:
    daemon = read_unit(SYSTEMD / "notifier.service")
    once = read_unit(SYSTEMD / "notifier-once.service")
    timer = read_unit(SYSTEMD / "notifier-once.timer")
    assert one(once, "Service", "Type") == "oneshot"
    assert one(once, "Service", "ExecStart").endswith("/bin/notifier run-once")
    assert "Restart" not in once["Service"]  # the next tick is the retry
    assert "Install" not in once  # started by the timer
    for key, value in HARDENING.items():
        assert one(once, "Service", key) == value, key
    # The same program, environment and sandbox as the service.
    for key in ("Environment", "ProtectSystem", "RestrictAddressFamilies", "UMask", "KillMode"):
        assert once["Service"][key] == daemon["Service"][key], key
    program = one(daemon, "Service", "ExecStart").split()[0]
    assert one(once, "Service", "ExecStart").split()[0] == program
    assert one(timer, "Timer", "OnCalendar") == "*:0/10"
    assert one(timer, "Timer", "Persistent") == "true"
    assert 0 < seconds(one(timer, "Timer", "RandomizedDelaySec")) <= 120
    assert "Unit" not in timer["Timer"]  # notifier-once.timer starts notifier-once.service
    assert one(timer, "Install", "WantedBy") == "timers.target"


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed")
def test_systemd_analyze_verifies_the_units(tmp_path: Path) -> None:
    # verify insists that ExecStart exists: point the copies at this virtualenv's notifier.
    for path in SYSTEMD.iterdir():
        text = path.read_text().replace("/opt/notifier/venv/bin/notifier", str(NOTIFIER))
        (tmp_path / path.name).write_text(text)
    result = subprocess.run(
        ["systemd-analyze", "verify", *sorted(p.name for p in tmp_path.iterdir())],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


# ---------------------------------------------------------------------------
# Docker


def dockerfile() -> list[tuple[str, str]]:
    """Return the Dockerfile's instructions as (INSTRUCTION, arguments)."""
    lines = [
        line
        for line in (DEPLOY / "Dockerfile").read_text().splitlines()
        if not line.lstrip().startswith("#")
    ]
    text = "\n".join(lines).replace("\\\n", " ")
    return [
        (word.upper(), " ".join(rest.split()))
        for word, _, rest in (line.strip().partition(" ") for line in text.splitlines())
        if word
    ]


def test_the_dockerfile() -> None:
    steps = dockerfile()
    args = dict(a.split("=", 1) for i, a in steps if i == "ARG" and "=" in a)
    bases = [a.split()[0] for i, a in steps if i == "FROM"]
    assert {re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], b) for b in bases} == {
        "python:3.11-slim"
    }
    runs = " ".join(a for i, a in steps if i == "RUN")
    assert "pip install '.[postgres]'" in runs
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "postgres" in pyproject["project"]["optional-dependencies"]
    # What the wheel is built from: the readme, the package, the force-included templates.
    copied = {src for i, a in steps if i == "COPY" and "--from" not in a for src in a.split()[:-1]}
    needed = {"pyproject.toml", pyproject["project"]["readme"], "notifier"}
    needed |= set(pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"])
    assert needed <= copied
    users = [a for i, a in steps if i == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    assert ("VOLUME", STATE_DIR) in steps
    assert f"NOTIFIER_STATE_DIR={STATE_DIR}" in " ".join(a for i, a in steps if i == "ENV")
    assert ("STOPSIGNAL", "SIGTERM") in steps
    [health] = [a for i, a in steps if i == "HEALTHCHECK"]
    assert health.endswith("CMD notifier health --max-age 15m")
    # Unhealthy only after several composes were missed.
    assert parse_duration("15m") >= 2 * Settings().compose_every
    cmds = [a for i, a in steps if i == "CMD"]
    assert json.loads(cmds[-1]) == ["notifier", "run"]


def dockerignore() -> list[str]:
    """Return the patterns of .dockerignore."""
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def ignored(path: str, patterns: list[str]) -> bool:
    """Tell whether Docker leaves path out of the build context (no ! patterns here)."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    for pattern in (p.rstrip("/") for p in patterns):
        assert not pattern.startswith("!")
        if pattern.startswith("**/"):
            tail = pattern[3:]
            if any(fnmatch.fnmatch(part, tail) for part in parts):
                return True
        elif any(fnmatch.fnmatch(prefix, pattern) for prefix in prefixes):
            return True
    return False


def test_the_build_context_leaves_out_local_state_and_keeps_the_sources() -> None:
    patterns = dockerignore()
    for path in [".venv/bin/python", "state/notifier.db", "bench/.cache/x", ".git/HEAD"]:
        assert ignored(path, patterns), path
    assert ignored("notifier.toml", patterns)  # may hold passwords
    assert ignored("notifier/__pycache__/cli.cpython-311.pyc", patterns)
    sources = [
        "pyproject.toml",
        "README.md",
        "notifier/cli.py",
        "notifier/embedding/tokenizer.json",
        "notifier/storage/migrations/env.py",
        "templates/email/digest.html.j2",
    ]
    for path in sources:
        assert not ignored(path, patterns), path


# ---------------------------------------------------------------------------
# compose and Kubernetes (parsed with PyYAML when it is there; it is no dependency)


def test_the_compose_file_has_its_key_lines() -> None:
    text = (DEPLOY / "compose.yaml").read_text()
    for line in [
        "condition: service_completed_successfully",
        "image: postgres:16",
        "pg_isready",
        "image: axllent/mailpit",
        "NOTIFIER_SMTP_URL: smtp://mailpit:1025",
        "dockerfile: deploy/Dockerfile",
    ]:
        assert line in text, line
    assert "\t" not in text


def test_the_compose_file() -> None:
    yaml = pytest.importorskip("yaml")
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"notifier", "migrate", "web", "postgres", "mailpit"}
    web = services["web"]
    assert web["command"] == ["notifier", "serve", "--host", "0.0.0.0"]
    assert web["ports"] == ["127.0.0.1:8000:8000"]
    assert web["volumes"] == [f"state:{STATE_DIR}"]  # the feeds and the link key
    assert "/healthz" in " ".join(web["healthcheck"]["test"])
    app, migrate = services["notifier"], services["migrate"]
    assert app["command"] == ["notifier", "run"]
    assert migrate["command"] == ["notifier", "db", "upgrade"]
    assert app["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    for service in (app, migrate):
        assert (DEPLOY / service["build"]["context"]).resolve() == ROOT
        assert (ROOT / service["build"]["dockerfile"]) == DEPLOY / "Dockerfile"
    assert seconds(app["stop_grace_period"].replace("m", "min")) >= 120
    assert f"state:{STATE_DIR}" in app["volumes"]
    # The environment is a valid configuration that reaches the other two services.
    env = app["environment"]
    settings = Settings(**{k.removeprefix("NOTIFIER_").lower(): v for k, v in env.items()})
    assert settings.smtp is not None and settings.smtp.host == "mailpit"
    assert settings.smtp.port == 1025
    postgres = services["postgres"]
    assert postgres["image"] == "postgres:16"
    pg = postgres["environment"]
    expected = (
        f"postgresql+psycopg://{pg['POSTGRES_USER']}:{pg['POSTGRES_PASSWORD']}"
        f"@postgres:5432/{pg['POSTGRES_DB']}"
    )
    assert settings.database_url == expected
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    named = {v.split(":")[0] for s in services.values() for v in s.get("volumes", [])}
    assert named <= set(compose["volumes"])
    assert services["mailpit"]["image"] == "axllent/mailpit"
    assert any(p.endswith("8025:8025") for p in services["mailpit"]["ports"])
    # The commented example mounts a config file that exists.
    text = (DEPLOY / "compose.yaml").read_text()
    [mount] = re.findall(r"#\s*- (\./\S+\.toml):/etc/notifier/notifier\.toml:ro", text)
    assert (DEPLOY / mount).is_file()
    assert "NOTIFIER_CONFIG: /etc/notifier/notifier.toml" in text


def manifests() -> dict[str, dict[str, Any]]:
    """Return the Kubernetes objects of deploy/k8s by kind."""
    yaml = pytest.importorskip("yaml")
    objects: dict[str, dict[str, Any]] = {}
    for path in sorted(K8S.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            assert document["kind"] not in objects
            objects[document["kind"]] = document
    return objects


def test_the_kubernetes_cronjob_and_migration_job() -> None:
    objects = manifests()
    assert set(objects) == {"ConfigMap", "CronJob", "Job"}
    cron = objects["CronJob"]["spec"]
    assert cron["schedule"] == "*/10 * * * *"
    assert cron["concurrencyPolicy"] in {"Forbid", "Allow"}
    job = cron["jobTemplate"]["spec"]
    assert 600 <= job["activeDeadlineSeconds"] <= 3600
    pod = job["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    [container] = pod["containers"]
    assert container["command"] == ["notifier", "run-once"]
    migration = objects["Job"]["spec"]["template"]["spec"]
    [migrate] = migration["containers"]
    assert migrate["command"] == ["notifier", "db", "upgrade"]
    assert migrate["image"] == container["image"]
    uid = re.search(r"useradd .*--uid (\d+)", (DEPLOY / "Dockerfile").read_text())
    assert uid
    for spec, box in ((pod, container), (migration, migrate)):
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] == int(uid.group(1))  # the image's user
        assert box["securityContext"]["allowPrivilegeEscalation"] is False
        assert box["securityContext"]["readOnlyRootFilesystem"] is True
        assert {"cpu", "memory"} <= set(box["resources"]["requests"])
        assert {"cpu", "memory"} <= set(box["resources"]["limits"])
    # Secrets from the Secret the comment tells how to create; the rest from the ConfigMap.
    env = {e["name"]: e for e in container["env"]}
    secret = {n: e["valueFrom"]["secretKeyRef"] for n, e in env.items() if "valueFrom" in e}
    # Every run is a new pod: the link key must come from the Secret, or each run would
    # sign with a key of its own and break the links in emails already sent.
    assert set(secret) == {"NOTIFIER_DATABASE_URL", "NOTIFIER_SMTP_URL", "NOTIFIER_SECRET_KEY"}
    assert {e["name"]: e["valueFrom"]["secretKeyRef"] for e in migrate["env"]} == {
        "NOTIFIER_DATABASE_URL": secret["NOTIFIER_DATABASE_URL"]
    }
    comment = (K8S / "cronjob.yaml").read_text() + DOCS.read_text()
    for ref in secret.values():
        assert f"create secret generic {ref['name']}" in comment
        assert f"--from-literal={ref['key']}=" in comment
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    config = Path(env["NOTIFIER_CONFIG"]["value"])
    assert mounts["config"] == str(config.parent)
    configmap = objects["ConfigMap"]
    assert volumes["config"]["configMap"]["name"] == configmap["metadata"]["name"]
    assert env["NOTIFIER_STATE_DIR"]["value"] == mounts["state"] == STATE_DIR
    assert "/tmp" in mounts.values()  # the root file system is read-only


def test_the_kubernetes_configmap_is_a_valid_config(tmp_path: Path) -> None:
    configmap = manifests()["ConfigMap"]
    [(name, text)] = configmap["data"].items()
    assert name == "notifier.toml"
    (tmp_path / name).write_text(text)
    settings = load_settings(tmp_path / name)
    assert settings.sources and settings.base_url.startswith("https://")


# ---------------------------------------------------------------------------
# The docs


def test_the_docs_cover_every_file_and_their_links_resolve() -> None:
    text = DOCS.read_text()
    for link in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text):
        if not link.startswith(("http://", "https://")):
            assert (DOCS.parent / link).exists(), link
    for anchor in re.findall(r"\]\(#([^)]+)\)", text):
        headings = re.findall(r"^#+ (.+)$", text, flags=re.MULTILINE)
        assert anchor in {h.lower().replace(" ", "-") for h in headings}, anchor
    files = [p for p in DEPLOY.rglob("*") if p.is_file() and p.name != "README.md"]
    index = (DEPLOY / "README.md").read_text()
    for path in files:
        assert path.name in text, f"docs/deploy.md does not mention {path.name}"
        assert str(path.relative_to(DEPLOY)) in index, f"deploy/README.md lacks {path.name}"
    assert "docs/deploy.md" in index
    assert "(docs/deploy.md)" in (ROOT / "README.md").read_text()


def test_the_readme_still_opens_with_demo_and_test() -> None:
    readme = (ROOT / "README.md").read_text()
    first = readme.split("## How it works")[0]
    assert "make demo" in first and "make test" in first
    assert readme.index("## Deploy") > readme.index("## How it works")


def test_durations_in_the_docs_fit_the_schedule() -> None:
    # health's max age spans several runs of what it watches.
    defaults = Settings()
    assert parse_duration("15m") >= 3 * defaults.compose_every
    assert parse_duration("30m") >= 3 * timedelta(minutes=10)  # run-once every 10 minutes
