"""Building blocks shared by the 3D generators and the discriminator (torch only).

Tensors are (N, C, T, H, W). Example: ConvBlock(3, 16)(torch.zeros(1, 3, 9, 64, 64)).shape == (1, 16, 9, 64, 64)
"""
import torch
from torch import nn
from torch.nn import functional as F


class SizeError(ValueError):
    """A clip whose size a network cannot take; the message names the size and the multiple needed."""


def size_multiple(generator):
    """What a generator's frame sides must be multiples of: its `size_multiple` (2 to the number of
    halvings), or 1 for a network from the user's file that does not say."""
    return int(getattr(generator, "size_multiple", 1))


def name_of(generator):
    """A generator in a few words: a built-in's own description, or a plug-in's class name."""
    return str(generator) if isinstance(generator, Generator) else type(generator).__name__


def check_size(generator, height, width):
    multiple = size_multiple(generator)
    if height % multiple or width % multiple:
        raise SizeError(f"frames of {width}x{height} cannot go through {name_of(generator)}: width and height must be "
                        f"multiples of {multiple}")


def output_layer(generator):
    """The layer that makes a generator's output, which a residual generator starts at zero: its
    `output_layer()` when it has one, else its last convolution."""
    if hasattr(generator, "output_layer"):
        return generator.output_layer()
    convolutions = [m for m in generator.modules() if isinstance(m, (nn.Conv3d, nn.ConvTranspose3d, nn.Conv2d))]
    if not convolutions:
        raise SizeError(f"{name_of(generator)} has no convolution to start at zero, so --residual cannot make it the identity")
    return convolutions[-1]


def clip_mismatch(generator, clip):
    """How `generator` breaks the promise every generator makes, mapping a clip (N, 3, T, H, W) in
    [-1, 1] to one of the same shape and range; None when it keeps it. One forward pass, with the
    random state put back after it (a network that draws random numbers leaves the run's seed as it was)."""
    with torch.random.fork_rng(devices=[clip.device] if clip.device.type == "cuda" else []), torch.no_grad():
        out = generator(clip)
    if not isinstance(out, torch.Tensor) or out.shape != clip.shape:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        return f"returns {shape} for a clip of {tuple(clip.shape)}; a generator returns a clip of the shape it is given"
    low, high = float(out.min()), float(out.max())
    if not (-1.0 - 1e-4 <= low and high <= 1.0 + 1e-4):
        return f"returns values from {low:.3g} to {high:.3g}; a generator returns a clip in [-1, 1] (end it with a tanh)"
    return None


class Generator(nn.Module):
    """Base of the built-in generators: they map (N, 3, T, H, W) to the same shape, and H and W must
    be multiples of `size_multiple` (2 to the number of halvings). A network from the user's own
    file need not derive from it: vgan asks any generator through the functions above."""

    size_multiple = 1

    def check_clip(self, x):
        """Refuse a clip (N, C, T, H, W) whose frame size this generator cannot take. Nothing to check
        in a torch.fx trace (tiled inference runs it layer by layer), where x is a Proxy, with no shape."""
        if not isinstance(x, torch.fx.Proxy):
            check_size(self, *x.shape[-2:])

    def __str__(self):
        return type(self).__name__


class Residual(Generator):
    """A generator that predicts a correction to its input: output = clamp(input + body(input), -1, 1),
    a global skip around any registered generator (whose tanh output bounds the correction). The
    body's output layer starts at zero, so the untrained model is exactly the identity."""

    def __init__(self, body):
        super().__init__()
        self.body = body
        layer = output_layer(body)
        nn.init.zeros_(layer.weight)
        if layer.bias is not None:
            nn.init.zeros_(layer.bias)

    @property
    def size_multiple(self):
        return size_multiple(self.body)

    def output_layer(self):
        return output_layer(self.body)

    def __str__(self):
        return f"residual {name_of(self.body)}"

    def forward(self, x):  # (N, C, T, H, W) in [-1, 1]
        return (x + self.body(x)).clamp(-1.0, 1.0)


STATISTICS_DIMS = (2, 3, 4)  # an instance norm's statistics: per clip and channel, over (T, H, W)


