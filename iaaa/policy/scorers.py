"""Scorers: how far a set of augmented cell objects lies from the real ones.

Convention: **lower is better** (a score is a cost, like a loss or a distance), so a
downstream model's loss or any feature distance plugs in unchanged.

A scorer is any callable ``scorer(original, augmented) -> float`` taking two
:class:`~iaaa.policy.batch.ObjectBatch` es of the same length, where ``augmented[i]`` was made
from ``original[i]`` (rows that the policy's probabilities skipped are copies). Optionally:

* ``input_size``: the ``(H, W)`` the scorer wants; the search prepares objects at that size.
* ``embed(batch) -> Tensor (N, D)`` and ``compare(original_emb, augmented_emb) -> float``,
  with ``scorer(o, a) == compare(embed(o), embed(a))`` and ``embed`` working row by row. The
  search then embeds each augmented object once per (op, magnitude) and reuses the embeddings
  for every probability, instead of re-scoring whole batches (see :class:`EmbeddingScorer`).

Neither built-in scorer rewards an augmented cell for resembling *its own* original: both
compare distributions with the paired unbiased MMD, which skips the ``(i, i)`` pairs. Leaving
cells untouched still scores about 0 (the best a distribution can do), which is why the search
also demands a minimum change (``docs/policy.md``).
"""

from __future__ import annotations

import copy
import os
from typing import Protocol, runtime_checkable

import torch

from iaaa.policy.batch import ObjectBatch
from iaaa.policy.wae import WAE, imq_kernel, load_wae, mmd_unbiased, offdiag_mean
from iaaa.errors import IaaaError

__all__ = ["Scorer", "EmbeddingScorer", "StatsScorer", "WAEScorer"]


@runtime_checkable
class Scorer(Protocol):
    """Anything that maps ``(original, augmented)`` object batches to a cost (lower is better)."""

    def __call__(self, original: ObjectBatch, augmented: ObjectBatch) -> float: ...


@runtime_checkable
class EmbeddingScorer(Scorer, Protocol):
    """A :class:`Scorer` that factors into a per-object embedding and a set comparison."""

    def embed(self, batch: ObjectBatch) -> torch.Tensor: ...

    def compare(self, original: torch.Tensor, augmented: torch.Tensor) -> float: ...


class _ReferenceCache:
    """Remembers the kernel term of the last reference set: the search compares thousands of
    augmented sets with the same originals, and that term is a third of the work."""

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._value: torch.Tensor | None = None

    def xx_term(self, owner: torch.Tensor, x: torch.Tensor, base_scale: float) -> torch.Tensor:
        """The term for ``x``, a function of the tensor ``owner`` (the cache key)."""
        key = (id(owner), owner.data_ptr(), tuple(owner.shape), owner._version, base_scale)
        if key != self._key:
            self._value = offdiag_mean(imq_kernel(x, x, base_scale))
            self._key, self._owner = key, owner  # keep owner alive so its id cannot be reused
        return self._value


def _masked_mean(values: torch.Tensor, mask: torch.Tensor, area: torch.Tensor) -> torch.Tensor:
    return (values * mask).flatten(2).sum(-1) / area


class StatsScorer:
    """Cheap baseline needing no training: distance between the distributions of simple
    per-object statistics.

    Per object and channel: mean, standard deviation and mean gradient magnitude (sharpness)
    inside the mask, and contrast against the background; per object: mask area fraction and
    elongation (ratio of the mask's second-moment eigenvalues). Features are standardised by the
    originals' spread and compared with the paired unbiased MMD (IMQ kernel)."""

    input_size = None

    def __init__(self) -> None:
        self._cache = _ReferenceCache()
        self._std_key: tuple | None = None

    def embed(self, batch: ObjectBatch) -> torch.Tensor:
        x, lab = batch.images, batch.labels
        mask = (lab > 0).unsqueeze(1).to(x.dtype)
        area = mask.flatten(2).sum(-1).clamp_min(1.0)
        mean = _masked_mean(x, mask, area)
        var = _masked_mean((x - mean[..., None, None]).square(), mask, area)
        gy = torch.zeros_like(x)
        gx = torch.zeros_like(x)
        gy[..., 1:, :] = x[..., 1:, :] - x[..., :-1, :]
        gx[..., :, 1:] = x[..., :, 1:] - x[..., :, :-1]
        grad = _masked_mean((gx.square() + gy.square()).sqrt(), mask, area)
        contrast = mean - batch.background.flatten(1)
        h, w = batch.size
        m = mask[:, 0]
        ys = torch.arange(h, dtype=x.dtype, device=x.device).view(1, h, 1)
        xs = torch.arange(w, dtype=x.dtype, device=x.device).view(1, 1, w)
        a = area[:, 0].view(-1, 1, 1)
        cy, cx = (m * ys).sum((1, 2), keepdim=True) / a, (m * xs).sum((1, 2), keepdim=True) / a
        syy = (m * (ys - cy).square()).sum((1, 2)) / a.flatten()
        sxx = (m * (xs - cx).square()).sum((1, 2)) / a.flatten()
        sxy = (m * (ys - cy) * (xs - cx)).sum((1, 2)) / a.flatten()
        tr, det = sxx + syy, sxx * syy - sxy.square()
        disc = (tr.square() / 4 - det).clamp_min(0).sqrt()
        elong = ((tr / 2 - disc).clamp_min(1e-6) / (tr / 2 + disc).clamp_min(1e-6)).sqrt()
        frac = m.flatten(1).mean(1)
        return torch.cat([mean, var.sqrt(), grad, contrast, frac[:, None], elong[:, None]], 1)

    def compare(self, original: torch.Tensor, augmented: torch.Tensor) -> float:
        key = (id(original), original.data_ptr(), tuple(original.shape), original._version)
        if key != self._std_key:
            mu = original.mean(0, keepdim=True)
            sd = original.std(0, keepdim=True).clamp_min(1e-6)
            self._std, self._std_key, self._std_ref = (mu, sd, (original - mu) / sd), key, original
        mu, sd, ref = self._std
        base = 2.0 * ref.shape[1]
        return float(mmd_unbiased(ref, (augmented - mu) / sd, base_scale=base, paired=True, xx_term=self._cache.xx_term(original, ref, base)))

    def __call__(self, original: ObjectBatch, augmented: ObjectBatch) -> float:
        return self.compare(self.embed(original), self.embed(augmented))

    def __repr__(self) -> str:
        return "StatsScorer()"


