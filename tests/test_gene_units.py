"""Gene-test work units (genes x all traits): several traits together equal each alone, for any chunking and workers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayesmages.errors import InputError
from bayesmages.genes import GeneMap, enrichment, units
from bayesmages.genes.conditional import gene_statistics, gene_statistics_traits
from bayesmages.io.tables import chromosome_names


def ar1(m: int, rho: float) -> np.ndarray:
    idx = np.arange(m)
    return rho ** np.abs(idx[:, None] - idx[None, :])


@pytest.fixture(scope="module")
def three_traits():
    """Three traits on three AR(1) blocks: a strong causal variant in some genes, genes of 1-30 variants, some
    crossing a block boundary and some with a gap (not contiguous rows), so every code path is taken."""
    rng = np.random.default_rng(11)
    blocks = [ar1(90, 0.85), ar1(70, 0.6), ar1(50, 0.9)]
    m = 210
    indices, a = [], 0
    while a < m - 2:
        size = int(rng.integers(1, 31))
        ix = np.arange(a, min(a + size, m))
        if size > 6 and rng.random() < 0.3:
            ix = np.delete(ix, ix.size // 2)  # a gene with a hole
        indices.append(ix)
        a += size + int(rng.integers(0, 3))
    genes = pd.DataFrame({"GENE": [f"G{i}" for i in range(len(indices))], "CHR": "1",
                          "n_variants": [ix.size for ix in indices]})
    gmap = GeneMap(genes, indices)
    L = [np.linalg.cholesky(R + 1e-9 * np.eye(len(R))) for R in blocks]
    traits = {}
    for t in range(3):
        lam = np.zeros(m)
        lam[rng.choice(m, 3, replace=False)] = rng.choice([-7.0, 6.0, 9.0], 3)
        z = np.concatenate([R @ lam[s:s + len(R)] + Lb @ rng.normal(size=len(R))
                            for R, Lb, s in zip(blocks, L, [0, 90, 160])])
        se = np.full(m, 0.01)
        shrunk = np.where(np.abs(z) > 4, z, 0.3 * z) * se  # a stand-in shrinker: what it keeps selects A
        traits[f"T{t + 1}"] = (shrunk, z * se, se)
    return blocks, gmap, traits


def test_gene_statistics_of_several_traits_equal_each_alone(three_traits):
    blocks, gmap, traits = three_traits
    z = np.stack([bh / se for _, bh, se in traits.values()])
    zeta = np.stack([b / se for b, _, se in traits.values()])
    together = gene_statistics_traits(z, zeta, blocks, gmap)
    for t in range(len(traits)):
        alone = gene_statistics(z[t], zeta[t], blocks, gmap)
        np.testing.assert_array_equal(together[t].Q, alone.Q)
        np.testing.assert_array_equal(together[t].wald, alone.wald)
        np.testing.assert_array_equal(together[t].n_conditioned, alone.n_conditioned)
        for a, b in zip(together[t].weights, alone.weights):
            np.testing.assert_array_equal(a, b)
    assert sum(st.n_conditioned.sum() for st in together) > 0  # the conditioning path was taken


@pytest.mark.parametrize("method", ["conditional", "marginal", "epsilon"])
def test_test_traits_equals_test_per_trait(three_traits, method):
    blocks, gmap, traits = three_traits
    kw = ({"null_variance": {t: 1e-4 * (i + 1) for i, t in enumerate(traits)}} if method == "epsilon" else
          {"beta_hat": {t: v[1] for t, v in traits.items()}, "se": {t: v[2] for t, v in traits.items()}})
    together = enrichment.test_traits({t: v[0] for t, v in traits.items()}, blocks, gmap, method=method, **kw)
    assert list(together) == list(traits)
    for i, (t, (shrunk, bhat, se)) in enumerate(traits.items()):
        alone = (enrichment.test(shrunk, blocks, gmap, null_variance=1e-4 * (i + 1)) if method == "epsilon" else
                 enrichment.test(shrunk, blocks, gmap, beta_hat=bhat, se=se, method=method))
        pd.testing.assert_frame_equal(together[t], alone)
    assert min(df.p_value.min() for df in together.values()) < 1e-4  # the causal variants are found


def test_any_chunking_gives_the_same_numbers(three_traits):
    # the chunks only decide which process computes a gene: 1, 3 or one chunk per gene give identical arrays
    blocks, gmap, traits = three_traits
    arrays = enrichment._z_arrays({t: v[0] for t, v in traits.items()}, {t: v[1] for t, v in traits.items()},
                                  {t: v[2] for t, v in traits.items()}, 210, "conditional", 0.5)
    outs = []
    for n in (1, 3, len(gmap)):
        made = units.make_units(gmap, blocks, "conditional", arrays, n, lambda used: [blocks[b] for b in used])
        assert len(made) == n if n < 4 else 4 < len(made) <= n  # equal cost: cheap genes share a chunk
        # consecutive, every gene once, in order
        assert [g for u in made for g in u.genes.genes["GENE"]] == gmap.genes["GENE"].tolist()
        res = [units.run_unit(u)["traits"] for u in made]
        outs.append([np.concatenate([r[t][k] for r in res]) for t in range(3) for k in range(4)])
    for other in outs[1:]:
        for a, b in zip(outs[0], other):
            np.testing.assert_array_equal(a, b)


def test_chunks_are_cut_at_equal_cost():
    sizes = [1] * 50 + [60] * 10 + [5] * 40  # ten expensive genes in the middle
    gmap = GeneMap(pd.DataFrame({"GENE": [f"G{i}" for i in range(len(sizes))], "CHR": "1", "n_variants": sizes}),
                   list(np.split(np.arange(sum(sizes)), np.cumsum(sizes)[:-1])))
    costs = units.gene_costs(gmap)
    parts = units._cut(costs, 4)
    assert np.concatenate(parts).tolist() == list(range(len(sizes)))
    share = np.array([costs[p].sum() for p in parts]) / costs.sum()
    # a cut falls between genes, so a chunk is off its quarter by at most one gene's cost (2/88 here)
    assert np.all(np.abs(share - 0.25) <= costs.max() / costs.sum())
    # tapered: the chunks' costs fall from first to last, the first about 4 times the last
    tapered = [costs[p].sum() for p in units._cut(costs, 4, taper=4.0)]
    assert all(np.diff(tapered) < 0)
    assert tapered[0] / tapered[-1] == pytest.approx(4.0, rel=0.3)  # cuts fall between genes: not exact
    assert len(units._cut(costs, 1000)) <= len(sizes)  # never more chunks than genes, none empty
    assert all(p.size for p in units._cut(costs, 1000))


def test_worker_processes_several_traits_identical_and_balanced(three_traits):
    blocks, gmap, traits = three_traits
    kw = {"beta_hat": {t: v[1] for t, v in traits.items()}, "se": {t: v[2] for t, v in traits.items()}}
    serial = enrichment.test_traits({t: v[0] for t, v in traits.items()}, blocks, gmap, **kw)
    pooled = enrichment.test_traits({t: v[0] for t, v in traits.items()}, blocks, gmap, workers=2, **kw)
    for t in traits:
        pd.testing.assert_frame_equal(serial[t], pooled[t])
    info = pooled["T1"].attrs["units"]
    assert 1 < info["n_units"] <= units.CHUNKS_PER_WORKER * 2 and info["processes"] >= 1
    assert info["unit_cpu_seconds"] > 0 and len(info["unit_cpu_seconds_each"]) == info["n_units"]
    assert serial["T1"].attrs["units"]["n_units"] == 1


def test_test_traits_bad_input_names_the_trait(three_traits):
    blocks, gmap, traits = three_traits
    shrunk = {t: v[0] for t, v in traits.items()}
    with pytest.raises(InputError, match="beta_hat: expected one entry per trait"):
        enrichment.test_traits(shrunk, blocks, gmap, beta_hat={"T1": traits["T1"][1]}, se={})
    with pytest.raises(InputError, match=r"beta_shrunk\['T2'\] has 3 values"):
        enrichment.test_traits({**shrunk, "T2": np.zeros(3)}, blocks, gmap, method="epsilon")
    with pytest.raises(InputError, match="null_variance"):
        enrichment.test_traits(shrunk, blocks, gmap, method="epsilon")
    with pytest.raises(InputError, match="at least one trait"):
        enrichment.test_traits({}, blocks, gmap)


def test_chromosome_names_cleaned_once_per_distinct_name():
    values = pd.Series(["chr1", "1", "CHR2", "x", "chrX", None, "Chr10"] * 3)
    expected = values.astype(str).str.replace(r"^chr", "", regex=True, case=False).to_numpy()
    pd.testing.assert_series_equal(pd.Series(chromosome_names(values)), pd.Series(expected))
    assert chromosome_names(pd.Series([], dtype=object)).size == 0
