"""The metrics that look through a trained network, as video GAN papers report them: LPIPS (Zhang
et al. 2018; AlexNet, as TecoGAN uses it), tLP (TecoGAN's temporal LPIPS: how far the generated
video's frame-to-frame change is from the target's), FVD (the Fréchet distance of video features;
here a Kinetics-400 S3D's, torchvision's) and KID (Bińkowski et al. 2018: the unbiased MMD of
Inception features, per frame). torchmetrics computes LPIPS (its wheel ships LPIPS's linear
layers), the Fréchet distance and KID's MMD; torch-fidelity builds the Inception.

No wheel ships the backbones' weights. Each is looked for as its own file name in --metric-weights
DIR when given, else in the torch hub cache ($TORCH_HOME/hub/checkpoints), where torch's own
download puts it when the machine is online; it is loaded with torch.load(weights_only=True). Where
none is reachable, one line says which file and where to put it.

    lpips = LpipsStream(frames=300, fps=25, device="cpu", weights=None); lpips.add(generated, target); lpips.result()
"""
import functools
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from metrics.frames import BLOCK_FRAMES, in_blocks, joined, on_device
from utils.errors import UserError

FVD_CLIP = 16  # frames per clip of FVD's video network (S3D pools time by 8: 16 frames is its shortest)
FVD_SIDE = 224  # the Kinetics-400 networks' input
KINETICS_MEAN, KINETICS_STD = (0.43216, 0.394666, 0.37645), (0.22803, 0.22145, 0.216989)


@dataclass(frozen=True)
class Backbone:
    file: str  # its file name, in the hub cache or --metric-weights
    url: str  # where torch's download takes it from
    used_by: str


BACKBONES = {
    "alexnet": Backbone("alexnet-owt-7be5be79.pth", "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth", "LPIPS and tLP"),
    "inception": Backbone("weights-inception-2015-12-05-6726825d.pth",
                          "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth",
                          "KID"),
    "s3d": Backbone("s3d-d76dad2f.pth", "https://download.pytorch.org/models/s3d-d76dad2f.pth", "FVD"),
}


def weights_path(backbone, folder=None):
    """The file of `backbone`'s weights: in `folder` when given, else in the torch hub cache, which
    torch's download fills when online. One UserError naming the file and where it is looked for."""
    spec = BACKBONES[backbone]
    if folder is not None:
        path = Path(folder) / spec.file
        if not path.is_file():
            raise UserError(path, f"not found: {spec.used_by} need {backbone}'s weights there ({spec.url})")
        return path
    path = Path(torch.hub.get_dir()) / "checkpoints" / spec.file
    if not path.is_file():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(spec.url, str(path), progress=False)
        except Exception as exc:  # noqa: BLE001 - offline, refused, or half-fetched: the same one line
            raise UserError(path, f"not found, and not downloaded ({type(exc).__name__}): {spec.used_by} need {backbone}'s "
                                  f"weights; put {spec.url} there, or pass --metric-weights DIR holding {spec.file}") from None
    return path


def state_dict(backbone, folder=None):
    path = weights_path(backbone, folder)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a damaged or foreign file: one line
        raise UserError(path, f"is not {backbone}'s weights as torch saves them ({type(exc).__name__})") from None


def loaded(network, backbone, folder):
    """`network` with `backbone`'s weights; a file whose tensors do not fit it is one line."""
    try:
        network.load_state_dict(state_dict(backbone, folder))
    except RuntimeError as exc:
        raise UserError(weights_path(backbone, folder), f"does not fit {backbone} ({str(exc).splitlines()[0][:120]})") from None
    return network


