"""The flags of the commands that run a trained generator over frames (compare, evaluate): where and
how it computes, and the memory it may take.

    add_inference_flags(parser)     # --device --amp --memory-format --tile --tile-overlap --max-memory --quiet --weights --direction,
                                    # --metrics --metric-weights --network-source --allow-changed-network
"""
from cli.argtypes import byte_size, frame_size, name_list, non_negative_int
from cli.train_flags import AMP_OPTIONS, MEMORY_FORMAT_OPTIONS
from metrics import requested_metrics


def add_inference_flags(parser):
    group = parser.add_argument_group("computing")
    group.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="auto picks CUDA when present")
    group.add_argument("--amp", **AMP_OPTIONS)
    group.add_argument("--memory-format", **MEMORY_FORMAT_OPTIONS)
    group.add_argument("--max-memory", type=byte_size,
                       help="memory the generator may take, e.g. 8G (default: half of what is free now, RAM or GPU); frames "
                            "that do not fit run in tiles")
    group.add_argument("--tile", type=frame_size, help="run frames in tiles of SIDE or WIDTHxHEIGHT pixels (default: chosen to fit --max-memory)")
    group.add_argument("--tile-overlap", type=non_negative_int,
                       help="pixels that neighbouring tiles share: each keeps its middle and half of this is context "
                            "around it (default: twice the network's receptive radius, measured: no seams)")
    group.add_argument("--quiet", action="store_true", help="no progress while it works")
    group.add_argument("--weights", choices=["average", "trained"], default="average",
                       help="for a run trained with --ema: its average of the weights, or the trained weights themselves")
    group.add_argument("--direction", choices=["AtoB", "BtoA"], default="AtoB",
                       help="for a model trained unpaired (--mode cycle or recycle): which way it translates; the "
                            "generator the other way brings the translation back, to score the round trip")
    scores = parser.add_argument_group("perceptual scores")
    scores.add_argument("--metrics", type=name_list(requested_metrics()), default=[], metavar="NAMES",
                        help="scores to add beside PSNR, SSIM and the temporal ones, comma-separated: "
                             + "; ".join(f"{name}: {metric.label}, {metric.cost}" for name, metric in requested_metrics().items())
                             + " (docs/metrics.md says what each costs and needs)")
    scores.add_argument("--metric-weights", metavar="DIR",
                        help="a folder holding the backbone weights files LPIPS, FVD and KID load (default: the torch hub "
                             "cache, $TORCH_HOME/hub/checkpoints, filled by the libraries' own download when online)")
    plugin = parser.add_argument_group("a generator from your own file")
    plugin.add_argument("--network-source", metavar="PATH",
                        help="where the generator's file is now, if it moved since training (its SHA-256 must still match) "
                             "(default: where it was)")
    plugin.add_argument("--allow-changed-network", action="store_true",
                        help="use the generator's file although it changed since training (with a warning)")
