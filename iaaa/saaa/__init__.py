"""SAAA (paper section 4): a diffusion model that generates cell masks and a Pix2Pix generator
that renders microscopy images for them.

* :mod:`iaaa.saaa.masks`: label map <-> foreground + distance channels.
* :mod:`iaaa.saaa.diffusion`: :class:`MaskDiffusion` (diffusers UNet2DModel, DDPM training, DDIM sampling).
* :mod:`iaaa.saaa.pix2pix`: U-Net generator (self-attention, SE blocks) and PatchGAN.
* :mod:`iaaa.saaa.perceptual`: offline perceptual losses (WAE encoder, random filters, local VGG).
* :mod:`iaaa.saaa.training`: resumable, checkpointed training of both.
* :mod:`iaaa.saaa.model`: :class:`SAAA`, the fit / save / load / sample object.
"""

from iaaa.saaa.diffusion import MaskDiffusion, MaskDiffusionConfig
from iaaa.saaa.masks import channels_to_labels, labels_to_channels
from iaaa.saaa.model import SAAA, SAAAConfig
from iaaa.saaa.perceptual import build_perceptual, vgg_features
from iaaa.saaa.pix2pix import PatchDiscriminator, Pix2PixConfig, UNetGenerator
from iaaa.saaa.training import fit_mask_diffusion, fit_pix2pix

__all__ = [
    "SAAA",
    "SAAAConfig",
    "MaskDiffusion",
    "MaskDiffusionConfig",
    "UNetGenerator",
    "PatchDiscriminator",
    "Pix2PixConfig",
    "labels_to_channels",
    "channels_to_labels",
    "build_perceptual",
    "vgg_features",
    "fit_mask_diffusion",
    "fit_pix2pix",
]
