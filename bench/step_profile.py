"""Where the default training step's time goes (the demo's and the guide's network: a (2+1)D U-Net
of depth 3 and 16 channels against a 16-channel PatchGAN, 64 x 64 clips of 9 frames in batches
of 5, dcgan + L1, the temporal loss at its default weight), in the way `--amp auto
--memory-format auto` picks here, and how near it comes to its own convolutions' rate: every
convolution the step runs (each shape, precision, layout, and the gradients it needs) timed alone,
forward and backward, as if nothing but convolutions took time. Used by bench/train.py, whose
ways of the other networks are StepWays too.

    way, seconds, ways = auto_way(slider, device, rounds=3)
    alone = convolutions_alone(conv_calls(way, slider), way)     # [(kind, seconds, GFLOP)]
    kinds, parts, seconds = profile_rows(way, slider, steps=4)   # the time by kind of work, and by part of the step
"""
import copy
import statistics
import time
from dataclasses import dataclass

import torch
from torch import nn

from cli.train_flags import default_flags
from commands.demo import NETWORK
from compute.choice import Compute
from compute.precision import amp_pays_here, autocast, grad_scaler
from networks import build_generator
from networks.discriminator import PatchDiscriminator3D
from torch.utils.flop_counter import FlopCounterMode
from training.step import LossWeights, Nets, NonFiniteGuard, gan_step
from utils.device import to_model_input

TEMPORAL = default_flags()["temporal"]  # train's default weight, on a flow of zeros (its cost does not depend on the values)


class StepWay:
    """A generator `g`, a discriminator `d` and their optimizers, computing in `compute`, stepped as
    training steps them: the real GAN step on batches of the slider, with the temporal loss at
    `temporal` on a flow of zeros."""

    def __init__(self, g, d, compute, device, temporal=0.0):
        layout = torch.channels_last_3d if compute.channels_last else torch.contiguous_format
        g, d = g.to(device, memory_format=layout), d.to(device, memory_format=layout)
        self.nets = Nets.around(g, d, grad_scaler(device, compute.amp), lr=2e-4)
        self.guard, self.compute, self.device, self.temporal = NonFiniteGuard(device), compute, device, temporal

    def batch(self, slider, number, epoch=0):
        """(x, y, motion) of the slider's batch `number`: on the device, in the way's layout."""
        with torch.profiler.record_function("slider"):
            a, b = slider.gather(slider.epoch_batches(epoch)[number % len(slider)], epoch, number)
            x, y = (to_model_input(clips, self.device, self.compute.channels_last) for clips in (a, b))
            n, _, t, h, w = y.shape
            motion = (torch.zeros(n, 2, t, h, w, device=self.device), torch.ones(n, 1, t, h, w, device=self.device)) if self.temporal else None
        return x, y, motion

    def step(self, slider, number, epoch=0, amp=None):
        x, y, motion = self.batch(slider, number, epoch)
        gan_step(self.nets, x, y, LossWeights(temporal=self.temporal), self.device, self.compute.amp if amp is None else amp,
                 self.guard, motion=motion)

    def seconds_per_step(self, slider, steps, epoch):
        started = time.perf_counter()
        for number in range(steps):
            self.step(slider, number, epoch)
        return (time.perf_counter() - started) / steps

def step_flops(way, slider):
    """The FLOPs of one step of `way` (torch's counter: its convolutions and matrix products)."""
    with FlopCounterMode(display=False) as counter:
        way.step(slider, 0, amp=False)  # the same FLOPs in every precision
    return counter.get_total_flops()


def default_way(compute, device):
    """The default step (the demo's networks, the temporal loss on), computing in `compute`."""
    torch.manual_seed(0)
    g = build_generator("unet", channels=NETWORK["channels"], depth=NETWORK["depth"], conv=NETWORK["conv"], residual=True)
    d = PatchDiscriminator3D(channels=NETWORK["d_channels"], layers=3, spectral_norm=NETWORK["spectral_norm"], conv=NETWORK["conv"])
    return StepWay(g, d, compute, device, temporal=TEMPORAL)


def auto_way(slider, device, rounds=3, steps=2):
    """(the default step's StepWay in the precision and layout auto picks here, its seconds per step;
    {way name: seconds}): every way timed in alternating rounds, the fastest (median) taken, as the
    compute choice does."""
    amps = [False, True] if amp_pays_here(device) else [False]
    ways = [default_way(Compute(amp, channels_last), device) for amp in amps for channels_last in (False, True)]
    for way in ways:
        way.step(slider, 0)  # warm-up: oneDNN picks its kernels on first use
    times = {way.compute.name: [] for way in ways}
    for round_number in range(rounds):
        for way in ways:
            times[way.compute.name].append(way.seconds_per_step(slider, steps, round_number + 1))
    seconds = {name: statistics.median(values) for name, values in times.items()}
    best = min(ways, key=lambda way: seconds[way.compute.name])
    return best, seconds[best.compute.name], seconds


@dataclass(frozen=True)
class ConvCall:
    module: nn.Module
    shape: tuple
    dtype: torch.dtype
    channels_last: bool
    input_grad: bool  # the step needs the gradient of its input (all but the first layer of G)
    weight_grad: bool  # and of its weights (not D's, in G's adversarial pass)

    @property
    def kind(self):
        kernel = tuple(self.module.kernel_size)
        return "x".join(map(str, kernel)) + (" up" if isinstance(self.module, nn.ConvTranspose3d) else "")

    def flops(self, output_elements):
        """Multiply-adds x 2 of the forward pass, and of each gradient the backward pass computes."""
        m = self.module
        per_output = 2 * m.in_channels * m.kernel_size[0] * m.kernel_size[1] * m.kernel_size[2] // m.groups
        forward = per_output * output_elements * (m.out_channels if not isinstance(m, nn.ConvTranspose3d) else 1)
        if isinstance(m, nn.ConvTranspose3d):  # a transposed conv's work is counted on its input
            forward = 2 * m.in_channels * m.out_channels * m.kernel_size[0] * m.kernel_size[1] * m.kernel_size[2] * \
                (self.shape[0] * self.shape[2] * self.shape[3] * self.shape[4]) // m.groups
        return forward * (1 + self.input_grad + self.weight_grad)


