"""`edgeft.export.quiet`: the chatter of the tools export drives is silenced, and everything restored."""

import logging
import warnings

from edgeft.export.quiet import quiet


def test_quiet_silences_and_restores(capsys):
    root, named = logging.getLogger(), logging.getLogger("optimum")
    root.setLevel(logging.INFO)
    named.setLevel(logging.DEBUG)
    with quiet("", "optimum"):
        print("progress the tool prints")
        warnings.warn("advice", UserWarning, stacklevel=1)
        assert root.level == logging.ERROR and named.level == logging.ERROR
    assert capsys.readouterr().out == ""
    assert root.level == logging.INFO and named.level == logging.DEBUG  # the quantizer used to leave ERROR behind
    root.setLevel(logging.WARNING)
