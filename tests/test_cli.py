"""The command line: help everywhere, configuration layering, one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from notifier.cli import cli
from notifier.pipeline.senders import _worker_starter
from notifier.settings import load_settings
from tests.conftest import SEED_FILES, Cli

NOTIFIER = Path(sys.executable).parent / "notifier"


@pytest.mark.parametrize("name", sorted(cli.commands))
def test_every_command_has_help_text(name: str) -> None:
    command = cli.commands[name]
    assert command.help and len(command.help.strip()) > 20, f"{name} lacks help"
    for param in command.params:
        if isinstance(param, click.Option):
            assert param.help, f"{name} {param.opts} lacks help"
    result = CliRunner().invoke(cli, [name, "--help"])
    assert result.exit_code == 0
    assert result.output.startswith(f"Usage: cli {name}")


def test_the_named_commands_exist() -> None:
    assert {
        "init",
        "ingest",
        "subscribe",
        "subscribers",
        "digest",
        "feeds",
        "status",
        "demo",
    } <= set(cli.commands)


def test_settings_come_from_toml_and_environment_overrides_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "notifier.toml"
    config.write_text(
        'base_url = "https://from-file.example.org/"\nmax_papers = 12\n'
        '[[topics]]\nname = "Robots"\nslug = "robots"\nquery = "robot OR robotic"\n'
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NOTIFIER_MAX_PAPERS", "7")
    settings = load_settings()
    assert settings.base_url == "https://from-file.example.org"
    assert settings.max_papers == 7
    assert [t.slug for t in settings.topics] == ["robots"]
    assert settings.database == f"sqlite:///{tmp_path / 'state' / 'notifier.db'}"


def test_smtp_url_is_parsed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NOTIFIER_SMTP_URL", "smtps://me%40lab.org:s%3Acret@mail.lab.org")
    target = load_settings().smtp
    assert target is not None
    assert (target.host, target.port, target.username, target.password, target.implicit_tls) == (
        "mail.lab.org",
        465,
        "me@lab.org",
        "s:cret",
        True,
    )


def invoke(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the installed console script as a user would."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFIER_")}
    full_env |= {"NOTIFIER_STATE_DIR": str(tmp_path / "state")} | (env or {})
    return subprocess.run(
        [str(NOTIFIER), *args],
        cwd=tmp_path,
        env=full_env,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize(
    ("files", "env", "expected"),
    [
        (
            {"notifier.toml": "max_papers = 'many'\n"},
            {},
            "notifier: error: setting 'max_papers' (notifier.toml or NOTIFIER_MAX_PAPERS): "
            "Input should be a valid integer, unable to parse string as an integer",
        ),
        (
            {"notifier.toml": "max_papers = \n"},
            {},
            "notifier: error: config file 'notifier.toml' is not valid TOML: "
            "Invalid value (at line 1, column 14)",
        ),
        (
            {"notifier.toml": "max_paper = 3\n"},
            {},
            "notifier: error: setting 'max_paper' (notifier.toml or NOTIFIER_MAX_PAPER): "
            "Extra inputs are not permitted",
        ),
        (
            {},
            {"NOTIFIER_SMTP_URL": "http://mail.example.org"},
            "notifier: error: setting 'smtp_url' (no config file or NOTIFIER_SMTP_URL): "
            "must start with smtp:// or smtps://",
        ),
        (
            {},
            {"NOTIFIER_SENDER_ADDRESS": "not an address"},
            "notifier: error: setting 'sender_address' (no config file or "
            "NOTIFIER_SENDER_ADDRESS): An email address must have an @-sign.",
        ),
        (
            {},
            {"NOTIFIER_CONFIG": "missing.toml"},
            "notifier: error: config file 'missing.toml' does not exist",
        ),
    ],
    ids=["bad-type", "bad-toml", "unknown-key", "bad-smtp-url", "bad-sender", "missing-config"],
)
def test_broken_configuration_is_one_line_and_no_traceback(
    tmp_path: Path, files: dict[str, str], env: dict[str, str], expected: str
) -> None:
    for name, content in files.items():
        (tmp_path / name).write_text(content)
    result = invoke(tmp_path, "status", env=env)
    assert result.returncode == 1
    assert result.stderr == expected + "\n"
    assert result.stdout == ""


def test_unwritable_state_directory_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = invoke(tmp_path, "status", env={"NOTIFIER_STATE_DIR": str(blocker / "state")})
    assert result.returncode == 1
    assert result.stderr.startswith("notifier: error: cannot create the folder of the database")
    assert len(result.stderr.splitlines()) == 1


def test_unreachable_postgresql_is_one_line(tmp_path: Path) -> None:
    url = "postgresql+psycopg://nobody:secret@127.0.0.1:1/none"
    result = invoke(tmp_path, "status", env={"NOTIFIER_DATABASE_URL": url})
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert line.startswith("notifier: error: cannot open the database ")
    assert "nobody:***@127.0.0.1:1/none" in line and "secret" not in line


def test_subscribe_validates_address_and_query(run: Cli) -> None:
    bad_address = run.subscribe_earlier("not-an-address", "--interest", "x=robot")
    assert bad_address.exit_code == 1
    assert bad_address.stderr.startswith(
        "notifier: error: 'not-an-address' is not a valid email address"
    )
    bad_query = run.subscribe_earlier("a@example.org", "--interest", 'x=robot "open')
    assert (
        bad_query.stderr == "notifier: error: query 'robot \"open': unclosed quote at position 7\n"
    )
    no_interest = run.subscribe_earlier("a@example.org")
    assert no_interest.stderr == (
        "notifier: error: a new subscriber needs at least one --interest NAME=QUERY or "
        "--about NAME=TEXT\n"
    )
    shape = run.subscribe_earlier("a@example.org", "--interest", "robot")
    assert "query is written NAME=QUERY" in shape.stderr
    only_not = run.subscribe_earlier("a@example.org", "--interest", "x=-survey")
    assert "needs at least one word or phrase to look for (or a description)" in only_not.stderr
    level = run.subscribe_earlier(
        "a@example.org", "--about", "x=robots", "--sensitivity", "x=loose"
    )
    assert "sensitivity must be one of strict, normal, broad" in level.stderr
    assert run("subscribers").stdout == ""


def test_subscribe_updates_an_existing_subscriber(run: Cli) -> None:
    run.subscribe_earlier("A@Example.org", "--name", "A", "--interest", "x=robot")
    updated = run(
        "subscribe",
        "a@example.org",
        "--interest",
        "x=robotic",
        "--interest",
        "y=vision",
        "--about",
        "y=computer vision for robots",
        "--sensitivity",
        "y=strict",
    )
    assert updated.stdout.splitlines()[:3] == [
        "updated a@example.org with 2 interest(s):",
        "  x: query robotic",
        "  y: query vision about “computer vision for robots” (strict)",
    ]
    schedule = updated.stdout.splitlines()[3]
    assert schedule.startswith("  schedule: daily at 00:00 (UTC); next digest ")
    # Changing only the description keeps the query.
    about = run.subscribe_earlier("a@example.org", "--about", "x=robot arms")
    assert "  x: query robotic about “robot arms”" in about.stdout
    listing = run("subscribers")
    assert listing.stdout.splitlines()[0] == "a@example.org (A) [active]"


def test_status_of_unknown_subscriber(run: Cli) -> None:
    result = run("status", "nobody@example.org")
    assert result.exit_code == 1
    assert result.stderr == "notifier: error: no subscriber with the address 'nobody@example.org'\n"


def test_status_tells_why_no_email_came(run: Cli) -> None:
    run("ingest", str(SEED_FILES[0]))
    run.subscribe_earlier("eve@example.org", "--interest", "none=zzzunmatchable")
    run("digest", "--dry-run")
    assert "no digest composed yet" in run("status", "eve@example.org").stdout
    run.env["NOTIFIER_SMTP_URL"] = "smtp://127.0.0.1:1"  # nothing to send, so never contacted
    run("digest")
    status = run("status", "eve@example.org").stdout
    assert "empty" in status
    assert "none of the 72 recent papers you have not seen matched your interests" in status


def test_init_creates_the_database(tmp_path: Path) -> None:
    result = invoke(tmp_path, "init")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "state" / "notifier.db").is_file()
    assert result.stdout.startswith("database ready: sqlite:///")
    assert "(schema revision 0012)" in result.stdout.splitlines()[0]
    again = invoke(tmp_path, "init")
    assert again.returncode == 0 and again.stdout == result.stdout


def test_the_example_config_is_valid_and_lists_every_setting() -> None:
    example = Path(__file__).resolve().parent.parent / "deploy" / "notifier.example.toml"
    settings = load_settings(example)
    assert [s.name for s in settings.sources] == ["hf-daily", "arxiv-cs-ro", "arxiv-offline-rl"]
    text = example.read_text()
    from notifier.settings import Settings

    for name in Settings.model_fields:
        assert f"{name} =" in text or f"[[{name}]]" in text, f"{name} missing from the example"


def test_eval_prints_the_three_scorers_side_by_side(run: Cli) -> None:
    data = Path(__file__).resolve().parent / "data" / "eval"
    result = run("eval", "--data", str(data))
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    described = lines.index("description alone (17 interests)")
    header = lines[described + 1]
    assert "lexical" in header and "semantic" in header and "hybrid" in header
    assert lines[described + 2].replace("|", " ").split() == ["P", "R", "F1", "nDCG10", "n"] * 3
    mean = next(line for line in lines if line.startswith("macro mean"))
    held = next(line for line in lines if line.startswith("held out"))
    assert float(mean.split("|")[3].split()[2]) >= 0.59  # hybrid macro F1
    assert float(held.split("|")[3].split()[2]) >= 0.59  # on interests not tuned on
    assert any(line.startswith("query alone (") for line in lines)


def test_send_workers_are_spawned_when_another_thread_could_hold_a_lock() -> None:
    # Forking beside a running thread could copy a lock that thread holds into the
    # child, held for ever; a spawned worker starts from nothing instead.
    release = threading.Event()
    waiter = threading.Thread(target=release.wait)
    waiter.start()
    try:
        assert _worker_starter().get_start_method() == "spawn"
    finally:
        release.set()
        waiter.join()


def test_a_query_of_a_thousand_nots_is_refused_in_one_line_wherever_it_is_given(
    run: Cli, tmp_path: Path
) -> None:
    query = "robot " + "NOT " * 990 + "survey"
    result = run.subscribe_earlier("a@example.org", "--interest", f"r={query}")
    assert result.exit_code != 0
    [line] = result.stderr.strip().splitlines()
    assert "characters is too long; a query may have 500" in line
    topic = f'[[topics]]\nname = "r"\nslug = "r"\nquery = \'{query}\'\n'
    (tmp_path / "notifier.toml").write_text(topic)
    result = run("status")
    assert result.exit_code != 0
    [line] = result.stderr.strip().splitlines()
    assert "a query may have 500" in line and "Recursion" not in line


def test_a_config_file_that_is_not_utf8_is_named_in_one_line(run: Cli, tmp_path: Path) -> None:
    (tmp_path / "notifier.toml").write_bytes('sender_name = "Zo\u00eb"\n'.encode("latin-1"))
    result = run("status")
    assert result.exit_code != 0
    [line] = result.stderr.strip().splitlines()
    assert line == (
        "notifier: error: config file 'notifier.toml' is not UTF-8 (byte 17): save it as UTF-8"
    )


def test_a_missing_templates_dir_is_refused(run: Cli, tmp_path: Path) -> None:
    (tmp_path / "notifier.toml").write_text('templates_dir = "my-templates"\n')
    result = run("status")
    assert result.exit_code != 0
    assert "setting 'templates_dir'" in result.stderr
    assert "'my-templates' is not a directory: create it or fix the path" in result.stderr
    (tmp_path / "my-templates").mkdir()
    assert run("status").exit_code == 0
