"""User-facing errors.

Every problem a user can fix (a bad file, column, argument or prior) is raised as an
:class:`InputError`. The CLI turns it into one line on stderr and exit status 2.
"""

from __future__ import annotations

__all__ = ["BayesmagesError", "ConvergenceWarning", "InputError", "NotFittedError"]


class BayesmagesError(Exception):
    """Base class of all bayesmages errors."""


class InputError(BayesmagesError, ValueError):
    """A user input (file, column, row, argument or prior) is invalid.

    The message names the offending input and says what was expected.
    """


class NotFittedError(BayesmagesError, AttributeError):
    """A fitted attribute or method was used before :meth:`fit`."""


class ConvergenceWarning(UserWarning):
    """An optimiser or sampler stopped before meeting its convergence rule."""
