"""The exception for a run that cannot start.

A :class:`UsageError` is raised only by the checks made before any work starts (parameters,
inputs, output folder), so the command line can tell "nothing started" (exit 2) from a failure
during the run.
"""

from __future__ import annotations


class UsageError(ValueError):
    """Parameters, inputs or an output folder a run cannot start with; nothing was done.

    ``str(error)`` names the parameter or path, the value found and the remedy. It is a
    ``ValueError``, so code that caught invalid parameters as ``ValueError`` still does.

    Examples
    --------
    >>> import daskmic as dm
    >>> try:
    ...     dm.RunConfig()
    ... except dm.UsageError as error:
    ...     print(error)
    a run needs at least one step: preprocess and/or tilt
    >>> issubclass(dm.UsageError, ValueError)
    True
    """
