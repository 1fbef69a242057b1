"""This CPU's matrix-multiply peak under TensorFlow: a 2048^3 tf.matmul in float32 and bfloat16, best of N."""

import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def peak(dtype, size: int = 2048, repeats: int = 10) -> float:
    import tensorflow as tf

    a = tf.cast(tf.random.normal([size, size]), dtype)
    b = tf.cast(tf.random.normal([size, size]), dtype)
    matmul = tf.function(lambda x, y: tf.matmul(x, y))
    for _ in range(3):
        matmul(a, b).numpy()
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        matmul(a, b).numpy()
        best = min(best, time.perf_counter() - started)
    return 2 * size ** 3 / best / 1e9


if __name__ == "__main__":
    import tensorflow as tf

    print(json.dumps({"float32_gflops": round(peak(tf.float32), 1), "bfloat16_gflops": round(peak(tf.bfloat16), 1),
                      "tensorflow": tf.__version__}))
