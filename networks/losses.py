"""The adversarial losses (named in networks/registry.py's ADVERSARIAL_LOSSES) and the reconstruction terms they are mixed with.

    d_real, d_fake = discriminator_loss("dcgan", D(a, b), D(a, fake.detach()))
    g_adv = generator_loss("dcgan", D(a, fake))
"""
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from networks.registry import ADVERSARIAL_LOSSES


@dataclass(frozen=True)
class Adversarial:
    """An adversarial loss: `discriminator(real_logits, fake_logits)` -> (loss on real clips, loss
    on generated clips), low when real scores high and generated low; `generator(fake_logits)`,
    low when the discriminator scores generated clips as real."""

    discriminator: object  # a function (real_logits, fake_logits) -> (loss, loss)
    generator: object  # a function fake_logits -> loss


def ones(logits):
    return torch.ones_like(logits)


# The adversarial losses networks/registry.py's ADVERSARIAL_LOSSES names.
# binary cross-entropy with logits (Goodfellow et al., DCGAN); the generator's is non-saturating
DCGAN = Adversarial(lambda real, fake: (F.binary_cross_entropy_with_logits(real, ones(real)),
                                        F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))),
                    lambda fake: F.binary_cross_entropy_with_logits(fake, ones(fake)))
# least squares towards 1 and 0 (Mao et al. 2017)
LSGAN = Adversarial(lambda real, fake: (F.mse_loss(real, ones(real)), F.mse_loss(fake, torch.zeros_like(fake))),
                    lambda fake: F.mse_loss(fake, ones(fake)))
# a margin of 1 on either side (Lim & Ye 2017; SAGAN)
HINGE = Adversarial(lambda real, fake: (F.relu(1.0 - real).mean(), F.relu(1.0 + fake).mean()), lambda fake: -fake.mean())


def discriminator_loss(gan_loss, real_logits, fake_logits):
    """(loss on real clips, loss on generated clips) of --gan-loss `gan_loss`."""
    return ADVERSARIAL_LOSSES[gan_loss].load().discriminator(real_logits, fake_logits)


def generator_loss(gan_loss, fake_logits):
    return ADVERSARIAL_LOSSES[gan_loss].load().generator(fake_logits)


def reconstruction_losses(fake, target):
    """(L1, MSE) between generated and target clips, in the [-1, 1] value range."""
    fake = fake.float()
    return F.l1_loss(fake, target), F.mse_loss(fake, target)


def temporal_loss(fake, flow, mask):
    """The short-term temporal loss of Lai et al. 2018: each generated frame t against generated
    frame t-1 warped by the target's flow, L1 (in the [-1, 1] range) averaged over the pixels the
    target shows in both frames (`mask`) whose flow stays inside the clip. fake (N, C, T, H, W);
    flow (N, 2, T, H, W), frame t to t-1 in pixels (x, y); mask (N, 1, T, H, W) of 0 and 1. A
    clip's first frame has no frame before it in the clip: its flow is not used."""
    fake = fake.float()
    n, c, t, h, w = fake.shape
    frames = lambda v, k: v.transpose(1, 2)[:, k].reshape(-1, v.shape[1], h, w)  # noqa: E731 - (N * (T-1), channels, H, W)
    current, previous = frames(fake, slice(1, None)), frames(fake, slice(None, -1))
    motion, visible = frames(flow, slice(1, None)), frames(mask, slice(1, None))
    ys, xs = torch.meshgrid(torch.arange(h, device=fake.device, dtype=torch.float32),
                            torch.arange(w, device=fake.device, dtype=torch.float32), indexing="ij")
    x, y = xs + motion[:, 0], ys + motion[:, 1]  # where each pixel of frame t was in frame t-1
    inside = ((x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)).unsqueeze(1)
    grid = torch.stack([2 * x / max(w - 1, 1) - 1, 2 * y / max(h - 1, 1) - 1], dim=-1)
    warped = F.grid_sample(previous, grid, mode="bilinear", padding_mode="border", align_corners=True)
    weight = visible * inside
    return (weight * (current - warped).abs()).sum() / (c * weight.sum()).clamp_min(1.0)


def cycle_losses(a, b, out):
    """The reconstruction terms of unpaired translation, L1 in the [-1, 1] range, from real clips a,
    b (N, C, T, H, W) and what the generators made of them (networks/cycle.py's CycleOutputs):
    cycle (CycleGAN: each clip back from the other domain, both ways summed), identity (each
    generator given a clip of its output domain), and with predictors Recycle-GAN's recurrent
    (each predictor's next frame within its domain) and recycle (the next frame predicted in the
    other domain and brought back) terms, both ways summed."""
    l1 = lambda made, real: F.l1_loss(made.float(), real)  # noqa: E731
    losses = {"g_cycle": l1(out.rec_a, a) + l1(out.rec_b, b), "g_identity": l1(out.same_a, a) + l1(out.same_b, b)}
    if out.next_a is not None:
        last_a, last_b = a[:, :, -1:], b[:, :, -1:]
        losses["g_recurrent"] = l1(out.next_a, last_a) + l1(out.next_b, last_b)
        losses["g_recycle"] = l1(out.recycled_a, last_a) + l1(out.recycled_b, last_b)
    return losses
