"""One BLAS thread for the many small matrix operations of a work unit.

Multi-threaded BLAS/LAPACK gains nothing on the small per-block and per-gene matrices of this
package (tens to a few hundred variants), and on a machine whose cores are busy (parallel
workers, shared servers) its spinning threads cost far more than the work: measured on a loaded
2-core machine, shrinking one 588-variant block took 0.35 s with the default threads and 0.043 s
on one thread; a 500 x 500 ``eigvalsh`` took 5 s instead of 30 ms.
"""

from __future__ import annotations

from threadpoolctl import threadpool_limits

__all__ = ["limit_blas_threads", "one_blas_thread"]


def one_blas_thread() -> threadpool_limits:
    """Context manager: BLAS/LAPACK on one thread inside, the previous setting restored after.

    Entering costs about a millisecond (the loaded libraries are inspected), so wrap a loop over
    many small units rather than each unit.
    """
    return threadpool_limits(limits=1, user_api="blas")


def limit_blas_threads() -> None:
    """Pin BLAS/LAPACK to one thread for the rest of the process (parallel worker processes)."""
    threadpool_limits(limits=1, user_api="blas")
