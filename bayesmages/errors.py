"""User-facing errors.

Every problem a user can fix (a bad file, column, argument or prior) is raised as an
:class:`InputError`. The CLI turns it into one line on stderr and exit status 2.
"""

from __future__ import annotations

__all__ = [
    "AccuracyWarning",
    "BayesmagesError",
    "ConvergenceWarning",
    "InputError",
    "NotFittedError",
    "SeparationError",
]


class BayesmagesError(Exception):
    """Base class of all bayesmages errors."""


class InputError(BayesmagesError, ValueError):
    """A user input (file, column, row, argument or prior) is invalid.

    The message names the offending input and says what was expected.
    """


class SeparationError(InputError):
    """The covariates of a binary null model separate the outcome (the MLE does not exist).

    Attributes
    ----------
    covariates : list of str
        Names of the covariates that carry the separating direction (may be empty when only
        the IRLS divergence, not the direction, is known).
    """

    def __init__(self, message: str, covariates: list[str] | None = None) -> None:
        super().__init__(message)
        self.covariates = list(covariates or [])


class NotFittedError(BayesmagesError, AttributeError):
    """A fitted attribute or method was used before :meth:`fit`."""


class ConvergenceWarning(UserWarning):
    """An optimiser or sampler stopped before meeting its convergence rule."""


class AccuracyWarning(UserWarning):
    """A number was computed by a less accurate fallback than the method asked for.

    For example, the exact quadratic-form integral did not converge and a saddlepoint
    approximation (relative error up to ~15 %) was used. The result records which values are
    affected (e.g. a ``method`` column), so they can be checked or recomputed.
    """


class PruningWarning(UserWarning):
    """Pruning a mixture to its heaviest clusters moved variants that were most probably in a pruned cluster."""
