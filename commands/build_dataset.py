"""Build a dataset as uint8 arrays plus meta.json: paired (input clip A -> target clip B), or unpaired.

From two aligned videos (repeat --a/--b for several clips, each one segment):
    python main.py build-dataset --a videos/a.mp4 --b videos/b.mp4 -o data/ab --size 64
From two folders of sequences, one subfolder of frames per sequence matched by name (REDS, Vimeo-90K,
DAVIS), or one folder whose sequences each hold two folders of frames (GoPro's blur/ and sharp/):
    python main.py build-dataset --a REDS/train_blur --b REDS/train_sharp -o data/reds --size 128
    python main.py build-dataset --a GOPRO_Large/train --b GOPRO_Large/train --parts blur,sharp -o data/gopro
A paired dataset also stores its target's optical flow, for train's temporal loss; --no-flow leaves it
out (train then leaves that loss off), and --add-flow DATA adds it to a dataset built without it.
From footage with no aligned counterpart (each video, frame folder or sequence a segment of its side;
the sides need not match in length or content), for train --mode cycle or recycle:
    python main.py build-dataset --unpaired --a videos/day*.mp4 --b videos/night*.mp4 -o data/day_night
From one video with a derived input (gray, edges, blur, lowres, noise, compress:CRF) or target (future:K):
    python main.py build-dataset --video videos/in.mp4 --pair gray -o data/in_gray
or from several, each one segment:
    python main.py build-dataset --video videos/natural/*.mp4 --pair blur -o data/natural_blur
Test footage, which no run trains or validates on and only `verdict` reads: whole videos (--test; for
two aligned videos or an unpaired dataset's sides, --test-a/--test-b), or whole shots of the footage
(--test-shots N, found by ffmpeg's scene score); or added later to a built dataset (--add-test DATA):
    python main.py build-dataset --video train/*.mp4 --pair blur --test unseen/*.mp4 -o data/blur
    python main.py build-dataset --video film.mp4 --pair blur --test-shots 3 -o data/film_blur
"""
import argparse
from pathlib import Path

from cli.argtypes import fraction, frame_size, non_negative_int, positive_float
from utils.errors import UsageError

HELP = "turn videos or frame folders into a paired (or --unpaired) training set"
PAIRS_HELP = ("how A is made from the video: gray, edges, blur, lowres, noise, compress:CRF (re-encoded with libx264 "
              "at that CRF, e.g. compress:40), or future:K (A = frame t, B = frame t+K) (default: none; needed with --video)")


def parts_pair(text):
    names = [name.strip() for name in text.split(",")]
    if len(names) != 2 or not all(names):
        raise argparse.ArgumentTypeError(f"{text!r} is not A_NAME,B_NAME (e.g. blur,sharp)")
    return tuple(names)


