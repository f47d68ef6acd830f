"""Video in and out through ffmpeg, by job: running the process (process), probing (probe),
decoding (decode), encoding (encode), cutting into frames (split) and VMAF (vmaf). A folder of
numbered frames (frame_folder) is one more source kind, accepted wherever a video is.
"""
