"""Fast inference for the unrolled shrinker: the same computation in numpy float32.

The torch network (:class:`bayesmages.shrink.net.UnrolledShrinker`) is what training
differentiates; at inference its cost is dominated by the per-operation overhead of torch on
small arrays (ten iterations of a few dozen ops on (m,)- and (m, T)-sized tensors) and by the dense
(m, m) "lead" mask. :class:`NumpyShrinker` runs the identical iterations with

* the weights extracted from the module once (float32 numpy arrays);
* the iteration-independent part of the first layer (neighbour correlations, LD score, block
  signal scale, bias) computed once per call, the per-iteration part as one (m, 5 + 2T) product;
* the lead rule on the sparse list of strong LD pairs (``|R_ij| >= lead_threshold``) instead of the
  dense (m, m) mask: variant j leads unless a strong partner has a strictly larger ``|r|``.

Outputs equal the torch path's up to float32 round-off (tested in ``tests/test_shrink_model.py``).
Only plain ``Linear -> ReLU (-> Dropout)`` MLPs are supported (no normalisation layers);
:func:`numpy_predictor` returns ``None`` for other networks so callers fall back to torch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, cast

import numpy as np
import torch
from torch import nn

from bayesmages.shrink.features import BlockFeatures

if TYPE_CHECKING:
    from bayesmages.shrink.net import UnrolledShrinker

__all__ = ["NumpyShrinker", "numpy_predictor"]


def _softplus(x: np.ndarray) -> np.ndarray:
    # torch.nn.functional.softplus with beta = 1, threshold = 20
    return np.where(x > 20.0, x, np.log1p(np.exp(np.minimum(x, 20.0))))


class NumpyShrinker:
    """Inference-only copy of an :class:`~bayesmages.shrink.net.UnrolledShrinker` (eval mode).

    Parameters
    ----------
    net : UnrolledShrinker
        The trained network; its weights are copied (later changes to ``net`` are not seen).
    """

    def __init__(self, net: UnrolledShrinker) -> None:
        layers = []
        for module in net.mlp.layers:
            if isinstance(module, nn.Linear):
                w = module.weight.detach().to(torch.float32).numpy().copy()
                b = module.bias.detach().to(torch.float32).numpy().copy()
                layers.append((w, b))
            elif not isinstance(module, nn.ReLU | nn.Dropout):
                raise TypeError(f"no numpy inference path for {type(module).__name__} layers")
        self.n_iter = int(net.n_iter)
        T = self.T = int(net.n_neighbours)
        w1, b1 = layers[0]
        # Feature columns (see features.iteration_features): 0 |asinh r|, 1 asinh(dom) - |asinh r|,
        # 2 sgn asinh est, 3 log ld, 4 scale, 5 progress, 6 lead, then corr, ar_nb, ae_nb (T each).
        self.w_static = np.ascontiguousarray(w1[:, 7:7 + T].T)  # corr
        self.w_ld, self.w_scale = w1[:, 3], w1[:, 4]
        dyn = [0, 1, 2, 6, 5, *range(7 + T, 7 + 3 * T)]
        self.w_dyn = np.ascontiguousarray(w1[:, dyn].T)  # (4 + 2T, H1)
        self.b1 = b1
        self.rest = [(np.ascontiguousarray(w.T), b) for w, b in layers[1:]]

    def __call__(self, z: np.ndarray, bf: BlockFeatures) -> tuple[np.ndarray, np.ndarray]:
        """(mean, sd) on the z scale for a (B, m) float32 batch of one block (sd before calibration)."""
        z = np.ascontiguousarray(z, dtype=np.float32)
        nb = bf.numpy_view()
        R, idx, mask = nb["R"], nb["idx"], nb["mask"]
        rows, cols = nb["strong_rows"], nb["strong_cols"]
        B, m = z.shape
        T = self.T
        f32 = np.float32
        one, minus_one, zero = f32(1.0), f32(-1.0), f32(0.0)
        scale = np.log(np.maximum(np.mean(np.square(z), axis=1, keepdims=True, dtype=f32), f32(1e-6)))
        cap = f32(2.0) * np.abs(z).max(axis=1, keepdims=True) + one
        # Iteration-independent part of the first layer, (B * m, H1): neighbour correlations, LD
        # score, the block's signal scale and the bias.
        static = nb["corr"] @ self.w_static + nb["log_ld"][:, None] * self.w_ld + self.b1
        static = (static[None] + scale[:, :, None] * self.w_scale).reshape(B * m, -1)
        # Replicates stacked along one axis of length B * m; neighbour arrays transposed to
        # (T, B * m) so that reductions over neighbours are elementwise maxima of T rows.
        off = (np.arange(B) * m)[:, None]
        rows_b, cols_b = (rows + off).ravel(), (cols + off).ravel()
        idx_t = (idx.T[:, None, :] + off[None]).reshape(T, B * m)
        idx_3 = (np.arange(3) * (B * m))[:, None, None] + idx_t  # into vals.ravel()
        padded = not mask.all()
        mask_t = np.tile(mask.T, (1, B))
        abs_corr_t = np.tile(np.abs(nb["corr"]).T, (1, B))
        cap_b = np.repeat(cap[:, 0], m)
        denom = max(self.n_iter - 1, 1)
        est = np.zeros(B * m, dtype=f32)
        zf = z.ravel()
        # Features x variants (the transpose enters the first layer): |asinh r|, asinh(dom) -
        # |asinh r|, sgn asinh est, lead, progress, then the neighbours' asinh r and asinh est.
        dyn = np.empty((5 + 2 * T, B * m), dtype=f32)
        vals = np.empty((3, B * m), dtype=f32)  # asinh r, asinh est, |r|: gathered together
        out = r = None
        with np.errstate(over="ignore"):
            for k in range(self.n_iter):
                # r = z - R est + est, as in features.residuals (est = 0 at k = 0: r = z + 0)
                r = zf - (est.reshape(B, m) @ R).ravel() + est if k else zf + zero
                sgn = np.where(r < 0, minus_one, one)
                np.arcsinh(r, out=vals[0])
                if k:
                    np.arcsinh(est, out=vals[1])
                else:
                    vals[1] = zero  # asinh(0)
                np.abs(r, out=vals[2])
                a_r, a_e, abs_r = vals
                abs_ar = np.abs(a_r)
                nb_vals = vals.ravel()[idx_3]  # (3, T, B * m); one flat gather
                dom = np.maximum.reduce(abs_corr_t * nb_vals[2], axis=0)
                # Lead: no strong partner with a strictly larger |r| (the dense rule of
                # features.iteration_features on the sparse pairs).
                lead = np.ones(B * m, dtype=f32)
                lead[np.compress(abs_r[cols_b] > abs_r[rows_b], rows_b)] = zero
                dyn[0] = abs_ar
                np.subtract(np.arcsinh(dom), abs_ar, out=dyn[1])
                np.multiply(sgn, a_e, out=dyn[2])
                dyn[3] = lead
                dyn[4] = f32(k / denom)
                nbr = nb_vals[:2] * mask_t if padded else nb_vals[:2]
                np.multiply(nbr, sgn, out=dyn[5:].reshape(2, T, B * m))
                h = dyn.T @ self.w_dyn
                h += static
                for w, b in self.rest:
                    np.maximum(h, zero, out=h)
                    h = h @ w
                    h += b
                out = h
                gate = one / (one + np.exp(-out[:, 0]))
                new = sgn * np.minimum(abs_r * gate, cap_b)
                est = est + lead * (new - est) if k < self.n_iter - 1 else new
            assert out is not None and r is not None  # n_iter >= 1
            sd = _softplus(out[:, 1]) * np.sqrt(one + np.square(r)) + f32(1e-4)
        return est.reshape(B, m), sd.reshape(B, m)


Predictor = Callable[[torch.Tensor, BlockFeatures], tuple[torch.Tensor, torch.Tensor]]


def numpy_predictor(net: nn.Module) -> Predictor | None:
    """``predict(z, bf) -> (mean, sd)`` (torch in and out) on the numpy path, or ``None`` if unsupported.

    Same contract as :func:`bayesmages.shrink.train.point_predictor`; the weights are copied now.
    """
    try:
        # other networks fail here with TypeError/AttributeError (duck typing), hence the cast
        fast = NumpyShrinker(cast("UnrolledShrinker", net))
    except (TypeError, AttributeError):
        return None

    def predict(z: torch.Tensor, bf: BlockFeatures) -> tuple[torch.Tensor, torch.Tensor]:
        mean, sd = fast(z.detach().to(torch.float32).numpy(), bf)
        return torch.from_numpy(mean), torch.from_numpy(sd)

    return predict
