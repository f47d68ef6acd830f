"""Cut a video into numbered frames (000001.png, 000002.png, ...) with ffmpeg.

    python main.py split videos/in.mp4 -o videos/in_frames --fps 10 --size 128 --format png
"""
from pathlib import Path

from cli.argtypes import frame_size, non_negative_float, positive_float

HELP = "cut a video into numbered frames"


def add_arguments(parser):
    parser.add_argument("video", help="the video to cut")
    parser.add_argument("-o", "--output", help="folder for the frames (default: VIDEO's folder/NAME_frames)")
    parser.add_argument("--fps", type=positive_float, help="frames per second to take (default: the video's own)")
    parser.add_argument("--size", type=frame_size, help="resize to a side (128 -> 128x128) or WIDTHxHEIGHT (default: as is)")
    parser.add_argument("--start", type=non_negative_float, help="start at this second (default: 0, the beginning)")
    parser.add_argument("--duration", type=positive_float, help="take this many seconds (default: to the end)")
    parser.add_argument("--format", choices=["jpg", "png"], default="jpg", help="image format (png is lossless)")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")
    parser.add_argument("--quiet", action="store_true", help="no progress while it works")


def main(args):
    from media.probe import probe
    from media.split import write_image_sequence
    from utils.fsio import staged_dir
    from utils.progress import Progress

    info = probe(args.video)
    output = Path(args.output) if args.output else Path(args.video).with_name(Path(args.video).stem + "_frames")
    suffix = "." + args.format
    progress = Progress(info.frames_at(args.fps, args.start, args.duration), unit="frame", what=f"split {args.video}",
                        enabled=not args.quiet)
    with staged_dir(output, overwrite=args.overwrite, what="frame folder") as tmp:
        count = write_image_sequence(args.video, tmp, suffix, size=args.size, fps=args.fps, start=args.start,
                                     duration=args.duration, info=info, on_frames=progress.update)
    progress.close()
    size = args.size or f"{info.width}x{info.height}"
    print(f"wrote {count} frames ({size}, {args.format}) to {output}/")
    return 0
