"""The WAE: MMD estimator against a double-loop reference, shapes, training, persistence, scorer."""

from __future__ import annotations

import time

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from iaaa.errors import IaaaError
from iaaa.policy import WAE, WAEConfig, WAEScorer, fit_wae, imq_kernel, load_wae, mmd_unbiased, prepare_objects
from iaaa.policy.wae import IMQ_SCALES


def reference_kernel(a, b, c):
    return sum(s * c / (s * c + float(((a - b) ** 2).sum())) for s in IMQ_SCALES)


def reference_mmd(x, y, c, paired):
    """MMD_u^2 written out as the double sums of Tolstikhin et al. / Gretton et al."""
    n, m = len(x), len(y)
    sxx = sum(reference_kernel(x[i], x[j], c) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    syy = sum(reference_kernel(y[i], y[j], c) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    if paired:
        sxy = sum(reference_kernel(x[i], y[j], c) for i in range(n) for j in range(m) if i != j) / (n * (n - 1))
    else:
        sxy = sum(reference_kernel(x[i], y[j], c) for i in range(n) for j in range(m)) / (n * m)
    return sxx + syy - 2 * sxy


@settings(max_examples=25, deadline=None)
@given(n=st.integers(2, 6), m=st.integers(2, 6), d=st.integers(1, 4), seed=st.integers(0, 2**16), paired=st.booleans(), scale=st.floats(0.1, 10.0))
def test_mmd_matches_double_loop_reference(n, m, d, seed, paired, scale):
    g = torch.Generator().manual_seed(seed)
    if paired:
        m = n
    x = torch.randn(n, d, generator=g, dtype=torch.float64) * scale
    y = torch.randn(m, d, generator=g, dtype=torch.float64) * scale + 0.5
    got = float(mmd_unbiased(x, y, paired=paired))
    want = reference_mmd(x, y, 2.0 * d, paired)
    assert got == pytest.approx(want, rel=1e-9, abs=1e-12)


def test_imq_kernel_and_mmd_edge_cases():
    x = torch.randn(5, 3, dtype=torch.float64)
    k = imq_kernel(x, x, 6.0)
    assert torch.allclose(k.diagonal(), torch.full((5,), float(len(IMQ_SCALES)), dtype=torch.float64))
    assert float(k[0, 1]) == pytest.approx(reference_kernel(x[0], x[1], 6.0), rel=1e-12)
    # paired with itself: exactly zero, so identity earns nothing beyond "no worse than real"
    assert float(mmd_unbiased(x, x, paired=True)) == pytest.approx(0.0, abs=1e-12)
    # a shifted copy is far
    assert float(mmd_unbiased(x, x + 5, paired=True)) > 1.0
    with pytest.raises(ValueError, match="same length"):
        mmd_unbiased(x, x[:3], paired=True)
    with pytest.raises(ValueError, match="at least 2"):
        mmd_unbiased(x[:1], x)


@pytest.mark.parametrize("channels,size", [(1, (32, 32)), (3, (20, 28)), (5, (17, 33))])
def test_any_channel_count_and_size(channels, size):
    cfg = WAEConfig(in_channels=channels, size=size, latent_dim=4, channels=(8, 16), input_scale=(1.0,) * channels)
    model = WAE(cfg)
    x = torch.rand(3, channels, *size)
    z, rec = model(x)
    assert z.shape == (3, 4)
    assert rec.shape == x.shape
    flat = model.to_latent.in_features
    assert flat == 16 * (size[0] // 4) * (size[1] // 4)
    with pytest.raises(ValueError, match="expected input"):
        model.encode(torch.rand(3, channels + 1, *size))
    with pytest.raises(ValueError, match="too small"):
        WAEConfig(in_channels=1, size=(7, 64), channels=(8, 16, 32))


def test_construction_leaves_global_rng_alone():
    state = torch.get_rng_state()
    WAE(WAEConfig(), generator=torch.Generator().manual_seed(1))
    assert torch.equal(state, torch.get_rng_state())


@pytest.fixture(scope="module")
def sim_objects():
    from iaaa.datasets import simulate_cells

    samples = simulate_cells(6, seed=0, size=(256, 256))
    try:
        from iaaa.synthesis import ObjectConfig, extract_objects
    except ImportError:  # the object extractor is another module; boxes are enough to train on
        from iaaa.structures import instance_ids, labels_to_boxes

        out = []
        for s in samples:
            ids = instance_ids(s.labels)
            for k, (x0, y0, x1, y1) in zip(ids.tolist(), labels_to_boxes(s.labels, ids).long().tolist()):
                out.append((s.image[:, y0 : y1 + 1, x0 : x1 + 1], (s.labels[y0 : y1 + 1, x0 : x1 + 1] == k).long()))
        return out
    return extract_objects(samples, ObjectConfig(grouping="box"))


TINY = dict(size=16, latent_dim=4, channels=(8, 16), epochs=12, batch_size=32, lr=3e-3)


@pytest.fixture(scope="module")
def tiny_model(sim_objects):
    t0 = time.perf_counter()
    model = fit_wae(sim_objects, seed=0, **TINY)
    model.fit_seconds = time.perf_counter() - t0
    return model


def test_wae_trains_quickly_and_its_loss_falls(tiny_model, sim_objects):
    assert len(sim_objects) >= 40
    rep = tiny_model.report
    assert tiny_model.fit_seconds < 60
    assert len(rep.loss) == TINY["epochs"] and rep.steps > 0
    assert rep.loss[-1] < 0.5 * rep.loss[0]
    assert rep.reconstruction[-1] < rep.reconstruction[0]
    assert not tiny_model.training


def test_fit_is_deterministic_for_a_seed(sim_objects):
    a = fit_wae(sim_objects[:40], seed=5, **{**TINY, "epochs": 2})
    b = fit_wae(sim_objects[:40], seed=5, **{**TINY, "epochs": 2})
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)


def test_save_load_round_trip_is_bit_identical(tiny_model, sim_objects, tmp_path):
    path = tmp_path / "wae.pt"
    tiny_model.save(path)
    payload = torch.load(path, weights_only=True)  # plain tensors and Python values only
    assert payload["format"] == "iaaa.wae" and payload["config"]["latent_dim"] == 4
    loaded = load_wae(path)
    assert loaded.config == tiny_model.config
    sd0, sd1 = tiny_model.state_dict(), loaded.state_dict()
    assert sd0.keys() == sd1.keys()
    for k in sd0:
        assert sd0[k].dtype == sd1[k].dtype and torch.equal(sd0[k], sd1[k]), k
    x = prepare_objects(sim_objects[:8], 16).images
    with torch.no_grad():
        assert torch.equal(tiny_model(x)[1], loaded(x)[1])
    assert loaded.history == pytest.approx(tiny_model.history)
    assert not any(p.name.endswith(".tmp.pt") or ".tmp" in p.name for p in tmp_path.iterdir())


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(IaaaError, match="no such WAE"):
        load_wae(tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    bad.write_text("not a model")
    with pytest.raises(IaaaError, match="bad.pt: not a readable WAE model"):
        load_wae(bad)
    code = tmp_path / "code.pt"
    torch.save({"format": "iaaa.wae", "how": IaaaError("a pickled class")}, code)
    with pytest.raises(IaaaError, match="could run code") as e:
        load_wae(code)
    assert "weights_only=False" not in str(e.value)
    other = tmp_path / "other.pt"
    torch.save({"format": "something"}, other)
    with pytest.raises(IaaaError, match="format"):
        load_wae(other)
    broken = tmp_path / "broken.pt"
    torch.save({"format": "iaaa.wae", "version": 1, "config": {"latent_dim": -1}, "state_dict": {}}, broken)
    with pytest.raises(IaaaError, match="config"):
        load_wae(broken)


def test_scorer_prefers_plausible_over_implausible_changes(tiny_model, sim_objects):
    scorer = WAEScorer(tiny_model)
    orig = prepare_objects(sim_objects, 16)
    assert scorer(orig, orig) == pytest.approx(0.0, abs=1e-6)
    flipped = orig.refill(orig.images.flip(-1), orig.labels.flip(-1))
    g = torch.Generator().manual_seed(0)
    noise = orig.refill(torch.rand(orig.images.shape, generator=g), orig.labels)
    inverted = orig.refill(1.0 - orig.images, orig.labels)
    s_flip, s_noise, s_inv = scorer(orig, flipped), scorer(orig, noise), scorer(orig, inverted)
    assert s_flip < s_noise and s_flip < s_inv
    with pytest.raises(ValueError, match="channels"):
        scorer.embed(prepare_objects([(torch.rand(2, 10, 10), torch.ones(10, 10, dtype=torch.long))] * 2, 16))
    with pytest.raises(ValueError, match="expects"):
        scorer.embed(prepare_objects(sim_objects[:4], 24))


def test_scorer_loads_from_a_local_file(tiny_model, sim_objects, tmp_path):
    path = tmp_path / "m.pt"
    tiny_model.save(path)
    a, b = WAEScorer(tiny_model), WAEScorer(path)
    orig = prepare_objects(sim_objects, 16)
    aug = orig.refill(orig.images * 1.3, orig.labels)
    assert a(orig, aug) == b(orig, aug)
    assert str(path) in repr(b)
