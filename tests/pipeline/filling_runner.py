"""The local runner with the disk filled up at one chosen moment, for the full-disk test.

    python tests/pipeline/filling_runner.py checkpoint|push FILLER ARGS...     (ARGS: the local runner's)

``checkpoint``: just before the Trainer writes its first checkpoint; ``push``: just before the Pusher copies its first
file. Either way FILLER, a file on the output root's file system, is grown until that file system has no byte left,
so the write that follows meets a genuinely full disk.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

MOMENT, FILLER = sys.argv[1], sys.argv[2]


def fill() -> None:
    if os.path.exists(FILLER):
        return
    block = b"\0" * (1 << 20)
    # unbuffered: a buffered file would flush its unwritten tail again on close and raise here, in the filler,
    # instead of in the pipeline's write that the test is about
    with open(FILLER, "wb", buffering=0) as handle:
        try:
            while True:
                handle.write(block)
        except OSError:
            pass
        try:  # the last partial megabyte too
            while True:
                handle.write(b"\0" * 4096)
        except OSError:
            pass


if MOMENT == "checkpoint":
    import tensorflow as tf

    save = tf.train.CheckpointManager.save

    def filled_then_save(self, *args, **kwargs):
        fill()
        return save(self, *args, **kwargs)

    tf.train.CheckpointManager.save = filled_then_save
else:
    from components import pusher

    copy = pusher._copy_file

    def filled_then_copy(source, target):
        fill()
        return copy(source, target)

    pusher._copy_file = filled_then_copy

from pipeline.local_runner import main  # noqa: E402

sys.exit(main(sys.argv[3:]))
