"""The one exception type for errors a user can cause and fix.

Its message is the single line a CLI prints before exiting with status 2: it names the problem and the
fix. Bugs raise ordinary exceptions (exit 1, traceback). Lives in `common`, which imports no other package
of the project, so every package can raise it without importing JAX.
"""


class UserError(Exception):
    """A problem in the user's input (a path, a flag, a file), with the fix in its message."""
