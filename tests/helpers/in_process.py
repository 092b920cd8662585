"""A command line's main run in the test process, read like a subprocess result: no TensorFlow start-up per call."""

import contextlib
import io
import subprocess


def run_main(main, args):
    """`main(args)`'s exit code (argparse's SystemExit included) and what it printed, as a CompletedProcess."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as e:
            code = e.code
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())
