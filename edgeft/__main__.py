"""``python -m edgeft``: the CLI (also what ``torchrun -m edgeft`` starts on each rank)."""

from edgeft.cli import main

main()
