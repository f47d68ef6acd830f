"""Generators, the discriminator and the GAN losses."""
import pytest
import torch

from cli.train_flags import CONVS as CONV_CHOICES
from cli.train_flags import TRAIN_FLAGS
from networks import GENERATORS, build_generator
from networks.discriminator import PatchDiscriminator3D
from networks.layers import CONVS, SizeError, count_parameters
from networks.layers import InstanceNorm3d, conv3d
from networks.losses import discriminator_loss, generator_loss, reconstruction_losses

SMALL = {"unet": {"channels": 4, "depth": 2}, "resnet": {"channels": 4, "blocks": 2, "downsample": 2}}


def test_train_offers_exactly_the_registered_networks_and_losses():
    import argparse

    from networks.registry import ADVERSARIAL_LOSSES as LOSSES

    network = next(flag for flag in TRAIN_FLAGS if flag.dest == "network")
    assert all(network.options["type"](name) == name for name in GENERATORS)  # and a plug-in's FILE.py:Class
    assert network.options["type"]("my_nets.py:TinyUNet") == "my_nets.py:TinyUNet"
    with pytest.raises(argparse.ArgumentTypeError, match="neither a built-in"):
        network.options["type"]("tinyunet")
    gan_loss = next(flag for flag in TRAIN_FLAGS if flag.dest == "gan_loss")
    assert set(gan_loss.options["choices"]) == set(LOSSES)
    assert set(CONV_CHOICES) == set(CONVS)


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_a_declaration_read_without_torch_is_the_class_s_own(name):
    """networks/declared.py reads FLAGS and the __init__ defaults from the source; they match the class."""
    import inspect

    from networks import generator_class
    from networks.declared import constructor_defaults, declared

    cls = generator_class(name)
    signature = {k: p.default for k, p in inspect.signature(cls.__init__).parameters.items() if p.default is not p.empty}
    assert constructor_defaults(name) == signature
    assert [(h.argument, h.flag, h.help) for h in declared(name)] == [(a, spec[0], spec[1]) for a, spec in cls.FLAGS.items()]
    flags = {flag.names[-1]: flag for flag in TRAIN_FLAGS}
    for hyper in declared(name):  # each is a train flag with the constructor's default
        assert flags[hyper.flag].options.get("default", False) == signature[hyper.argument]


@pytest.mark.parametrize("conv", CONVS)
@pytest.mark.parametrize("name", sorted(GENERATORS))
@pytest.mark.parametrize("t,h,w", [(9, 32, 32), (4, 16, 48), (1, 8, 8), (7, 24, 40)])
def test_generator_maps_a_clip_to_a_clip_of_the_same_shape(name, t, h, w, conv):
    model = build_generator(name, conv=conv, **SMALL.get(name, {}))
    x = torch.rand(2, 3, t, h, w) * 2 - 1
    y = model(x)
    assert y.shape == x.shape
    assert y.abs().max() <= 1  # tanh output


@pytest.mark.parametrize("t", [9, 8, 5, 1])
def test_unet_pools_over_time_with_any_clip_length(t):
    model = build_generator("unet", channels=4, depth=3, temporal_pool=True)
    assert model(torch.zeros(1, 3, t, 16, 16)).shape == (1, 3, t, 16, 16)


def test_channels_double_per_level():
    unet = build_generator("unet", channels=8, depth=3)
    assert [block[0].out_channels for block in unet.encoder] == [8, 16, 32, 64]
    resnet = build_generator("resnet", channels=8, blocks=1, downsample=2)
    convs = [m for m in resnet.net if isinstance(m, torch.nn.Conv3d)]
    assert [c.out_channels for c in convs[:3]] == [8, 16, 32]
    disc = PatchDiscriminator3D(channels=8, layers=3)
    assert [m.out_channels for m in disc.net if isinstance(m, torch.nn.Conv3d)] == [8, 16, 32, 1]


def test_2plus1d_factorises_a_3x3x3_convolution_into_spatial_then_temporal_at_equal_width():
    full, factorised = conv3d(16, 32, 3, padding=1, bias=False), conv3d(16, 32, 3, padding=1, bias=False, conv="2plus1d")
    assert [tuple(m.kernel_size) for m in factorised] == [(1, 3, 3), (3, 1, 1)] and factorised[0].out_channels == 32
    assert count_parameters(full) == 27 * 16 * 32 and count_parameters(factorised) == 9 * 16 * 32 + 3 * 32 * 32  # 2.25x fewer at C_in = C_out
    x = torch.randn(1, 16, 5, 8, 8)
    with torch.no_grad():
        factorised[1].weight.zero_()
        factorised[1].weight[:, :, 1] = torch.eye(32)[:, :, None, None]  # the temporal part passes the middle frame through
        torch.testing.assert_close(factorised(x), torch.nn.functional.conv3d(x, factorised[0].weight, padding=(0, 1, 1)))
    flat = conv3d(16, 32, (1, 3, 3), padding=(0, 1, 1), conv="2plus1d")
    assert isinstance(flat, torch.nn.Conv3d)  # nothing to factorise in a kernel flat in time


def test_squeeze_excitation_adds_parameters_and_keeps_shape():
    plain = build_generator("resnet", channels=8, blocks=2, downsample=1)
    excited = build_generator("resnet", channels=8, blocks=2, downsample=1, squeeze_excite=True)
    assert sum(p.numel() for p in excited.parameters()) > sum(p.numel() for p in plain.parameters())
    assert excited(torch.zeros(1, 3, 3, 8, 8)).shape == (1, 3, 3, 8, 8)


