"""How fast this CPU's convolution kernels run, per direction, at the shapes of RetinaNet R50-FPN's training step.

    .venv/bin/python benchmarks/conv_gradient.py [--precision bfloat16|float32] [--repeats 15]

For each convolution shape of the R50 RetinaNet at 512x512, batch 2 (head and FPN 3x3 convs on P3-P6, the
backbone's trainable 3x3 and 1x1 convs): TensorFlow's forward (``Conv2D``), input gradient
(``Conv2DBackpropInput``) and filter gradient (``Conv2DBackpropFilter``), each alone as a tf.function, median
of --repeats after a warm-up; then the filter gradient written as matrix products -- one ``tf.matmul`` per
kernel tap over the shifted input (no copy of the whole input), and one over the im2col matrix (the taps
concatenated) -- and that last matmul alone, the bound of any im2col formulation. GFLOP/s counts 2
multiply-adds per MAC of the convolution. The matmul forms are checked against the kernel's result.

Writes benchmarks/results/conv_gradient_<precision>.json.
"""

import argparse
import os
import statistics
import time

import _env  # noqa: F401,E402,I001  (the repository on sys.path, tf_keras: benchmarks/_env.py)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402

from benchmarks.report import save  # noqa: E402

# (where, spatial size of the output, input channels, output channels, kernel size); batch 2, stride 1
SHAPES = (
    ("head / FPN 3x3 on P3", 64, 256, 256, 3),
    ("head / FPN 3x3 on P4", 32, 256, 256, 3),
    ("head 3x3 on P5", 16, 256, 256, 3),
    ("head 3x3 on P6", 8, 256, 256, 3),
    ("backbone layer2 3x3", 64, 128, 128, 3),
    ("backbone layer3 3x3", 32, 256, 256, 3),
    ("backbone layer4 3x3", 16, 512, 512, 3),
    ("backbone layer2 1x1 in", 64, 512, 128, 1),
    ("backbone layer2 1x1 out", 64, 128, 512, 1),
    ("backbone layer3 1x1 in", 32, 1024, 256, 1),
    ("backbone layer3 1x1 out", 32, 256, 1024, 1),
    ("backbone layer4 1x1 in", 16, 2048, 512, 1),
    ("backbone layer4 1x1 out", 16, 512, 2048, 1),
)
BATCH = 2


def median_ms(function, *inputs, repeats: int) -> float:
    for _ in range(3):
        function(*inputs).numpy()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function(*inputs).numpy()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def measure(size: int, channels: int, filters: int, kernel: int, dtype: tf.DType, repeats: int) -> dict:
    padded = size + kernel - 1
    x = tf.cast(tf.random.stateless_normal([BATCH, padded, padded, channels], [1, 2]), dtype)
    w = tf.cast(tf.random.stateless_normal([kernel, kernel, channels, filters], [3, 4]) * 0.05, dtype)
    dy = tf.cast(tf.random.stateless_normal([BATCH, size, size, filters], [5, 6]), dtype)
    strides = [1, 1, 1, 1]

    def taps(x):
        return [x[:, i:i + size, j:j + size, :] for i in range(kernel) for j in range(kernel)]

    def per_tap(x, dy):
        d = tf.reshape(dy, [-1, filters])
        products = [tf.matmul(tf.reshape(t, [-1, channels]), d, transpose_a=True) for t in taps(x)]
        return tf.reshape(tf.stack(products), [kernel, kernel, channels, filters])

    def im2col(x, dy):
        columns = tf.reshape(tf.concat(taps(x), axis=-1), [-1, kernel * kernel * channels])
        return tf.reshape(tf.matmul(columns, tf.reshape(dy, [-1, filters]), transpose_a=True),
                          [kernel, kernel, channels, filters])

    functions = {
        "forward": (tf.function(lambda x, w: tf.nn.conv2d(x, w, 1, "VALID")), (x, w)),
        "input gradient": (tf.function(lambda w, dy: tf.raw_ops.Conv2DBackpropInput(
            input_sizes=[BATCH, padded, padded, channels], filter=w, out_backprop=dy, strides=strides,
            padding="VALID")), (w, dy)),
        "filter gradient": (tf.function(lambda x, dy: tf.raw_ops.Conv2DBackpropFilter(
            input=x, filter_sizes=[kernel, kernel, channels, filters], out_backprop=dy, strides=strides,
            padding="VALID")), (x, dy)),
        "filter gradient, matmul per tap": (tf.function(per_tap), (x, dy)),
        "filter gradient, im2col matmul": (tf.function(im2col), (x, dy)),
        "im2col's matmul alone": (tf.function(lambda a, b: tf.matmul(a, b, transpose_a=True)),
                                  (tf.cast(tf.random.stateless_normal(
                                      [BATCH * size * size, kernel * kernel * channels], [7, 8]), dtype),
                                   tf.reshape(dy, [-1, filters]))),
    }
    reference = tf.cast(functions["filter gradient"][0](x, dy), tf.float32)
    scale = float(tf.reduce_max(tf.abs(reference)))
    errors = {name: float(tf.reduce_max(tf.abs(tf.cast(functions[name][0](x, dy), tf.float32) - reference))) / scale
              for name in ("filter gradient, matmul per tap", "filter gradient, im2col matmul")}
    gflop = 2 * BATCH * size * size * channels * filters * kernel * kernel / 1e9
    ms = {name: median_ms(function, *inputs, repeats=repeats) for name, (function, inputs) in functions.items()}
    return {"gflop": round(gflop, 3), "ms": {k: round(v, 2) for k, v in ms.items()},
            "gflops_per_second": {k: round(gflop / v * 1000) for k, v in ms.items()},
            "max_relative_difference_to_the_kernel": {k: float(f"{v:.3g}") for k, v in errors.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--precision", choices=("bfloat16", "float32"), default="bfloat16")
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    dtype = tf.as_dtype(args.precision)
    rows = []
    for where, size, channels, filters, kernel in SHAPES:
        row = {"where": where, "output_size": size, "channels": channels, "filters": filters, "kernel": kernel,
               **measure(size, channels, filters, kernel, dtype, args.repeats)}
        rows.append(row)
        rates = row["gflops_per_second"]
        print(f"{where:26s} " + "  ".join(f"{name.replace('filter gradient', 'fg')} {rate}"
                                          for name, rate in rates.items()))
    totals = {name: round(sum(row["ms"][name] for row in rows), 1) for name in rows[0]["ms"]}
    save(f"conv_gradient_{args.precision}.json",
         {"precision": args.precision, "batch": BATCH, "repeats": args.repeats,
          "versions": {"tensorflow": tf.__version__}, "total_ms_over_the_shapes": totals, "shapes": rows},
         show=False)
    print("total ms over the shapes:", totals)


if __name__ == "__main__":
    main()
