"""A runner process on a target, spoken to in JSON lines (see ``runner.py``)."""

from __future__ import annotations

import json
import subprocess
import threading
from collections import deque
from typing import Any, Sequence

from edgeft.errors import TargetError


class RunnerProcess:
    """One bundle's runner: started by a target's command, stopped with ``close``.

    A runner that answers with an error, exits, or loses its connection raises ``TargetError``
    naming the bundle, the request and the last lines it wrote to stderr.
    """

    def __init__(self, name: str, command: Sequence[str], env: dict[str, str] | None = None,
                 where: str = "this machine") -> None:
        self.name, self.where = name, where
        try:
            self.proc = subprocess.Popen(list(command), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, text=True, env=env, bufsize=1)
        except OSError as exc:
            raise TargetError(f"cannot start the runner for {name} on {where}: {exc}") from None
        self.stderr: deque[str] = deque(maxlen=20)
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()
        self.ready = self._receive("start")

    def _drain(self) -> None:
        for line in self.proc.stderr:  # type: ignore[union-attr]
            self.stderr.append(line.rstrip())

    def _why(self) -> str:
        lines = [line for line in self.stderr if line.strip()]
        return f" ({lines[-1].strip()})" if lines else ""

    def _receive(self, what: str) -> dict[str, Any]:
        line = self.proc.stdout.readline()  # type: ignore[union-attr]
        if not line:
            code = self.proc.wait(timeout=10)
            self._reader.join(timeout=2)
            raise TargetError(f"the runner for {self.name} on {self.where} stopped during {what} "
                              f"(exit {code}){self._why()}")
        try:
            reply = json.loads(line)
        except ValueError:
            raise TargetError(f"the runner for {self.name} on {self.where} wrote {line.strip()[:120]!r} "
                              f"instead of a reply to {what}") from None
        if not reply.get("ok"):
            raise TargetError(f"{self.name} on {self.where}: {what} failed: {reply.get('error')}")
        return reply

    def request(self, command: str, **arguments: Any) -> dict[str, Any]:
        try:
            self.proc.stdin.write(json.dumps({"cmd": command, **arguments}) + "\n")  # type: ignore[union-attr]
            self.proc.stdin.flush()  # type: ignore[union-attr]
        except (BrokenPipeError, OSError):
            return self._receive(command)  # reports how the runner ended
        return self._receive(command)

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")  # type: ignore[union-attr]
                self.proc.stdin.close()  # type: ignore[union-attr]
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
