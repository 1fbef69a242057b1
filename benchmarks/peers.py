"""tfdet against KerasHub's and TF Model Garden's RetinaNet R50-FPN, side by side in one run, under one protocol.

    .venv/bin/python benchmarks/peers.py [--rounds 3]          # make bench-peers

Sets up each peer in an environment of its own on first use (Python 3.11; tensorflow==2.21.0 +
keras-hub==0.32.0 in $TFDET_HOME/peers/kerashub, tensorflow==2.20.0 + tf-models-official==2.20.0 in
$TFDET_HOME/peers/modelgarden; a few minutes of pip each), then measures, alternating the systems within
every round so that they share the machine's state:

* the CPU's matmul peak (2048^3 tf.matmul, float32 and bfloat16, best of 10);
* per system and precision (float32, mixed_bfloat16), random init, 512x512, 20 classes:
  inference = network + box decoding + NMS on one image (median of 7 after a warm-up);
  training = fit on a fixed batch of 2 (4 steps after a warm-up, timed from the first step to the end of
  training: peer_workers/timed_fit.py).

Systems: KerasHub ``ResNetBackbone`` (bottleneck, [3, 4, 6, 3]) -> ``RetinaNetBackbone`` (P3-P7) ->
``RetinaNetObjectDetector``; Model Garden's ``retinanet_resnetfpn_coco`` experiment (its training step is its
task's ``train_step``, as its own trainer runs it, not ``fit``: peer_workers/modelgarden_worker.py); tfdet's
``retinanet_resnet50_fpn`` twice -- with nothing frozen and BatchNorm training (the like-for-like row, the
ratios' reference: the peers train every layer) and as its zoo recipe freezes it (stem, stage 1, BatchNorm:
less work per step, labelled so) -- and the seed's ``retinanet_resnetv2_50_fpn_512`` (BiT ResNetV2-50).
Each measurement runs in a fresh process. Writes benchmarks/results/peers.json (every measurement, the
medians, ratios to each peer, each system's trainable weights, fractions of the matmul peak from TensorFlow's own
FLOP count) and
benchmarks/results/peers.png (bar chart).
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
from typing import Dict, List, Optional

import _env  # noqa: F401,E402,I001  (the repository on sys.path, tf_keras: benchmarks/_env.py)

from benchmarks.report import RESULTS, save  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
WORKERS = os.path.join(HERE, "peer_workers")
PRECISIONS = ("float32", "mixed_bfloat16")
# row -> (zoo entry, config changes). The first row does the peers' work: every layer trained, BatchNorm in
# training mode, as KerasHub and Model Garden train; the second is the zoo recipe, which freezes the stem, stage 1
# and BatchNorm (mmdetection's) and so does less work per step: it is labelled so, and not the ratios' reference.
TFDET_MODELS = {
    "tfdet ResNet-50 RetinaNet, nothing frozen (retinanet_resnet50_fpn)": (
        "retinanet_resnet50_fpn", ["backbone.frozen_stages=-1", "backbone.norm_eval=False"]),
    "tfdet ResNet-50 RetinaNet, stem + stage 1 and BatchNorm frozen (its zoo recipe)": ("retinanet_resnet50_fpn", []),
    "tfdet seed config (BiT R50, GroupNorm, nothing frozen; retinanet_resnetv2_50_fpn_512)": (
        "retinanet_resnetv2_50_fpn_512", []),
}
KERASHUB = "KerasHub 0.32 RetinaNet R50-FPN"
MODELGARDEN = "TF Model Garden 2.20 RetinaNet R50-FPN"
# peer: (environment directory, pinned packages, worker script)
PEERS = {KERASHUB: ("kerashub", ["tensorflow==2.21.0", "keras-hub==0.32.0"], "kerashub_worker.py"),
         MODELGARDEN: ("modelgarden", ["tensorflow==2.20.0", "tf-models-official==2.20.0"], "modelgarden_worker.py")}


def cache_home() -> str:
    home = os.environ.get("TFDET_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "tfdet")
    return os.path.join(home, "peers")


def peer_python(peer: str, setup: bool = True) -> str:
    """A peer environment's python, created (venv + pinned pip install) when missing."""
    directory, packages, _ = PEERS[peer]
    env = os.path.join(cache_home(), directory)
    python = os.path.join(env, "bin", "python")
    stamp = os.path.join(env, ".installed")
    if os.path.exists(stamp):
        return python
    if not setup:
        raise SystemExit(f"the {peer} environment is not set up ({env}); run without --no-setup")
    interpreter = shutil.which("python3.11")
    if interpreter is None:
        raise SystemExit(f"{peer} ({' '.join(packages)}) needs Python 3.11 (python3.11 not found)")
    print(f"setting up {env}: {' '.join(packages)}", flush=True)
    subprocess.run([interpreter, "-m", "venv", env], check=True)
    subprocess.run([python, "-m", "pip", "install", "--quiet", *packages], check=True)
    open(stamp, "w").close()
    return python


