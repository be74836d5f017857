"""Run R's susieR (``susie_rss``) on simulated blocks through Rscript and binary files, for bench/shrink.py.

Nothing is installed here: :func:`susie_version` returns None when Rscript or susieR is absent and the
benchmark then says that it skipped the comparison. Times are measured inside R around the
``susie_rss`` call only (Rscript start-up and file transfer excluded), one BLAS thread.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

_SCRIPT = r"""
args <- commandArgs(trailingOnly = TRUE)
d <- args[1]; L <- as.integer(args[2])
suppressMessages(library(susieR))
dims <- scan(file.path(d, "dims.txt"), quiet = TRUE)
m <- dims[1]; reps <- dims[2]; n <- dims[3]
R <- matrix(readBin(file.path(d, "R.bin"), "double", m * m), m, m)
B <- matrix(readBin(file.path(d, "B.bin"), "double", m * reps), m, reps)
S <- matrix(readBin(file.path(d, "S.bin"), "double", m * reps), m, reps)
coef <- matrix(0, m, reps); pip <- matrix(0, m, reps); secs <- numeric(reps)
for (k in seq_len(reps)) {
  t0 <- proc.time()[["elapsed"]]
  fit <- suppressWarnings(susie_rss(bhat = B[, k], shat = S[, k], R = R, n = n, var_y = 1, L = L))
  secs[k] <- proc.time()[["elapsed"]] - t0
  coef[, k] <- coef(fit)[-1]
  pip[, k] <- fit$pip
}
writeBin(as.vector(coef), file.path(d, "coef.bin"))
writeBin(as.vector(pip), file.path(d, "pip.bin"))
writeBin(secs, file.path(d, "secs.bin"))
"""


def susie_version() -> str | None:
    """susieR's version, or None when Rscript or the package is missing (the benchmark then skips)."""
    if shutil.which("Rscript") is None:
        return None
    try:
        out = subprocess.run(["Rscript", "-e", 'cat(as.character(packageVersion("susieR")))'],
                             capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else None


def run_susie_rss(R: np.ndarray, B: np.ndarray, S: np.ndarray, n: int, L: int) -> dict[str, np.ndarray]:
    """susie_rss(bhat, shat, R, n, var_y = 1, L) on each row of B / S; coefficients, PIPs and seconds."""
    reps, m = B.shape
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "dims.txt").write_text(f"{m} {reps} {int(n)}\n")
        np.asarray(R, dtype="<f8").T.tofile(d / "R.bin")  # R reads column-major
        np.asarray(B, dtype="<f8").tofile(d / "B.bin")  # rows of B = columns in R
        np.asarray(S, dtype="<f8").tofile(d / "S.bin")
        (d / "run.R").write_text(_SCRIPT)
        subprocess.run(["Rscript", str(d / "run.R"), str(d), str(L)], check=True, env=env,
                       capture_output=True, text=True)
        coef = np.fromfile(d / "coef.bin", dtype="<f8").reshape(reps, m)
        pip = np.fromfile(d / "pip.bin", dtype="<f8").reshape(reps, m)
        secs = np.fromfile(d / "secs.bin", dtype="<f8")
    return {"coef": coef, "pip": pip, "seconds": secs}
