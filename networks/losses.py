"""Adversarial losses (dcgan, lsgan, hinge, none) and the reconstruction terms they are mixed with.

    d_real, d_fake = discriminator_loss("dcgan", D(a, b), D(a, fake.detach()))
    g_adv = generator_loss("dcgan", D(a, fake))
"""
import torch
import torch.nn.functional as F

GAN_LOSSES = ("dcgan", "lsgan", "hinge", "none")


def discriminator_loss(kind, real_logits, fake_logits):
    """(loss on real clips, loss on generated clips): low when real scores high and fake low."""
    if kind == "dcgan":  # binary cross-entropy with logits (Goodfellow et al., DCGAN)
        return (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits)),
                F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))
    if kind == "lsgan":  # least squares towards 1 and 0 (Mao et al. 2017)
        return F.mse_loss(real_logits, torch.ones_like(real_logits)), F.mse_loss(fake_logits, torch.zeros_like(fake_logits))
    if kind == "hinge":  # margin of 1 on either side (Lim & Ye 2017; SAGAN)
        return F.relu(1.0 - real_logits).mean(), F.relu(1.0 + fake_logits).mean()
    raise ValueError(f"no discriminator loss for gan loss {kind!r}")


def generator_loss(kind, fake_logits):
    """Low when the discriminator scores generated clips as real (non-saturating for dcgan)."""
    if kind == "dcgan":
        return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
    if kind == "lsgan":
        return F.mse_loss(fake_logits, torch.ones_like(fake_logits))
    if kind == "hinge":
        return -fake_logits.mean()
    raise ValueError(f"no generator loss for gan loss {kind!r}")


def reconstruction_losses(fake, target):
    """(L1, MSE) between generated and target clips, in the [-1, 1] value range."""
    fake = fake.float()
    return F.l1_loss(fake, target), F.mse_loss(fake, target)
