"""Image-fidelity metrics that run offline on small cell datasets.

* :func:`fid`, :func:`fid_infinity`: Fréchet distance of Gaussian fits of features (and its
  extrapolation to infinitely many samples, Chong & Forsyth 2020).
* :func:`kid`: unbiased MMD² with the cubic polynomial kernel over seeded subsets whose size
  adapts to small sets; mean and std.
* :func:`swd`: sliced Wasserstein distance over Laplacian-pyramid patches; needs no network.
* Feature extractors: :class:`PyramidStatsFeatures` (offline default, no weights),
  :class:`InceptionFeatures` (torchvision Inception-v3 from a local weights file),
  :func:`wae_features` (a trained WAE encoder), :func:`as_extractor` (any module or callable).
* :func:`evaluate_fidelity`: the paper's protocol (SCO crops, MCO crops, whole images or
  128 px tiles) as one table; ``iaaa evaluate`` on the command line.

See docs/metrics.md for which number to trust at which sample size.
"""

from iaaa.metrics.features import (
    INCEPTION_WEIGHTS_HELP,
    InceptionFeatures,
    ModuleFeatures,
    PyramidStatsFeatures,
    as_extractor,
    compute_features,
    prepare_batch,
    standardize,
    wae_features,
)
from iaaa.metrics.fid import FIDInfinityResult, fid, fid_infinity, frechet_distance, gaussian_stats
from iaaa.metrics.kid import KIDResult, kid, mmd2_unbiased, polynomial_kernel
from iaaa.metrics.protocols import LEVELS, METRICS, FidelityReport, LevelReport, evaluate_fidelity, image_tiles, level_images
from iaaa.metrics.swd import SWDResult, sliced_wasserstein, swd

__all__ = [
    "fid",
    "fid_infinity",
    "frechet_distance",
    "gaussian_stats",
    "FIDInfinityResult",
    "kid",
    "mmd2_unbiased",
    "polynomial_kernel",
    "KIDResult",
    "swd",
    "sliced_wasserstein",
    "SWDResult",
    "compute_features",
    "prepare_batch",
    "standardize",
    "as_extractor",
    "ModuleFeatures",
    "InceptionFeatures",
    "PyramidStatsFeatures",
    "wae_features",
    "INCEPTION_WEIGHTS_HELP",
    "evaluate_fidelity",
    "FidelityReport",
    "LevelReport",
    "level_images",
    "image_tiles",
    "LEVELS",
    "METRICS",
]
