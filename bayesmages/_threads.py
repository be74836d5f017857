"""Thread counts of BLAS/LAPACK and torch, set for a block and restored, safely across threads.

Multi-threaded BLAS/LAPACK gains nothing on the small per-block and per-gene matrices of this
package (tens to a few hundred variants), and on a machine whose cores are busy (parallel
workers, shared servers) its spinning threads cost far more than the work: measured on a loaded
2-core machine, shrinking one 588-variant block took 0.35 s with the default threads and 0.043 s
on one thread; a 500 x 500 ``eigvalsh`` took 5 s instead of 30 ms.

Both thread counts are process-wide, so a plain "set, run, restore the previous value" is wrong
when several threads do it at once (thread B saves thread A's temporary value as "previous" and
restores it last, leaving the process on one thread for good). Here the limits are reference
counted under a lock: the first block to enter saves the caller's setting, the last to leave
restores it, whatever the interleaving.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import threadpoolctl
from threadpoolctl import threadpool_limits

__all__ = ["limit_blas_threads", "one_blas_thread", "torch_threads"]

_LOCK = threading.Lock()
_blas_depth = 0
_blas_limiter: Any = None
_torch_depth = 0
_torch_original = 0


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """Context manager: BLAS/LAPACK on one thread inside, the caller's setting restored after.

    Safe to enter from several threads at once (and nested): the setting is restored when the
    last block leaves. Entering the outermost block costs about a millisecond (the loaded
    libraries are inspected), so wrap a loop over many small units rather than each unit.
    """
    global _blas_depth, _blas_limiter
    with _LOCK:
        if _blas_depth == 0:
            _release_blas_control()  # whichever thread set a limit before, this block sets it now
            _blas_limiter = threadpool_limits(limits=1, user_api="blas")
        _blas_depth += 1
    try:
        yield
    finally:
        with _LOCK:
            _blas_depth -= 1
            if _blas_depth == 0:
                # threadpoolctl >= 3.6 lets only one "controlling" thread change a shared (pthreads)
                # OpenBLAS pool and silently ignores the others. The last block to leave may run in
                # another thread than the first: no block of ours is active (lock), so hand control
                # to this thread for the restore, then release it.
                _release_blas_control()
                _blas_limiter.restore_original_limits()
                _release_blas_control()
                _blas_limiter = None


def _release_blas_control() -> None:
    """Let the next thread that sets an OpenBLAS limit take control (threadpoolctl >= 3.6; else no-op)."""
    clear = getattr(getattr(threadpoolctl, "OpenBLASController", None), "clear_controlling_thread", None)
    if clear is not None:
        clear(force=True)


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Context manager: ``torch.set_num_threads(n)`` inside, the caller's setting restored after.

    ``n=None`` changes nothing. Safe across threads and nesting like :func:`one_blas_thread`;
    torch's thread count is process-wide, so concurrent blocks share the most recent ``n``.
    """
    global _torch_depth, _torch_original
    if n is None:
        yield
        return
    import torch

    with _LOCK:
        if _torch_depth == 0:
            _torch_original = torch.get_num_threads()
        _torch_depth += 1
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        with _LOCK:
            _torch_depth -= 1
            if _torch_depth == 0:
                torch.set_num_threads(_torch_original)


def limit_blas_threads() -> None:
    """Pin BLAS/LAPACK to one thread for the rest of the process (parallel worker processes)."""
    threadpool_limits(limits=1, user_api="blas")
