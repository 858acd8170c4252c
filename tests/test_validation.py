"""One set of limits wherever a subscriber is written: CLI, sign-up form, API, config."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import get_args

import httpx
import pytest

from notifier.models import DigestStatus, Interest, SubscriberStatus
from notifier.storage import Storage
from notifier.web.api import schemas
from tests.conftest import NOW, Cli, WebServer
from tests.test_web import sign_up, subscriber_count

TOKEN = "admin-token-0123456789-abcdef"
LONG_NAME = "n" * 80  # longer than the sign-up form once allowed, within every limit now
TOO_LONG_NAME = "n" * 101
LONG_ABOUT = "robots " * 80  # 560 characters


def _api_create(web: WebServer, email: str, interests: list[dict[str, str]]) -> httpx.Response:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=f"{web.url}/api/v1", headers=headers, timeout=30) as http:
        return http.post("/subscribers", json={"email": email, "interests": interests})


def test_an_interest_name_is_held_to_one_limit_on_every_surface(
    run: Cli, serve_web: Callable[..., WebServer], tmp_path: Path
) -> None:
    # The CLI.
    assert run.subscribe_earlier("a@example.org", "--about", f"{LONG_NAME}=robots").exit_code == 0
    refused = run.subscribe_earlier("b@example.org", "--about", f"{TOO_LONG_NAME}=robots")
    assert refused.exit_code == 1
    assert refused.stderr == "notifier: error: the name can have at most 100 characters\n"
    # The config file's topics.
    topic = f'[[topics]]\nname = "{TOO_LONG_NAME}"\nslug = "t"\nquery = "robot"\n'
    (tmp_path / "notifier.toml").write_text(topic)
    config_refused = run("status")
    assert config_refused.exit_code != 0
    assert "at most 100 characters" in config_refused.stderr
    (tmp_path / "notifier.toml").unlink()
    # The sign-up form and the API.
    web = serve_web(admin_token=TOKEN)
    with httpx.Client(base_url=web.url) as client:
        accepted = sign_up(client, email="c@example.org", interest_name=LONG_NAME)
        assert accepted.status_code == 200, accepted.text
        form_refused = sign_up(client, email="d@example.org", interest_name=TOO_LONG_NAME)
    assert form_refused.status_code == 400
    assert "the name can have at most 100 characters" in form_refused.text
    api_ok = _api_create(web, "e@example.org", [{"name": LONG_NAME, "about": "robots"}])
    assert api_ok.status_code == 201, api_ok.text
    api_refused = _api_create(web, "f@example.org", [{"name": TOO_LONG_NAME, "about": "robots"}])
    assert api_refused.status_code == 422
    assert "at most 100 characters" in api_refused.text
    # One database: the CLI's, the form's (pending) and the API's; nothing refused.
    assert subscriber_count(web) == 3


def test_the_cli_holds_descriptions_and_the_number_of_interests_to_the_web_limits(
    run: Cli,
) -> None:
    long_about = run.subscribe_earlier("a@example.org", "--about", f"r={LONG_ABOUT}")
    assert long_about.exit_code == 1
    assert "a description may have 500" in long_about.stderr
    ten = [arg for k in range(10) for arg in ("--interest", f"i{k}=robot{k}")]
    assert run.subscribe_earlier("b@example.org", *ten).exit_code == 0
    eleventh = run("subscriber", "edit", "b@example.org", "--interest", "i10=robot")
    assert eleventh.exit_code == 1
    assert eleventh.stderr == "notifier: error: at most 10 interests, please\n"
    listed = run("subscribers", "--json")
    assert listed.stdout.count('"i9"') == 1 and '"i10"' not in listed.stdout


@pytest.mark.parametrize(
    ("name_a", "name_b"), [("Robots", "robots"), ("rl", "RL")], ids=["title", "upper"]
)
def test_two_interests_differing_only_in_case_are_refused_everywhere(
    run: Cli, serve_web: Callable[..., WebServer], name_a: str, name_b: str
) -> None:
    both = run.subscribe_earlier(
        "a@example.org", "--interest", f"{name_a}=robot", "--interest", f"{name_b}=arm"
    )
    assert both.exit_code == 1
    assert "give each its own name" in both.stderr
    web = serve_web(admin_token=TOKEN)
    refused = _api_create(
        web,
        "b@example.org",
        [{"name": name_a, "query": "robot"}, {"name": name_b, "query": "arm"}],
    )
    assert refused.status_code == 422
    assert "give each its own name" in refused.text


def test_an_interest_named_in_another_case_is_the_same_interest(run: Cli) -> None:
    assert run.subscribe_earlier("a@example.org", "--interest", "rl=robot").exit_code == 0
    changed = run("subscriber", "edit", "a@example.org", "--interest", "RL=arm")
    assert changed.exit_code == 0, changed.stderr
    listed = run("subscribers", "--json")
    assert '"rl"' in listed.stdout and '"RL"' not in listed.stdout
    assert '"arm"' in listed.stdout and '"robot"' not in listed.stdout


def test_a_list_stored_under_older_limits_can_still_be_edited(run: Cli) -> None:
    storage = Storage(run.env["NOTIFIER_DATABASE_URL"])
    storage.migrate()
    eleven = [Interest(f"i{k}", f"robot{k}") for k in range(11)]
    storage.save_subscriber("old@example.org", None, eleven, NOW - timedelta(days=2), None)
    storage.close()
    tuned = run("subscriber", "edit", "old@example.org", "--sensitivity", "i3=broad")
    assert tuned.exit_code == 0, tuned.stderr
    assert "i3" in tuned.stdout and "broad" in tuned.stdout
    twelfth = run("subscriber", "edit", "old@example.org", "--interest", "i11=arm")
    assert twelfth.exit_code == 1
    assert twelfth.stderr == "notifier: error: at most 10 interests, please\n"


def test_a_topic_whose_query_is_blank_is_read_as_a_description_alone(
    run: Cli, tmp_path: Path
) -> None:
    topic = '[[topics]]\nname = "Robots"\nslug = "robots"\nquery = "   "\nabout = "robot arms"\n'
    (tmp_path / "notifier.toml").write_text(topic)
    feeds = run("feeds")
    assert feeds.exit_code == 0, feeds.stderr
    assert list((tmp_path / "state" / "feeds" / "topics").glob("robots.*"))


def test_the_api_publishes_every_status_the_models_store() -> None:
    assert get_args(schemas.SubscriberStatus) == tuple(SubscriberStatus)
    assert get_args(schemas.DigestStatus) == tuple(DigestStatus)


def test_the_api_takes_a_sensitivity_only_as_its_schema_spells_it(
    serve_web: Callable[..., WebServer],
) -> None:
    web = serve_web(admin_token=TOKEN)
    refused = _api_create(
        web, "a@example.org", [{"name": "rl", "query": "robot", "sensitivity": "STRICT"}]
    )
    assert refused.status_code == 422
    assert "sensitivity must be one of strict, normal, broad" in refused.text