def peer_environment() -> Dict[str, str]:
    """This process's environment without ``TF_USE_LEGACY_KERAS``, which tfdet sets and a peer must not inherit.

    KerasHub's environment runs Keras 3 and has no tf_keras: with the variable set, its ``tf.keras`` lookup
    recurses until RecursionError. Model Garden imports tf_keras by name and tfdet's worker sets the variable
    itself, so neither needs it from here.
    """
    return {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}


def run_worker(command: List[str]) -> Dict:
    completed = subprocess.run(command, capture_output=True, text=True, timeout=3600, env=peer_environment())
    lines = [line for line in completed.stdout.splitlines() if line.startswith("{")]
    if not lines:
        return {"error": f"worker printed no result (exit {completed.returncode}): {completed.stderr[-500:]}"}
    return json.loads(lines[-1])


def measure(rounds: int, repeats: Dict[str, int], setup: bool) -> Dict:
    def peer_command(peer: str):
        python, worker = peer_python(peer, setup), os.path.join(WORKERS, PEERS[peer][2])
        return lambda p, m: [python, worker, "--precision", p, "--mode", m, "--repeats", str(repeats[m])]

    systems = {peer: peer_command(peer) for peer in PEERS}

    def tfdet_command(model: str, changes: List[str]):
        return lambda p, m: [sys.executable, os.path.join(WORKERS, "tfdet_worker.py"), "--model", model,
                             "--precision", p, "--mode", m, "--repeats", str(repeats[m]),
                             *[arg for change in changes for arg in ("--set", change)]]

    for name, (model, changes) in TFDET_MODELS.items():
        systems[name] = tfdet_command(model, changes)
    runs: List[Dict] = []
    peaks = []
    for round_index in range(rounds):
        peaks.append(run_worker([sys.executable, os.path.join(WORKERS, "matmul_worker.py")]))
        for precision in PRECISIONS:
            for mode in ("infer", "train"):
                for name, command in systems.items():
                    result = run_worker(command(precision, mode))
                    result.update(system=name, precision=precision, mode=mode, round=round_index)
                    shown = result.get("seconds_per_image") or result.get("images_per_second") or result.get("error")
                    print(f"round {round_index} {precision:15s} {mode:5s} {name}: {shown}", flush=True)
                    runs.append(result)
    return {"runs": runs, "peaks": peaks}


def _first(runs: List[Dict], system: str, key: str):
    """``key`` of the first of ``system``'s measurements that has it (the same in all of them), or None."""
    return next((r[key] for r in runs if r["system"] == system and key in r), None)


def _median(runs: List[Dict], system: str, precision: str, mode: str) -> Optional[float]:
    key = "seconds_per_image" if mode == "infer" else "images_per_second"
    values = [r[key] for r in runs if (r["system"], r["precision"], r["mode"]) == (system, precision, mode)
              and key in r]
    return statistics.median(values) if values else None


def summarise(measured: Dict) -> Dict:
    runs = measured["runs"]
    peak = {dtype: max(p[f"{dtype}_gflops"] for p in measured["peaks"]) for dtype in ("float32", "bfloat16")}
    table = {}
    for system in [*PEERS, *TFDET_MODELS]:
        row = {}
        flops = _first(runs, system, "forward_gflops")
        for precision in PRECISIONS:
            infer, train = _median(runs, system, precision, "infer"), _median(runs, system, precision, "train")
            errors = {r["mode"]: r["error"] for r in runs
                      if (r["system"], r["precision"]) == (system, precision) and "error" in r}
            peak_gflops = peak["bfloat16" if precision == "mixed_bfloat16" else "float32"]
            row[precision] = {
                "inference_seconds_per_image": round(infer, 3) if infer else None,
                "training_images_per_second": round(train, 3) if train else None,
                "errors": errors,
                # training ~ 3x the forward FLOPs (forward + backward through activations and weights)
                "inference_fraction_of_peak": round(flops / infer / peak_gflops, 3) if infer and flops else None,
                "training_fraction_of_peak": round(3 * flops * train / peak_gflops, 3) if train and flops else None,
            }
        table[system] = {"forward_gflops": flops, "trainable_params": _first(runs, system, "trainable_params"), **row}
    speedups = {f"speedup_over_{directory}": _speedups(table, peer) for peer, (directory, _, _) in PEERS.items()}
    return {"matmul_peak_gflops": peak, "table": table, **speedups}


