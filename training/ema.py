"""An exponential moving average of the generator's weights, kept beside it as StyleGAN2, BasicSR
and imaginaire keep one: after each step every weight moves a (1 - decay) share of the way to the
trained one, so the average smooths out the step-to-step jitter an adversarial game leaves in the
weights. Early on it would be mostly the random start, so its decay ramps up as TensorFlow's
ExponentialMovingAverage(num_updates) does: at step s it is min(decay, (1 + s) / (10 + s)).

    ema = WeightAverage(generator, decay=0.999); ema.update(generator, step); ema.module(x)
"""
import copy

import torch


class WeightAverage:
    def __init__(self, module, decay):
        self.decay = decay
        self.module = copy.deepcopy(module).requires_grad_(False)

    def decay_at(self, step):
        return min(self.decay, (1 + step) / (10 + step))

    @torch.no_grad()
    def update(self, module, step):
        """Move towards `module`'s weights (its buffers are copied as they are)."""
        share = 1.0 - self.decay_at(step)
        for average, trained in zip(self.module.parameters(), module.parameters()):
            average.lerp_(trained, share)
        for average, trained in zip(self.module.buffers(), module.buffers()):
            average.copy_(trained)