def conv_calls(way, slider):
    """Every convolution one step of `way` runs, as it runs it: hooks note each call's input."""
    calls, hooks = [], []

    def note(module, inputs):
        x = inputs[0]
        calls.append(ConvCall(module, tuple(x.shape), x.dtype, x.is_contiguous(memory_format=torch.channels_last_3d) and
                              not x.is_contiguous(), x.requires_grad, module.weight.requires_grad))

    for net in (way.nets.raw_generator, way.nets.raw_discriminator):
        for module in net.modules():
            if isinstance(module, (nn.Conv3d, nn.ConvTranspose3d)):
                hooks.append(module.register_forward_pre_hook(note))
    try:
        way.step(slider, 0)
    finally:
        for hook in hooks:
            hook.remove()
    return calls


def convolutions_alone(calls, way, repeats=5):
    """[(kind, seconds, GFLOP)] of each call in `calls` timed alone, forward and backward, in the
    step's precision (under the same autocast) and layout, computing the gradients the step computes."""
    results = []
    for call in calls:
        module = copy.deepcopy(call.module).requires_grad_(call.weight_grad)
        layout = torch.channels_last_3d if call.channels_last else torch.contiguous_format
        x = torch.randn(call.shape, dtype=call.dtype, device=way.device).contiguous(memory_format=layout).requires_grad_(call.input_grad)
        with autocast(way.device, way.compute.amp):
            out = module(x)
        grad = torch.randn_like(out)
        times = []
        for _ in range(repeats + 1):
            started = time.perf_counter()
            with autocast(way.device, way.compute.amp):
                out = module(x)
            if call.input_grad or call.weight_grad:
                out.backward(grad)
            times.append(time.perf_counter() - started)
        results.append((call.kind, statistics.median(times[1:]), call.flops(out[:, 0].numel()) / 1e9))
    return results


# The kinds of work a step's time is shown by: (row, the operators it holds). An operator's time
# counts for the innermost row it, or an operator it runs inside, belongs to.
CONV_OPS = ("aten::convolution", "aten::convolution_backward")
NORM_OPS = ("aten::group_norm", "aten::native_group_norm", "aten::native_group_norm_backward")
ACTIVATION_OPS = ("aten::relu", "aten::relu_", "aten::threshold_backward", "aten::leaky_relu", "aten::leaky_relu_",
                  "aten::leaky_relu_backward", "aten::tanh", "aten::tanh_backward", "aten::sigmoid", "aten::sigmoid_backward")
POOL_OPS = ("aten::max_pool3d_with_indices", "aten::max_pool3d_with_indices_backward")
SCOPES = ("slider", "G forward", "D update", "G losses", "G update")


def work_kind(event, shapes):
    """The row of the profile an operator's own time goes to."""
    names = []
    while event is not None:
        names.append(event)
        event = event.cpu_parent
    for e in names:
        if e.name in CONV_OPS:
            weight = shapes.get(e.id)
            kernel = "x".join(map(str, weight[2:])) if weight and len(weight) == 5 else "?"
            return f"convolution {kernel}"
        if e.name in NORM_OPS:
            return "normalisation"
        if e.name in ACTIVATION_OPS:
            return "activations"
        if e.name in POOL_OPS:
            return "max pooling"
        if e.name.startswith("Optimizer.step") or e.name == "aten::_fused_adam_":
            return "optimiser"
    scope = next((e.name for e in names if e.name in SCOPES), None)
    named = {"slider": "slider", "G losses": "losses (L1, adversarial, temporal): the rest", None: "outside the step"}
    return named.get(scope, f"other operators in {scope} (copies, concatenations, autograd)")


def profile_rows(way, slider, steps=4):
    """({kind of work: seconds per step}, {part of the step: seconds per step}, the step's seconds)
    of `steps` steps of `way` under torch.profiler."""
    way.step(slider, 0)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], record_shapes=True) as prof:
        started = time.perf_counter()
        for number in range(steps):
            way.step(slider, number + 1)
        seconds = (time.perf_counter() - started) / steps
    events = prof.events()
    shapes = {e.id: (e.input_shapes[1] if e.name == "aten::convolution" else e.input_shapes[2] if len(e.input_shapes) > 2 else None)
              for e in events if e.name in CONV_OPS and e.input_shapes}
    kinds, parts = {}, {}
    for event in events:
        if event.self_cpu_time_total > 0:
            share = event.self_cpu_time_total / 1e6 / steps
            kind = work_kind(event, shapes)
            kinds[kind] = kinds.get(kind, 0.0) + share
            part = "optimiser" if kind == "optimiser" else scope_of(event)
            parts[part] = parts.get(part, 0.0) + share
    by_size = lambda table: dict(sorted(table.items(), key=lambda item: -item[1]))  # noqa: E731
    return by_size(kinds), by_size(parts), seconds


def scope_of(event):
    while event is not None and event.name not in SCOPES:
        event = event.cpu_parent
    return event.name if event is not None else "outside the step"