def _speedups(table: Dict, peer: str) -> Dict:
    """Each tfdet row against ``peer``: fp32 against fp32, bf16 against the peer's best working precision."""
    row = table[peer]
    infers = [v for v in (row[p]["inference_seconds_per_image"] for p in PRECISIONS) if v]
    trains = [v for v in (row[p]["training_images_per_second"] for p in PRECISIONS) if v]
    best_infer, best_train = (min(infers) if infers else None), (max(trains) if trains else None)
    ratios = {}
    for system in TFDET_MODELS:
        ratios[system] = {
            "inference_fp32_vs_fp32": _ratio(row["float32"]["inference_seconds_per_image"],
                                             table[system]["float32"]["inference_seconds_per_image"]),
            "training_fp32_vs_fp32": _ratio(table[system]["float32"]["training_images_per_second"],
                                            row["float32"]["training_images_per_second"]),
            "inference_bf16_vs_best_working": _ratio(best_infer,
                                                     table[system]["mixed_bfloat16"]["inference_seconds_per_image"]),
            "training_bf16_vs_best_working": _ratio(table[system]["mixed_bfloat16"]["training_images_per_second"],
                                                    best_train),
        }
    return ratios


def _ratio(numerator: Optional[float], denominator: Optional[float]) -> Optional[float]:
    return round(numerator / denominator, 2) if numerator and denominator else None


def chart(summary: Dict, path: str) -> None:
    """Two bar groups (inference images/s, training images/s) per system and precision, drawn with Pillow."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default()
    systems = list(summary["table"])
    colours = {"float32": (90, 140, 220), "mixed_bfloat16": (240, 150, 40)}
    panels = (("inference, images/s (1 / s per image)", lambda row: 1 / row["inference_seconds_per_image"]
               if row["inference_seconds_per_image"] else None),
              ("training, images/s (batch 2; fit, Model Garden its train_step)",
               lambda row: row["training_images_per_second"]))
    width, bar_area, bars_left = 1260, 130, 580  # room for the full system names: they say what each row froze
    image = Image.new("RGB", (width, 60 + len(panels) * (len(systems) * 2 * 16 + 60)), "white")
    draw = ImageDraw.Draw(image)
    draw.text((10, 8), "tfdet vs KerasHub and TF Model Garden RetinaNet R50-FPN, 512x512, 20 classes, 2 CPU cores "
              "(benchmarks/peers.py)",
              fill="black", font=font)
    top = 30
    for title, value_of in panels:
        draw.text((10, top), title, fill="black", font=font)
        top += 18
        values = [value_of(summary["table"][s][p]) for s in systems for p in PRECISIONS]
        scale = (width - bars_left - 80) / max(v for v in values if v)
        for system in systems:
            for precision in PRECISIONS:
                value = value_of(summary["table"][system][precision])
                label = f"{system} {'bf16' if precision != 'float32' else 'fp32'}"
                draw.text((10, top), label, fill="black", font=font)
                if value:
                    draw.rectangle([bars_left, top + 1, bars_left + value * scale, top + 11], fill=colours[precision])
                    draw.text((bars_left + 5 + value * scale, top), f"{value:.2f}", fill="black", font=font)
                else:
                    draw.text((bars_left + 5, top), "fails", fill=(200, 0, 0), font=font)
                top += 16
        top += bar_area - 120
    image.save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (medians over them)")
    parser.add_argument("--infer-repeats", type=int, default=7)
    parser.add_argument("--train-steps", type=int, default=4)
    parser.add_argument("--no-setup", action="store_true", help="fail instead of creating the peers' environments")
    args = parser.parse_args()
    measured = measure(args.rounds, {"infer": args.infer_repeats, "train": args.train_steps}, not args.no_setup)
    summary = summarise(measured)
    chart(summary, os.path.join(RESULTS, "peers.png"))
    save("peers.json", {**summary, "protocol": {"size": 512, "num_classes": 20, "infer_repeats": args.infer_repeats,
                                                "train_batch": 2, "train_steps": args.train_steps,
                                                "train_clock": "first step to end of training (timed_fit.py)",
                                                "rounds": args.rounds, "cores": os.cpu_count()},
                        "measurements": measured})


if __name__ == "__main__":
    main()