@pytest.mark.parametrize("name,multiple", [("unet", 4), ("resnet", 4)])
def test_size_the_network_cannot_take_names_size_and_multiple(name, multiple):
    model = build_generator(name, **SMALL.get(name, {}))
    with pytest.raises(SizeError, match=rf"frames of 30x20 .*multiples of {multiple}"):
        model(torch.zeros(1, 3, 3, 20, 30))


@pytest.mark.parametrize("conv", CONVS)
@pytest.mark.parametrize("spectral", [False, True])
@pytest.mark.parametrize("t,h,w", [(9, 64, 64), (4, 32, 48)])
def test_discriminator_gives_patch_logits(spectral, t, h, w, conv):
    disc = PatchDiscriminator3D(channels=4, layers=3, spectral_norm=spectral, conv=conv)
    a = torch.zeros(2, 3, t, h, w)
    logits = disc(a, a)
    assert logits.shape == (2, 1, t, h // 8 - 1, w // 8 - 1)


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last_3d])
def test_instance_norm_matches_torch_and_keeps_the_layout(layout):
    x = (torch.randn(2, 6, 3, 5, 7) * 3 + 1).contiguous(memory_format=layout).requires_grad_()
    ours, reference = InstanceNorm3d(6), torch.nn.InstanceNorm3d(6, affine=True)
    with torch.no_grad():
        ours.weight.uniform_(0.5, 1.5), ours.bias.uniform_(-1, 1)
    reference.load_state_dict(ours.state_dict())  # the same parameters under the same names
    y = ours(x)
    torch.testing.assert_close(y, reference(x), atol=1e-5, rtol=1e-5)
    assert y.is_contiguous(memory_format=layout)
    (grad_ours,) = torch.autograd.grad(y.square().sum(), x)
    (grad_reference,) = torch.autograd.grad(reference(x).square().sum(), x)
    torch.testing.assert_close(grad_ours, grad_reference, atol=1e-4, rtol=1e-4)


def test_dcgan_initialisation():
    model = build_generator("unet", channels=16, depth=2)
    weights = torch.cat([m.weight.flatten() for m in model.modules() if isinstance(m, torch.nn.Conv3d)])
    assert abs(weights.std().item() - 0.02) < 0.002 and abs(weights.mean().item()) < 0.002
    scales = torch.cat([m.weight for m in model.modules() if isinstance(m, InstanceNorm3d)])
    assert abs(scales.mean().item() - 1) < 0.01


@pytest.mark.parametrize("kind", ["dcgan", "lsgan", "hinge"])
def test_discriminator_loss_is_lower_for_correct_labels(kind):
    confident = torch.full((4, 1, 3, 5, 5), 3.0)
    right = sum(discriminator_loss(kind, confident, -confident))  # real scored real, fake scored fake
    wrong = sum(discriminator_loss(kind, -confident, confident))
    assert right < wrong


@pytest.mark.parametrize("kind", ["dcgan", "lsgan", "hinge"])
def test_generator_loss_gradient_raises_the_fake_score(kind):
    logits = torch.zeros(4, 1, 3, 5, 5, requires_grad=True)
    generator_loss(kind, logits).backward()
    assert (logits.grad < 0).all()  # a descent step moves the score towards "real"
    with torch.no_grad():
        assert generator_loss(kind, logits + 0.5) < generator_loss(kind, logits)


def test_reconstruction_losses():
    fake, target = torch.zeros(1, 3, 2, 4, 4), torch.full((1, 3, 2, 4, 4), 0.5)
    l1, mse = reconstruction_losses(fake, target)
    assert l1.item() == pytest.approx(0.5) and mse.item() == pytest.approx(0.25)


NEW_BUILT_IN = '''
from networks.layers import Generator


class Tiny3D(Generator):
    FLAGS = {"channels": ("--channels", "generator channels at the first level; they double per level"),
             "kernel": ("--kernel", "temporal kernel width")}

    def __init__(self, channels=16, kernel=5, conv="3d"):
        super().__init__()
'''

CHECK_NEW_BUILT_IN = '''
from networks.registry import GENERATORS, NetworkEntry
GENERATORS["tiny3d"] = NetworkEntry("a tiny 3D generator", "tiny_nets:Tiny3D")   # the registry line
import argparse
from cli.train_flags import TRAIN_FLAGS, add_train_flags, default_flags, unshown_flags
from experiments.runs import summarize
from training.from_flags import architecture, generator_args
flags = {flag.names[-1]: flag for flag in TRAIN_FLAGS}
assert flags["--kernel"].options["default"] == 5 and flags["--kernel"].group == "generator"        # the CLI
config = {**default_flags(), "network": "tiny3d", "kernel": 7}
assert generator_args(config) == {"channels": 16, "kernel": 7, "conv": "3d", "residual": False}     # its arguments
assert {"network", "kernel", "channels", "conv", "residual"} <= set(architecture(config))           # what --resume keeps
assert "kernel" not in unshown_flags()                                                              # what runs shows
print("ok")
'''


def test_a_new_built_in_network_is_one_file_and_one_registry_line(tmp_path):
    """Its flags, its constructor's arguments, the resume rules and `runs` all follow from its declaration."""
    import subprocess
    import sys

    from conftest import REPO

    (tmp_path / "tiny_nets.py").write_text(NEW_BUILT_IN)
    done = subprocess.run([sys.executable, "-c", CHECK_NEW_BUILT_IN], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**__import__("os").environ, "PYTHONPATH": f"{tmp_path}:{REPO}"})
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
