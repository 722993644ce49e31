"""Silence the tools export drives (torch's exporters, optimum, onnxruntime's quantizer and
converter): they log advice, print progress and warn on stdout and stderr, where edgeft keeps its
own lines and ``--json``. One context manager, restoring everything it changed."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from typing import Iterator


@contextlib.contextmanager
def quiet(*loggers: str, stdout: bool = True, ignore_warnings: bool = True) -> Iterator[None]:
    """The named loggers (``""``: the root logger) at ERROR, stdout captured and warnings ignored
    while the block runs; the levels, stdout and warning filters are restored after it."""
    named = [logging.getLogger(name or None) for name in loggers]
    levels = [logger.level for logger in named]
    with contextlib.ExitStack() as stack:
        if ignore_warnings:
            stack.enter_context(warnings.catch_warnings())
            warnings.simplefilter("ignore")
        if stdout:
            stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
        for logger in named:
            logger.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for logger, level in zip(named, levels, strict=True):
                logger.setLevel(level)
