"""Run a benchmark's child process against one checkout of notifier, in a copy of a database."""

# Usage from another bench script (bench/ is on sys.path when run as `python bench/x.py`):
#
#     from checkouts import run_child
#
#     result = run_child(CHILD, code_dir, prepared_db, environment, NOW.isoformat())
#
# The child is Python source that prints one JSON object on its last line. It runs with
# code_dir first on PYTHONPATH, so `--reference DIR` can alternate runs of two checkouts
# on the same data, and a noisy machine affects both alike.

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def run_child(
    child: str,
    code: Path,
    template: Path,
    environment: Callable[[str, str], dict[str, str]],
    *arguments: str,
) -> dict[str, Any]:
    """Run child with code/ first on the path in a fresh copy of the SQLite database template.

    environment(state_dir, database_url) gives the child's environment. Returns
    the JSON object the child printed last.
    """
    with tempfile.TemporaryDirectory() as state:
        database = Path(state) / "bench.db"
        shutil.copy(template, database)
        match_schema(code, f"sqlite:///{database}")
        env = environment(state, f"sqlite:///{database}")
        env["PYTHONPATH"] = str(code)
        done = subprocess.run(
            [sys.executable, "-c", child, *arguments],
            env=env,
            cwd=state,
            check=True,
            capture_output=True,
            text=True,
        )
        result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
        return result


def match_schema(code: Path, database: str) -> None:
    """Migrate a database down to the schema a checkout knows, if it is older than this one's.

    The data is prepared by this checkout; a reference from before a migration
    could not open it (Alembic, with this checkout's scripts, undoes the newer
    migrations).
    """
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine

    from notifier.storage.base import MIGRATIONS, SCHEMA_HEAD

    source = (code / "notifier" / "storage" / "base.py").read_text()
    found = re.search(r'^SCHEMA_HEAD = "(\w+)"', source, re.MULTILINE)
    if found is None or found.group(1) >= SCHEMA_HEAD:
        return
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    engine = create_engine(database)
    try:
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.downgrade(config, found.group(1))
    finally:
        engine.dispose()
