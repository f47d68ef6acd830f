"""The networks of unpaired translation, each set one module so that it trains, saves, averages and
runs under DDP as the paired generator and discriminator do: CycleGAN's generators A->B and B->A
(Zhu et al. 2017), with Recycle-GAN's temporal predictors P_A and P_B (Bansal et al. 2018), and
the two unconditional discriminators D_A and D_B.

How a 3D-conv window maps onto Recycle-GAN's frame triplets: the paper's predictor takes frames
x_{t-1}, x_t and predicts x_{t+1}. Here a predictor is a generator over the whole window of T
frames whose last frame is hidden (replaced by a copy of the frame before it); what it makes at
the last frame is its prediction of that frame from the T-1 frames before it.

    G = CycleGenerators(build_generator("unet"), build_generator("unet")); out = G(a, b)   # out.fake_b ...
"""
from dataclasses import dataclass

import torch
from torch import nn


def held(clip):
    """The clip (N, C, T, H, W) with its last frame hidden: the frame before it repeated in its place."""
    return torch.cat([clip[:, :, :-1], clip[:, :, -2:-1]], dim=2)


def predicted(predictor, clip):
    """The clip with its last frame replaced by `predictor`'s prediction of it from the frames before."""
    return torch.cat([clip[:, :, :-1], predictor(held(clip))[:, :, -1:]], dim=2)


@dataclass
class CycleOutputs:
    """What one pass of the generators makes of real clips a and b, each (N, C, T, H, W)."""

    fake_b: torch.Tensor  # G_AB(a)
    fake_a: torch.Tensor  # G_BA(b)
    rec_a: torch.Tensor  # G_BA(G_AB(a)), the cycle back to A
    rec_b: torch.Tensor  # G_AB(G_BA(b))
    same_a: torch.Tensor  # G_BA(a): a generator given its own output domain should leave it be
    same_b: torch.Tensor  # G_AB(b)
    next_a: torch.Tensor | None = None  # P_A's prediction of a's last frame (N, C, 1, H, W), Recycle-GAN's recurrent term
    next_b: torch.Tensor | None = None
    recycled_a: torch.Tensor | None = None  # a's last frame by way of B: G_BA(P_B(G_AB(a))) at the last frame
    recycled_b: torch.Tensor | None = None


class CycleGenerators(nn.Module):
    """G_AB and G_BA, and with `predictors` (Recycle-GAN) P_A and P_B; its forward runs them all once
    per step, so that DDP sees every parameter used in one pass."""

    def __init__(self, ab, ba, predictor_a=None, predictor_b=None):
        super().__init__()
        self.ab, self.ba = ab, ba
        self.predictor_a, self.predictor_b = predictor_a, predictor_b

    @property
    def recycles(self):
        return self.predictor_a is not None

    def forward(self, a, b):
        n = a.shape[0]
        fake_b, same_b = self.ab(torch.cat([a, b])).split(n)  # one batched pass per generator over both inputs
        fake_a, same_a = self.ba(torch.cat([b, a])).split(n)
        rec_a, rec_b = self.ba(fake_b), self.ab(fake_a)
        outputs = CycleOutputs(fake_b, fake_a, rec_a, rec_b, same_a, same_b)
        if self.recycles:
            outputs.next_a = self.predictor_a(held(a))[:, :, -1:]
            outputs.next_b = self.predictor_b(held(b))[:, :, -1:]
            outputs.recycled_a = self.ba(predicted(self.predictor_b, fake_b))[:, :, -1:]
            outputs.recycled_b = self.ab(predicted(self.predictor_a, fake_a))[:, :, -1:]
        return outputs

    def direction(self, name):
        """(the generator that translates, the one that brings its output back) for "AtoB" or "BtoA"."""
        return (self.ab, self.ba) if name == "AtoB" else (self.ba, self.ab)


class CycleDiscriminators(nn.Module):
    """D_A and D_B, unconditional: each scores clips of its own domain, real or generated."""

    def __init__(self, a, b):
        super().__init__()
        self.a, self.b = a, b

    def forward(self, clips_a, clips_b):
        return self.a(clips_a), self.b(clips_b)  # (N, 1, T, h, w) logits each
