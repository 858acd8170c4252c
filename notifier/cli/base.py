"""What every command shares: the group that reports errors, the lazy Context, and the clock."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from notifier.errors import NotifierError

if TYPE_CHECKING:
    from notifier.ingest.fetch import Fetcher
    from notifier.settings import Settings
    from notifier.storage import Storage


@dataclass
class Context:
    """Settings and storage, built on first use and shared by a command."""

    config_file: Path | None
    _settings: Settings | None = None
    _storage: Storage | None = field(default=None, repr=False)
    _fetcher: Fetcher | None = field(default=None, repr=False)

    @property
    def settings(self) -> Settings:
        """Return the validated settings."""
        if self._settings is None:
            from notifier.settings import load_settings

            self._settings = load_settings(self.config_file)
        return self._settings

    @property
    def storage(self) -> Storage:
        """Return the opened, migrated storage."""
        if self._storage is None:
            # Not app.open_storage: importing app loads the renderer, SMTP and HTTP.
            from notifier.storage import Storage

            storage = Storage(self.settings.database)
            storage.migrate()
            self._storage = storage
        return self._storage

    @property
    def fetcher(self) -> Fetcher:
        """Return the HTTP fetcher (one per command, so host pacing is shared)."""
        if self._fetcher is None:
            from notifier.app import make_fetcher

            self._fetcher = make_fetcher(self.settings)
        return self._fetcher

    def close(self) -> None:
        """Release the database and HTTP connections."""
        if self._storage is not None:
            self._storage.close()
        if self._fetcher is not None:
            self._fetcher.close()


pass_context = click.make_pass_decorator(Context)


class NotifierGroup(click.Group):
    """A group that turns every error into one line and a non-zero exit."""

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command, reporting errors as a single line on stderr."""
        try:
            return super().invoke(ctx)
        except NotifierError as e:
            fail(str(e))
        except KeyboardInterrupt:
            fail("interrupted", code=130)
        except BrokenPipeError:
            # The reader (e.g. `| head`) has gone: stop quietly, as Unix tools do.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(0)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as e:
            if os.environ.get("NOTIFIER_DEBUG"):
                raise
            fail(f"unexpected {type(e).__name__}: {e} (set NOTIFIER_DEBUG=1 to see the traceback)")
        finally:
            if isinstance(ctx.obj, Context):
                ctx.obj.close()


def fail(message: str, code: int = 1) -> NoReturn:
    """Print one error line and exit."""
    click.echo(f"notifier: error: {message}", err=True)
    sys.exit(code)


@contextmanager
def progress(total: int, label: str, enabled: bool) -> Iterator[Callable[[], None]]:
    """Yield a step function for a stderr progress bar, shown only on a terminal."""
    if not enabled or total < 2 or not sys.stderr.isatty():
        yield lambda: None
        return
    with click.progressbar(length=total, label=label, file=sys.stderr) as bar:
        yield lambda: bar.update(1)
