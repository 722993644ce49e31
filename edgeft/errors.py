"""One exception tree for edgeft; each class carries the CLI exit code it maps to.

The tree stands on ``click.ClickException`` (click is a core dependency): the CLI shows any of
them as one ``Error: ...`` line and exits with its ``exit_code``, with no handler of its own."""

from __future__ import annotations

from click import ClickException


class EdgeftError(ClickException):
    """Base of every error edgeft raises on purpose. Exit code 1: an internal failure."""

    exit_code = 1


class UsageError(EdgeftError):
    """Bad usage or bad input: the user can fix it. Exit code 2."""

    exit_code = 2


class DataError(UsageError):
    """A dataset that cannot be read or used as given."""


class UnknownNameError(UsageError):
    """A lookup in a registry failed."""


class MissingDependencyError(UsageError):
    """An optional package is not installed; the message names the pip command."""


class DeviceError(UsageError):
    """A requested device is not available on this machine."""


class RunDirError(UsageError):
    """A run directory that is missing, incomplete or would be overwritten."""


class OutputError(UsageError):
    """An output that cannot be written: taken by another process, no space, read-only, or not ours."""


class TargetError(EdgeftError):
    """A benchmark target that could not be reached, or that failed while measuring. Exit code 1."""