def add_arguments(parser):
    parser.add_argument("--a", action="extend", nargs="+", default=[], metavar="A",
                        help="input videos or frame folders (repeat with --b for more clips; with --unpaired, side A's footage)")
    parser.add_argument("--b", action="extend", nargs="+", default=[], metavar="B",
                        help="target videos or frame folders, aligned with the --a in the same place (with --unpaired, "
                             "side B's footage, of any length)")
    parser.add_argument("--unpaired", action="store_true",
                        help="--a and --b are two domains with no aligned pairs (train it with --mode cycle or recycle)")
    parser.add_argument("--parts", type=parts_pair, metavar="A_NAME,B_NAME",
                        help="with --a/--b folders of sequences: each sequence holds its A frames in A_NAME/ and its B "
                             "frames in B_NAME/ (GoPro: blur,sharp) (default: each sequence folder holds its frames itself)")
    parser.add_argument("--video", action="extend", nargs="+", default=[], metavar="VIDEO",
                        help="videos or frame folders to derive pairs from, with --pair (each one segment; "
                             "--video a.mp4 b.mp4 and --video a.mp4 --video b.mp4 are the same)")
    parser.add_argument("--pair", help=PAIRS_HELP)
    parser.add_argument("-o", "--output", help="dataset folder (default: data/NAME_PAIR from the first video)")
    parser.add_argument("--size", type=frame_size, default="64", help="frame side (64 -> 64x64) or WIDTHxHEIGHT")
    parser.add_argument("--fps", type=positive_float, help="frames per second to take (default: the video's own)")
    parser.add_argument("--val-fraction", type=fraction, default=0.1, help="last share of each clip held out for validation")
    parser.add_argument("--trim", action="store_true", help="when A and B differ in length, use the shorter length")
    parser.add_argument("--mmap", action="store_true", help="build even if it will not fit in memory (train it with --mmap)")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="seed of the noise pair")
    parser.add_argument("--flow", action=argparse.BooleanOptionalAction,  # None when not given: paired data stores it
                        help="store the target's optical flow and occlusion mask, which train's temporal loss needs "
                             "(float16 flow and a uint8 mask: about 80%% more disk than the frames) (default: on for paired "
                             "data; unpaired data has no target)")
    parser.add_argument("--add-flow", metavar="DATA",
                        help="store the optical flow in the existing dataset folder DATA, and nothing else (default: build a new dataset)")
    parser.add_argument("--test", action="extend", nargs="+", default=[], metavar="VIDEO",
                        help="videos or frame folders held apart as test footage, derived into pairs as --video is: no run "
                             "trains or validates on them, and `verdict` judges on them (default: none)")
    parser.add_argument("--test-a", action="extend", nargs="+", default=[], metavar="A",
                        help="test footage's inputs, aligned with --test-b as --a is with --b (folders of sequences too); "
                             "with --unpaired, side A's test footage (default: none)")
    parser.add_argument("--test-b", action="extend", nargs="+", default=[], metavar="B",
                        help="test footage's targets, aligned with --test-a; with --unpaired, side B's test footage (default: none)")
    parser.add_argument("--test-shots", type=non_negative_int, default=0, metavar="N",
                        help="hold out N whole shots of the footage as test clips, found by ffmpeg's scene score and spread "
                             "over the footage; the rest is split around them (default: 0)")
    parser.add_argument("--add-test", metavar="DATA",
                        help="add the --test (or --test-a/--test-b) footage to the existing dataset folder DATA, and nothing "
                             "else; its runs stay valid (default: build a new dataset)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing dataset folder (with --add-test, its test footage)")
    parser.add_argument("--quiet", action="store_true", help="no progress while decoding")


def matched_pairs(a_paths, b_paths, parts=None):
    """The (A, B) pairs of --a/--b (or --test-a/--test-b): as given, or, for folders of sequences, one pair per sequence."""
    from datasets.build import is_sequence_folder, sequence_pairs

    if len(a_paths) != len(b_paths):
        raise UsageError(f"every A needs its B (got {len(a_paths)} and {len(b_paths)}: --a with --b, --test-a with --test-b)")
    pairs = []
    for a, b in zip(a_paths, b_paths):
        if is_sequence_folder(a) or is_sequence_folder(b) or parts:
            pairs += sequence_pairs(a, b, parts)
        else:
            pairs.append((a, b))
    return pairs


def test_footage(args, pair, unpaired):
    """The TestFootage the flags ask for, for a dataset of `pair` kind (or `unpaired`)."""
    from cli.train_flags import default_flags
    from datasets.build import TestFootage, derived_sources, paired_sources
    from datasets.pairs import TWO_VIDEOS
    from datasets.sources import InputSource

    min_frames = default_flags()["pool"]
    if unpaired:
        if args.test:
            raise UsageError("--test derives pairs; an unpaired dataset's test footage is each side's: --test-a A ... --test-b B ...")
        return TestFootage(sides=tuple(tuple(InputSource(v) for v in side_footage(side)) for side in (args.test_a, args.test_b)),
                           min_frames=min_frames)
    if pair == TWO_VIDEOS:
        if args.test:
            raise UsageError("--test derives pairs from one video; for two aligned videos give --test-a A --test-b B")
        sources = paired_sources(matched_pairs(args.test_a, args.test_b, args.parts), trim=args.trim)
    else:
        if args.test_a or args.test_b:
            raise UsageError("--test-a/--test-b go with aligned --a/--b footage; with --video, give the test videos with --test")
        sources = derived_sources(args.test, pair, seed=args.seed)
    return TestFootage(sources=tuple(sources), shots=args.test_shots, min_frames=min_frames)


def side_footage(paths):
    """The segments of one side of an unpaired dataset: each video or frame folder, and each
    sequence of a folder of sequences."""
    from datasets.build import is_sequence_folder
    from media.frame_folder import natural_key

    footage = []
    for path in paths:
        if is_sequence_folder(path):
            footage += sorted((p for p in Path(path).iterdir() if p.is_dir()), key=lambda p: natural_key(p.name))
        else:
            footage.append(path)
    return footage