@functools.lru_cache(maxsize=None)  # one per folder and device in a process
def lpips_network(folder, device):
    """torchmetrics' LPIPS (AlexNet): its linear layers from torchmetrics' wheel, the AlexNet's from the weights file."""
    import torchvision
    from torchmetrics.functional.image.lpips import _LPIPS

    alexnet = loaded(torchvision.models.alexnet(weights=None), "alexnet", folder)
    network = _LPIPS(pretrained=True, net="alex", pnet_rand=True)  # pnet_rand: no download of its own
    for block in (network.net.slice1, network.net.slice2, network.net.slice3, network.net.slice4, network.net.slice5):
        for index, layer in block.named_children():
            layer.load_state_dict(alexnet.features[int(index)].state_dict())
    return network.eval().requires_grad_(False).to(device)


def lpips_distances(network, first, second, device):
    """LPIPS of each pair of uint8 frames (n, H, W, 3), as a float64 array (n,), BLOCK_FRAMES pairs at a time."""
    as_input = lambda frames: on_device(frames, device).permute(0, 3, 1, 2).float() / 127.5 - 1  # noqa: E731
    with torch.inference_mode():
        return np.concatenate([network(as_input(a), as_input(b)).reshape(-1).double().cpu().numpy()
                               for a, b in zip(in_blocks(first), in_blocks(second))])


class LpipsStream:
    """The mean LPIPS of generated frames against the target's, over a video fed in chunks."""

    def __init__(self, frames, fps, device="cpu", weights=None, memory=None):  # memory: its backbone takes what it takes
        self.network, self.device, self.values = lpips_network(weights, str(device)), device, []

    def add(self, generated, target):
        self.values.append(lpips_distances(self.network, generated, target, self.device))

    def result(self):
        values = np.concatenate(self.values)
        return float(values.mean()), values.tolist()


class TlpStream:
    """tLP (Chu et al. 2020): per frame pair, |LPIPS(g_t, g_t-1) - LPIPS(y_t, y_t-1)|, averaged: 0 when
    the generated video changes from frame to frame as perceptibly as the target does."""

    def __init__(self, frames, fps, device="cpu", weights=None, memory=None):  # memory: its backbone takes what it takes
        self.network, self.device, self.values, self.last = lpips_network(weights, str(device)), device, [], None

    def add(self, generated, target):
        if self.last is not None:
            generated, target = joined(self.last[0], generated), joined(self.last[1], target)
        if len(generated) > 1:
            made = lpips_distances(self.network, generated[1:], generated[:-1], self.device)
            real = lpips_distances(self.network, target[1:], target[:-1], self.device)
            self.values.append(np.abs(made - real))
        self.last = generated[-1:], target[-1:]

    def result(self):
        values = np.concatenate(self.values) if self.values else np.zeros(0)
        if not len(values):
            raise UserError("tlp", "needs at least two frames")
        return float(values.mean()), None