class WAEScorer:
    """Realism of augmented objects as judged by a trained :class:`~iaaa.policy.wae.WAE`.

    ``cost = MMD_u^2(E(original), E(augmented)) + recon_weight * |log(err_aug / err_orig)|``

    * The first term is the paired unbiased MMD (same multi-scale IMQ kernel as training)
      between the latent codes of the originals and the augmented objects: does the augmented
      population occupy the same region of the learned cell manifold?
    * The second compares mean reconstruction errors. An encoder is many-to-one, so an image
      that is unlike any cell can still land among real codes; the decoder cannot rebuild it and
      its error rises. The absolute log-ratio also penalises errors *below* the real ones:
      autoencoders rebuild blurred or flattened images better than real cells, and such
      images should not count as more realistic.

    Args:
        model: a :class:`WAE` or the path of a model file (``iaaa fit-wae``).
        recon_weight: weight of the reconstruction term (0 drops it).
        device: where the model runs.
        chunk: objects per forward pass (bounds memory).
    """

    def __init__(self, model: WAE | str | os.PathLike, recon_weight: float = 0.1, device: str | torch.device = "cpu", chunk: int = 1024) -> None:
        self.path = None if isinstance(model, WAE) else os.fspath(model)
        # A private channels-last copy: ~20% faster convolutions on CPU, and the caller's
        # model is left exactly as it was.
        src = model if isinstance(model, WAE) else load_wae(model)
        self.model = copy.deepcopy(src).to(device=device, memory_format=torch.channels_last).eval()
        self.recon_weight = float(recon_weight)
        self.chunk = int(chunk)
        self.input_size = self.model.config.size
        self.margin = self.model.config.margin
        self._cache = _ReferenceCache()

    @torch.no_grad()
    def embed(self, batch: ObjectBatch) -> torch.Tensor:
        """``(N, latent_dim + 1)``: latent code and mean squared reconstruction error."""
        c = self.model.config
        if batch.channels != c.in_channels:
            raise IaaaError(f"WAEScorer: objects have {batch.channels} channels but the WAE was trained on {c.in_channels}")
        if batch.size != c.size:
            raise IaaaError(f"WAEScorer: objects are {batch.size} but the WAE expects {c.size}; prepare them with prepare_objects(size={c.size})")
        dev = next(self.model.parameters()).device
        outs = []
        for start in range(0, len(batch), self.chunk):
            z, err = self.model.reconstruction_error(batch.images[start : start + self.chunk].to(dev))
            outs.append(torch.cat([z, err[:, None]], 1))
        return torch.cat(outs).to(batch.device)

    def compare(self, original: torch.Tensor, augmented: torch.Tensor) -> float:
        base = 2.0 * self.model.config.latent_dim * self.model.config.sigma2
        ref = original[:, :-1]
        cost = mmd_unbiased(ref, augmented[:, :-1], base_scale=base, paired=True, xx_term=self._cache.xx_term(original, ref, base))
        if self.recon_weight:
            ratio = augmented[:, -1].mean().clamp_min(1e-12) / original[:, -1].mean().clamp_min(1e-12)
            cost = cost + self.recon_weight * ratio.log().abs()
        return float(cost)

    def __call__(self, original: ObjectBatch, augmented: ObjectBatch) -> float:
        return self.compare(self.embed(original), self.embed(augmented))

    def __repr__(self) -> str:
        src = self.path if self.path else "<in-memory WAE>"
        return f"WAEScorer({src!r}, recon_weight={self.recon_weight})"