def wide(x):
    """x in float32, or as it is when it is wider."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def normalised(x, mean, rstd, weight, bias):
    """(x - mean) * rstd * weight + bias in x's dtype, with the arithmetic in float32, as one pass
    over x: x * scale + shift, with scale and shift per clip and channel (as F.group_norm computes it
    on a CPU). Elementwise, so a channels_last_3d x stays channels_last_3d."""
    scale = rstd * weight.view(1, -1, 1, 1, 1)
    shift = bias.view(1, -1, 1, 1, 1) - mean * scale
    return torch.addcmul(shift, x, scale).to(x.dtype)


class _InstanceNorm(torch.autograd.Function):
    """Instance norm by elementwise arithmetic and reductions, forward and backward, so that it keeps
    its input's layout and dtype. On CUDA, F.group_norm copies a channels_last_3d input to contiguous
    (and back, at the next convolution: twice per norm layer), and autocast runs it in float32 and
    returns float32. Saves only the input and the per-channel statistics for the backward pass."""

    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        var, mean = torch.var_mean(wide(x), dim=STATISTICS_DIMS, keepdim=True, correction=0)
        rstd = torch.rsqrt(var + eps)
        ctx.save_for_backward(x, mean, rstd, weight)
        return normalised(x, mean, rstd, weight, bias)

    @staticmethod
    def backward(ctx, grad):
        x, mean, rstd, weight = ctx.saved_tensors
        grad = wide(grad)
        xhat = (x - mean) * rstd  # float32 (or wider)
        g = grad * weight.view(1, -1, 1, 1, 1)
        dx = rstd * (g - g.mean(STATISTICS_DIMS, keepdim=True) - xhat * (g * xhat).mean(STATISTICS_DIMS, keepdim=True))
        dweight = (grad * xhat).sum((0, *STATISTICS_DIMS))
        return dx.to(x.dtype), dweight.to(weight.dtype), grad.sum((0, *STATISTICS_DIMS)).to(weight.dtype), None


def group_norm_keeps_layout(x):
    """Whether F.group_norm keeps a channels_last_3d input in that layout and autocast's dtype:
    on a CPU it does (and is faster there); on CUDA it does neither."""
    return x.device.type == "cpu"


class InstanceNorm3d(nn.Module):
    """Instance norm with a learned scale and shift per channel: no batch statistics, so train and
    eval behave alike and DDP needs no syncing. On a CPU computed as a group norm with one group per
    channel, which keeps a channels_last_3d input in that layout (nn.InstanceNorm3d copies it to
    contiguous and back) and is faster in either layout; elsewhere as _InstanceNorm, which keeps both
    layout and dtype. Its state dict is nn.InstanceNorm3d(affine=True)'s.

    For inference in tiles, whose own statistics are not the whole frame's: with `shared` set to
    (mean, var), broadcastable to (N, C, 1, 1, 1), those normalise instead of the input's own."""

    def __init__(self, channels, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.shared = None

    def forward(self, x):  # (N, C, T, H, W)
        if self.shared is not None:
            mean, var = self.shared
            return normalised(x, mean, torch.rsqrt(var + self.eps), self.weight, self.bias)
        if group_norm_keeps_layout(x):
            return F.group_norm(x, x.shape[1], self.weight, self.bias, self.eps)
        return _InstanceNorm.apply(x, self.weight, self.bias, self.eps)


def norm3d(channels):
    return InstanceNorm3d(channels)


CONVS = ("3d", "2plus1d")


def _triple(value):
    return tuple(value) if isinstance(value, (tuple, list)) else (value,) * 3


def conv3d(in_channels, out_channels, kernel, stride=1, padding=0, bias=True, conv="3d", transposed=False,
           wrap=lambda layer: layer):
    """A 3D convolution (transposed: an up-convolution), or with conv="2plus1d" the same factorised
    into a spatial (1, k, k) convolution and a temporal (k, 1, 1) one at the output's width (Tran et
    al. 2018, R(2+1)D, without the nonlinearity between): for a 3x3x3 kernel 9 + 3 instead of 27
    multiplies per input and output channel. Kernels flat in time or in space, and up-convolutions
    in time, stay whole. `wrap` is applied to every convolution (spectral norm)."""
    (kt, kh, kw), (st, sh, sw), (pt, ph, pw) = _triple(kernel), _triple(stride), _triple(padding)
    spatial_type = nn.ConvTranspose3d if transposed else nn.Conv3d
    if conv == "3d" or kt == 1 or (kh, kw) == (1, 1) or (transposed and st != 1):
        return wrap(spatial_type(in_channels, out_channels, (kt, kh, kw), (st, sh, sw), (pt, ph, pw), bias=bias))
    if conv != "2plus1d":
        raise ValueError(f"conv must be one of {', '.join(CONVS)}, not {conv!r}")
    return nn.Sequential(wrap(spatial_type(in_channels, out_channels, (1, kh, kw), (1, sh, sw), (0, ph, pw), bias=False)),
                         wrap(nn.Conv3d(out_channels, out_channels, (kt, 1, 1), (st, 1, 1), (pt, 0, 0), bias=bias)))


class ConvBlock(nn.Sequential):
    """Two 3x3x3 convolutions (or their 2+1D factorisations), each followed by instance norm and ReLU."""

    def __init__(self, in_channels, out_channels, conv="3d"):
        super().__init__(
            conv3d(in_channels, out_channels, 3, padding=1, bias=False, conv=conv), norm3d(out_channels), nn.ReLU(inplace=True),
            conv3d(out_channels, out_channels, 3, padding=1, bias=False, conv=conv), norm3d(out_channels), nn.ReLU(inplace=True),
        )


class SqueezeExcite3d(nn.Module):
    """Channel attention (Hu et al. 2018): scale each channel by a gate computed from its global mean.
    For inference in tiles: with `shared` set to (mean, var) of the whole frame, broadcastable to
    (N, C, 1, 1, 1), the gate is computed from that mean instead of the input's own."""

    def __init__(self, channels, reduction=8):
        super().__init__()
        hidden = max(1, channels // reduction)
        self.gate = nn.Sequential(nn.AdaptiveAvgPool3d(1), nn.Conv3d(channels, hidden, 1), nn.ReLU(inplace=True),
                                  nn.Conv3d(hidden, channels, 1), nn.Sigmoid())
        self.shared = None

    def forward(self, x):
        if self.shared is not None:
            mean = self.shared[0].expand(x.shape[0], -1, 1, 1, 1).to(x.dtype)
            return x * self.gate[1:](mean)
        return x * self.gate(x)


def dcgan_init(module):
    """DCGAN initialisation: conv weights ~ N(0, 0.02), norm scales ~ N(1, 0.02), biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv3d, nn.ConvTranspose3d)):
            weight = getattr(m, "weight_orig", m.weight)  # the raw weight under spectral norm
            nn.init.normal_(weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, InstanceNorm3d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
    return module


def count_parameters(module):
    return sum(p.numel() for p in module.parameters())