@functools.lru_cache(maxsize=None)
def inception_network(folder, device):
    """torch-fidelity's Inception v3 (the TensorFlow FID network) giving 2048 pooled features per frame.
    torch-fidelity loads its file without weights_only, so it is handed a copy of the tensors that
    torch.load(weights_only=True) read here, never the user's file."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    tensors = state_dict("inception", folder)
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / "inception.pth"
        torch.save(tensors, copy)
        try:
            network = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(copy))
        except RuntimeError as exc:
            raise UserError(weights_path("inception", folder), f"does not fit the Inception ({str(exc).splitlines()[0][:120]})") from None
    return network.to(device)


class FeatureStream:
    """Features of the generated and the target frames (or clips), kept until the end: what the
    distribution distances (KID, FVD) compare."""

    def __init__(self):
        self.made, self.real = [], []

    def features(self, generated, target):
        raise NotImplementedError

    block = BLOCK_FRAMES  # frames per features() call (FVD: a clip's)

    def add(self, generated, target):
        for made_frames, real_frames in zip(in_blocks(generated, self.block), in_blocks(target, self.block)):
            made, real = self.features(made_frames, real_frames)
            self.made.append(made)
            self.real.append(real)

    def gathered(self, least):
        made, real = torch.cat(self.made).double(), torch.cat(self.real).double()
        if len(made) < least:
            raise UserError(self.name, f"needs at least {least} {self.unit}, not {len(made)}")
        return made, real


class KidStream(FeatureStream):
    """KID: the unbiased squared MMD between the Inception features of the generated frames and the
    target's, with the cubic polynomial kernel (torchmetrics' poly_mmd), over every frame at once."""

    name, unit = "kid", "frames"

    def __init__(self, frames, fps, device="cpu", weights=None, memory=None):  # memory: its backbone takes what it takes
        super().__init__()
        self.network, self.device = inception_network(weights, str(device)), device

    def features(self, generated, target):
        as_input = lambda frames: on_device(frames, self.device).permute(0, 3, 1, 2)  # noqa: E731
        with torch.inference_mode():
            return tuple(self.network(as_input(frames))[0].cpu() for frames in (generated, target))

    def result(self):
        from torchmetrics.image.kid import poly_mmd

        made, real = self.gathered(least=2)
        return float(poly_mmd(real, made)), None


@functools.lru_cache(maxsize=None)
def video_network(folder, device):
    import torchvision

    return loaded(torchvision.models.video.s3d(weights=None), "s3d", folder).eval().requires_grad_(False).to(device)


class FvdStream(FeatureStream):
    """FVD: the Fréchet distance between Gaussians fitted to video features of the generated clips
    and of the target's (torchmetrics' formula), the clips being the video's consecutive FVD_CLIP
    frames, resized to 224x224. The features are a Kinetics-400 S3D's (torchvision), not the
    TensorFlow I3D of the original FVD: compare FVDs within vgan, not with papers."""

    name, unit = "fvd", f"clips of {FVD_CLIP} frames"
    block = FVD_CLIP  # one clip a call: one shape

    def __init__(self, frames, fps, device="cpu", weights=None, memory=None):  # memory: its backbone takes what it takes
        super().__init__()
        self.network, self.device, self.pending = video_network(weights, str(device)), device, None

    def add(self, generated, target):
        if self.pending is not None:
            generated, target = joined(self.pending[0], generated), joined(self.pending[1], target)
        whole = len(generated) // FVD_CLIP * FVD_CLIP
        if whole:
            super().add(generated[:whole], target[:whole])
        self.pending = generated[whole:], target[whole:]

    def features(self, generated, target):
        mean = torch.tensor(KINETICS_MEAN, device=self.device).view(1, 3, 1, 1, 1)
        std = torch.tensor(KINETICS_STD, device=self.device).view(1, 3, 1, 1, 1)

        def clips_of(frames):
            x = on_device(frames, self.device).permute(0, 3, 1, 2).float() / 255
            x = F.interpolate(x, size=(FVD_SIDE, FVD_SIDE), mode="bilinear", align_corners=False, antialias=True)
            x = x.reshape(-1, FVD_CLIP, 3, FVD_SIDE, FVD_SIDE).transpose(1, 2)
            return (x - mean) / std

        with torch.inference_mode():
            return tuple(self.network.avgpool(self.network.features(clips_of(frames))).flatten(1).cpu() for frames in (generated, target))

    def result(self):
        from torchmetrics.image.fid import _compute_fid

        made, real = self.gathered(least=2)
        return float(_compute_fid(made.mean(0), torch.cov(made.T), real.mean(0), torch.cov(real.T))), None


def in_windows(stream_class):
    """The windows form of a stream metric: uint8 windows (N, T, H, W, 3), consecutive held-out
    frames, fed in order (KID and FVD pool them; tLP's pairs then cross from one window to the next,
    as the frames do)."""
    def score(generated, target, fps, device="cpu", weights=None):
        stream = stream_class(generated.shape[0] * generated.shape[1], fps, device, weights)
        for made, real in zip(generated, target):
            stream.add(made, real)
        return stream.result()[0]
    return score


mean_lpips, mean_tlp, window_kid, window_fvd = (in_windows(c) for c in (LpipsStream, TlpStream, KidStream, FvdStream))
