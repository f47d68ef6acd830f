"""One GAN training step: (1) update D on real and generated pairs, (2) update G to fool D and to
match the target (the mixed losses). Used by the training loop and by bench/train.py.

    losses = gan_step(models, opt_g, opt_d, scaler, x, y, gan="dcgan", l1=100, mse=0, device=device, amp=False)
"""
from dataclasses import dataclass

import torch

from networks.losses import discriminator_loss, generator_loss, reconstruction_losses
from utils.device import autocast


@dataclass
class Models:
    generator: torch.nn.Module  # possibly DDP-wrapped
    discriminator: torch.nn.Module | None  # possibly DDP-wrapped; None without an adversarial loss
    raw_discriminator: torch.nn.Module | None  # unwrapped: used in the G step, where D is not trained


def set_requires_grad(module, flag):
    for p in module.parameters():
        p.requires_grad_(flag)


def gan_step(models, opt_g, opt_d, scaler, x, y, gan, l1, mse, device, amp, check=lambda losses: None):
    """x, y: (N, C, T, H, W) input and target in [-1, 1]. `check(losses)` runs before each update
    and may raise to stop before bad values reach the weights. Returns the loss tensors by name."""
    with autocast(device, amp):
        fake = models.generator(x)

    # (1) Update D: real pairs towards "real", generated pairs (detached from G) towards "fake".
    losses = {}
    if models.discriminator is not None:
        set_requires_grad(models.raw_discriminator, True)
        with autocast(device, amp):  # one pass over both halves, so DDP syncs once
            logits = models.discriminator(torch.cat([x, x]), torch.cat([y, fake.detach()])).float()
        losses["d_real"], losses["d_fake"] = discriminator_loss(gan, *logits.chunk(2))
        check(losses)
        opt_d.zero_grad(set_to_none=True)
        scaler.scale(0.5 * (losses["d_real"] + losses["d_fake"])).backward()
        scaler.step(opt_d)
        set_requires_grad(models.raw_discriminator, False)

    # (2) Update G: fool the updated D, and stay close to the target.
    if models.raw_discriminator is not None:
        with autocast(device, amp):
            losses["g_adv"] = generator_loss(gan, models.raw_discriminator(x, fake).float())
    losses["g_l1"], losses["g_mse"] = reconstruction_losses(fake, y)
    losses["g_total"] = losses.get("g_adv", 0.0) + l1 * losses["g_l1"] + mse * losses["g_mse"]
    check({name: value for name, value in losses.items() if name.startswith("g_")})
    opt_g.zero_grad(set_to_none=True)
    scaler.scale(losses["g_total"]).backward()
    scaler.step(opt_g)
    scaler.update()
    return losses