def main(args):
    from datasets.build import add_test, build_dataset, build_unpaired, derived_sources, describe, paired_sources
    from datasets.flow import write_flow
    from datasets.pairs import TWO_VIDEOS, parse_pair
    from datasets.store import is_unpaired, read_meta

    if args.add_test:
        if args.video or args.a or args.b or args.add_flow:
            raise UsageError("--add-test adds --test (or --test-a/--test-b) footage to a built dataset alone; give no other footage")
        if args.test_shots:
            raise UsageError("--test-shots cuts shots out of the training footage, so it works only when a dataset is built")
        meta = read_meta(args.add_test)
        test = test_footage(args, meta.get("pair"), is_unpaired(meta))
        if not (test.sources or any(test.sides)):
            raise UsageError("--add-test needs the test footage: --test VIDEO ... (or --test-a A ... --test-b B ...)")
        add_test(args.add_test, test, overwrite=args.overwrite, quiet=args.quiet)
        print("added test footage: " + describe(meta, Path(args.add_test)))
        return 0
    if args.add_flow:
        if args.video or args.a or args.b:
            raise UsageError("--add-flow works on a built dataset alone; give no videos with it")
        write_flow(args.add_flow, quiet=args.quiet)
        print(f"stored the optical flow of {args.add_flow}'s targets: " + describe(read_meta(args.add_flow), Path(args.add_flow)))
        return 0
    if args.video and (args.a or args.b):
        raise UsageError("give either --a/--b pairs or --video with --pair, not both")
    if args.unpaired:
        if not (args.a and args.b) or args.video:
            raise UsageError("--unpaired takes the footage of each side: --a VIDEO [VIDEO ...] --b VIDEO [VIDEO ...]")
        for flag, given in (("--pair", args.pair), ("--parts", args.parts), ("--trim", args.trim), ("--flow", args.flow is True)):
            if given:
                raise UsageError(f"{flag} is for paired data; an unpaired dataset has no pairs" +
                                 ("" if flag != "--flow" else " and no target whose flow --temporal could follow"))
        if args.test_shots:
            raise UsageError("--test-shots holds out shots of paired footage; an unpaired dataset's test footage is "
                             "each side's: --test-a A ... --test-b B ...")
        output = Path(args.output) if args.output else Path("data") / f"{Path(args.a[0]).stem}_{Path(args.b[0]).stem}_unpaired"
        meta = build_unpaired(output, side_footage(args.a), side_footage(args.b), args.size, fps=args.fps,
                              val_fraction=args.val_fraction, mmap=args.mmap, overwrite=args.overwrite, quiet=args.quiet,
                              test=test_footage(args, None, unpaired=True))
        print("built " + describe(meta, output))
        return 0
    if args.video:
        if not args.pair:
            raise UsageError(f"--video needs --pair ({PAIRS_HELP.split(': ', 1)[1]})")
        try:
            parse_pair(args.pair)
        except ValueError as exc:
            raise UsageError(f"argument --pair: {exc}") from None
        name = f"{Path(args.video[0]).stem}_{args.pair.replace(':', '')}"
        sources = derived_sources(args.video, args.pair, seed=args.seed)
    elif args.a or args.b:
        if len(args.a) != len(args.b):
            raise UsageError(f"every --a needs a --b (got {len(args.a)} --a and {len(args.b)} --b)")
        if args.pair:
            raise UsageError("--pair goes with --video; --a/--b are already a pair")
        name = f"{Path(args.a[0]).stem}_paired"
        sources = paired_sources(matched_pairs(args.a, args.b, args.parts), trim=args.trim)
    else:
        raise UsageError("give --a A --b B (aligned videos) or --video V --pair MODE")
    if args.parts and not args.a:
        raise UsageError("--parts goes with --a/--b folders of sequences")
    output = Path(args.output) if args.output else Path("data") / name
    test = test_footage(args, args.pair if args.video else TWO_VIDEOS, unpaired=False)
    meta = build_dataset(output, sources, args.size, fps=args.fps, val_fraction=args.val_fraction, mmap=args.mmap,
                         overwrite=args.overwrite, quiet=args.quiet, flow=args.flow is not False, test=test)
    print("built " + describe(meta, output))
    return 0
