"""The tail every command line shares: a known error becomes one `error: <message>` line on stderr and an exit code.

The lowest module of the package: it imports nothing from stargan_tf, so every `main` may use it.
"""

import ast
import os
import re
import sys

USAGE_ERROR = 2  # the exit code of a bad option, path or file (argparse uses 2 as well)


def fail(message, code=USAGE_ERROR):
    """Print `error: <message>` to stderr and return `code`, for `return fail(e)` in a `main`."""
    print(f"error: {message}", file=sys.stderr)
    return code


_EAGER_ASSERT = re.compile(r"Expected 'tf\.Tensor\(False\b.*?' to be true\. Summarized data: ?")


def _assertion_data(text):
    """What a failed eager `tf.debugging.Assert` summarized (its `Expected 'tf.Tensor(False, ...)' to be true.
    Summarized data: b'...'` lines), as one line of text; None for any other message."""
    found = _EAGER_ASSERT.match(text.strip())
    if found is None:
        return None
    parts = []
    for line in text.strip()[found.end():].splitlines():
        try:
            value = ast.literal_eval(line.strip())
        except (ValueError, SyntaxError):
            value = line.strip()
        parts.append(value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value))
    return " ".join(p for p in parts if p) or None


def first_line(error):
    """The first non-empty line of an exception's message (a TF error's `message` holds the graph trace after it),
    or the exception's type name when it has none; a failed eager assertion gives the data it summarized."""
    text = getattr(error, "message", None) or str(error)
    return _assertion_data(text) or next((line for line in text.splitlines() if line.strip()), type(error).__name__)


def error_line(error):
    """What an error says went wrong, as one line: an OSError's own text (`No space left on device`, without the
    path `str()` adds), else `first_line`."""
    return getattr(error, "strerror", None) or first_line(error)


def write_failure(error, option, folder):
    """One line for an error (an OSError of a full disk, say) writing into `folder`, the value of `option`."""
    return f"cannot write into {option} {folder} ({error_line(error)})"


def file_failure(error, folders=()):
    """One line for an OSError of a file operation: the file it names (after the option whose folder holds it, of
    `folders`, (option, folder) pairs, when one does) and what went wrong."""
    path = getattr(error, "filename", None)
    if not path:
        return error_line(error)
    path = str(path)
    absolute = os.path.abspath(path)
    for option, folder in folders:
        if folder and (absolute + os.sep).startswith(os.path.abspath(folder) + os.sep):
            return f"{option} {folder}: {path}: {error_line(error)}"
    return f"{path}: {error_line(error)}"


def reason(error):
    """What a TF error says went wrong, as one line: the message of the failed `tf.debugging` assertion in it (its
    `assertion failed: [...]` line, brackets dropped), else its first line."""
    text = getattr(error, "message", None) or str(error)
    summarized = _assertion_data(text)
    if summarized:
        return summarized
    found = next((line.strip() for line in text.splitlines() if line.strip().startswith("assertion failed: [")), None)
    if found is None:
        return first_line(error).strip()
    return found.removeprefix("assertion failed: [").removesuffix("]").replace("] [", " ")
