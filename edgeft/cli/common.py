"""What every edgeft command shares: errors as one line with their exit code, SIGTERM unwinding
like Ctrl-C, warnings as one line, the parameter types, and the printers (a table, JSON, the
progress log)."""

from __future__ import annotations

import json
import signal
import warnings
from typing import Any, Callable

import click

from edgeft.errors import EdgeftError


class EdgeftGroup(click.Group):
    """edgeft's errors become one ``Error: ...`` line and their exit code (the tree in
    ``edgeft.errors`` stays stdlib-only for the runtime's import time, so it cannot be click's
    own exceptions); warnings one ``Warning: ...`` line; Ctrl-C and SIGTERM one ``Error:`` line
    with exit 130 or 143 once every output's temporary work is removed (click's own handling of
    Ctrl-C exits 1 and knows no SIGTERM). Anything else is a bug and keeps its traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        def one_line_warning(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001
            click.echo(f"Warning: {message}", err=True)

        warnings.showwarning = one_line_warning
        # SIGTERM unwinds like Ctrl-C, so every output's temporary work is removed on the way out
        signal.signal(signal.SIGTERM, _terminate)
        try:
            return super().invoke(ctx)
        except EdgeftError as exc:
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except (KeyboardInterrupt, Terminated) as exc:
            click.echo(f"Error: {'terminated' if isinstance(exc, Terminated) else 'interrupted'}; "
                       "its temporary work was removed", err=True)
            ctx.exit(143 if isinstance(exc, Terminated) else 130)


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so that every ``with`` block cleans up on the way out."""


def _terminate(signum: int, frame: Any) -> None:  # noqa: ARG001
    raise Terminated

class _Epochs(click.ParamType):
    """``auto`` or a whole number of at least 1."""

    name = "auto|N"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int | str:
        if isinstance(value, int) or value == "auto":
            return value
        try:
            epochs = int(value)
        except ValueError:
            self.fail(f"{value!r} is neither auto nor a whole number", param, ctx)
        if epochs < 1:
            self.fail(f"{value} is not at least 1", param, ctx)
        return epochs


EPOCHS = _Epochs()


def logger(as_json: bool) -> Callable[[str], None]:
    return (lambda _: None) if as_json else (lambda line: click.echo(line, err=True))


def lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2))


def table(rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> str:
    cells = [[title for _, title in columns]] + [[str(r[key]) for key, _ in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    out = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out)


class _IntList(click.ParamType):
    """A comma-separated list of whole numbers: ``1,8``; empty gives ()."""

    name = "N,N,..."

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[int, ...]:
        if isinstance(value, tuple):
            return value
        if value is None or value == "":
            return ()
        try:
            return tuple(int(v) for v in str(value).split(","))
        except ValueError:
            self.fail(f"{value!r} is not a comma-separated list of integers", param, ctx)


INT_LIST = _IntList()

APP_OPTION = click.option(
    "--app", is_flag=True,
    help="An app model: it takes uint8 RGB pixels of any size (or one string) and returns logits, probabilities "
         "and the top-5, with the bundle's preprocessing inside the graph (text: onnxruntime-extensions' "
         "tokenizer). Checked against the Python runtime on the golden inputs.")
