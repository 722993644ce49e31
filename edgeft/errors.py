"""One exception tree for edgeft; each class carries the CLI exit code it maps to.

Stdlib only, on purpose: the runtime imports this module, and basing the tree on
``click.ClickException`` added ~13 ms (click's import) to ``import edgeft.runtime``, about 9%
(``python -X importtime``). The CLI turns these into one ``Error: ...`` line and the exit code."""

from __future__ import annotations


class EdgeftError(Exception):
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
