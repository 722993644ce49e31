"""The ``edgeft`` command line. Thin: each command parses its options, calls one function of its
stage and prints the result (text, or JSON with ``--json``).

Heavy packages (torch, transformers, onnx) are imported inside the commands that need them,
so ``edgeft --help`` stays fast and torch-free.
"""

from __future__ import annotations

import click

from edgeft import __version__
from edgeft.cli import bench, ship, train
from edgeft.cli.common import EdgeftGroup


@click.group(cls=EdgeftGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgeft")
def main() -> None:
    """Fine-tune a compact backbone, export it to ONNX, and ship it with a lean runtime.

    Start with `edgeft quickstart`, which runs the bundled sample data through the main job.
    """


for command in (train.backbones, train.finetune, ship.export, ship.predict, ship.verify, ship.package,
                bench.bench, ship.doctor, train.quickstart):
    main.add_command(command)
