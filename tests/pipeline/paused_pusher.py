"""The local runner with TFX's Pusher stopped before its last file, for the crash test.

    python tests/pipeline/paused_pusher.py MARKER ARGS...     (ARGS: the local runner's)

The Pusher copies a model into a hidden staging folder of the serving directory file by file, ``saved_model.pb``
last, then renames the folder to its version number. When it reaches that file this wrapper writes the staging
folder's path to MARKER and waits there, so that the test can kill the run with a genuinely partial copy on disk.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from components import pusher  # noqa: E402

MARKER = sys.argv[1]
_copy_file = pusher._copy_file


def copy_file_then_wait(src, dst):
    if os.path.basename(dst) == "saved_model.pb" and f"{os.sep}serving_model{os.sep}" in dst:
        with open(MARKER, "w") as handle:
            handle.write(os.path.dirname(dst))
        time.sleep(3600)
    return _copy_file(src, dst)


pusher._copy_file = copy_file_then_wait

from pipeline.local_runner import main  # noqa: E402

sys.exit(main(sys.argv[2:]))
