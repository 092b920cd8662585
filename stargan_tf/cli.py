"""The tail every command line shares: a known error becomes one `error: <message>` line on stderr and an exit code.

The lowest module of the package: it imports nothing from stargan_tf, so every `main` may use it.
"""

import sys

USAGE_ERROR = 2  # the exit code of a bad option, path or file (argparse uses 2 as well)


def fail(message, code=USAGE_ERROR):
    """Print `error: <message>` to stderr and return `code`, for `return fail(e)` in a `main`."""
    print(f"error: {message}", file=sys.stderr)
    return code


def first_line(error):
    """The first non-empty line of an exception's message (a TF error's `message` holds the graph trace after it),
    or the exception's type name when it has none."""
    text = getattr(error, "message", None) or str(error)
    return next((line for line in text.splitlines() if line.strip()), type(error).__name__)


def reason(error):
    """What a TF error says went wrong, as one line: the message of the failed `tf.debugging` assertion in it (its
    `assertion failed: [...]` line, brackets dropped), else its first line."""
    text = getattr(error, "message", None) or str(error)
    found = next((line.strip() for line in text.splitlines() if line.strip().startswith("assertion failed: [")), None)
    if found is None:
        return first_line(error).strip()
    return found.removeprefix("assertion failed: [").removesuffix("]").replace("] [", " ")
