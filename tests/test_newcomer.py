"""The newcomer's path, as docs/pipeline.md's "Your own data, end to end" writes it: a 3-class Pascal VOC folder
converted, through the pipeline, served, ``tfdet predict`` on it, a TFLite file whose boxes land on the objects in
the image's pixels. The commands run as the docs show them, in a fresh folder; only the pipeline's run gets a
smaller model and fewer steps (the docs' default trains ``cpu_small`` for 17 minutes)."""

import json
import os
import re
import subprocess
import sys
from xml.sax.saxutils import escape

import numpy as np
import pytest
from PIL import Image, ImageDraw

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLASSES = ("disc", "square", "triangle")  # VOC's ids: the sorted names
FAST = ["--model-config", "tiny", "--train-steps", "240", "--min-map50", "0.3", "--seed", "0", "--beam", "in-memory"]


def documented_commands():
    text = open(os.path.join(REPO, "docs", "pipeline.md")).read()
    section = text.split("## Your own data, end to end", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"^```\n(.*?)^```$", section, re.S | re.M)
    return block.strip().splitlines()


def draw(rng, path):
    """A 128 px JPEG with 1-3 objects: red squares, blue discs, green triangles; returns (name, box) pairs."""
    image = Image.new("RGB", (128, 128), tuple(int(v) for v in rng.randint(100, 140, 3)))
    pen = ImageDraw.Draw(image)
    objects = []
    for _ in range(rng.randint(1, 4)):
        side = int(rng.randint(28, 46))
        y, x = (int(v) for v in rng.randint(0, 128 - side, 2))
        box = (x, y, x + side, y + side)
        if any(not (box[2] <= b[0] or box[0] >= b[2] or box[3] <= b[1] or box[1] >= b[3]) for _, b in objects):
            continue
        name = CLASSES[int(rng.randint(0, 3))]
        corners = [box[0], box[1], box[2] - 1, box[3] - 1]
        if name == "square":
            pen.rectangle(corners, fill=(220, 30, 30))
        elif name == "disc":
            pen.ellipse(corners, fill=(30, 30, 220))
        else:
            pen.polygon([(box[0], box[3] - 1), ((box[0] + box[2]) // 2, box[1]), (box[2] - 1, box[3] - 1)],
                        fill=(30, 190, 30))
        objects.append((name, box))
    image.save(path, quality=95)
    return objects


def write_voc(root, train=72, val=24):
    rng = np.random.RandomState(7)
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
    truth = {}
    for index in range(1, train + val + 1):
        name = f"{index:04d}"
        objects = draw(rng, os.path.join(root, "JPEGImages", f"{name}.jpg"))
        truth[name] = objects
        boxes = "".join(f"<object><name>{escape(kind)}</name><difficult>0</difficult><bndbox><xmin>{b[0]}</xmin>"
                        f"<ymin>{b[1]}</ymin><xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"
                        for kind, b in objects)
        with open(os.path.join(root, "Annotations", f"{name}.xml"), "w") as handle:
            handle.write(f"<annotation><filename>{name}.jpg</filename><size><width>128</width><height>128</height>"
                         f"<depth>3</depth></size>{boxes}</annotation>")
    names = sorted(truth)
    for split, chosen in (("train", names[:train]), ("val", names[train:])):
        with open(os.path.join(root, "ImageSets", "Main", f"{split}.txt"), "w") as handle:
            handle.write("\n".join(chosen) + "\n")
    return truth


def iou(a, b):
    """IoU of (x0, y0, x1, y1) boxes."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    return w * h / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h)


def lands_on_objects(found, objects, label_map):
    """Every detection scoring 0.5 or more sits on a true object of its class (IoU >= 0.5), and there is one."""
    sure = [(label_map[str(c)], box) for c, box, s in found if s >= 0.5]
    return bool(sure) and all(any(kind == name and iou(box, b) >= 0.5 for kind, b in objects) for name, box in sure)


@pytest.mark.slow
@pytest.mark.long(12)
@pytest.mark.timeout(2400)
def test_a_newcomers_voc_dataset_through_the_pipeline_to_predict_and_tflite(tmp_path):
    truth = write_voc(str(tmp_path / "my_voc"))
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"],
               PYTHONPATH=os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")])))
    printed = {}
    for command in documented_commands():
        if command.startswith("python -m pipeline.local_runner --data-root"):
            command += " " + " ".join(FAST)
        done = subprocess.run(command, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=1800)
        assert done.returncode == 0, (command, done.stdout[-3000:], done.stderr[-3000:])
        printed[command.split(" --")[0]] = done.stdout
    label_map = json.load(open(tmp_path / "data" / "mine" / "span-1" / "label_map.json"))
    assert label_map == {"0": "disc", "1": "square", "2": "triangle"}
    run = printed["python -m pipeline.local_runner"]
    assert "examples: train 72, eval 24" in run and "blessed: yes" in run, run[-3000:]
    served = subprocess.run("python -m pipeline.local_runner status --output-root runs/mine --path", shell=True,
                            cwd=tmp_path, env=env, capture_output=True, text=True).stdout.strip()
    assert os.path.isabs(served), served  # usable from any folder
    assert json.load(open(os.path.join(served, "label_map.json"))) == label_map  # the classes the data named
    assert json.load(open(os.path.join(served, "tfdet_model.json")))["model"]["head"]["num_classes"] == 3

    # tfdet predict on 0001.jpg: COCO [x, y, w, h] in pixels, tfdet's class ids
    rows = json.load(open(tmp_path / "predictions" / "detections.json"))
    found = [(r["category_id"], [r["bbox"][0], r["bbox"][1], r["bbox"][0] + r["bbox"][2],
                                 r["bbox"][1] + r["bbox"][3]], r["score"]) for r in rows]
    assert lands_on_objects(found, truth["0001"], label_map), (found, truth["0001"])

    # the TFLite file on eval images of another size: each pasted 48 px from the left of a grey 176 x 128 canvas, so
    # the letterbox scales it and pads it, and the boxes must come back in the canvas' pixels (the objects keep their
    # shapes: a stretched image would show the model squares it never saw)
    from tfdet.export.tflite import detect_tflite

    landed = 0
    for name in sorted(truth)[72:84]:
        picture = Image.open(tmp_path / "my_voc" / "JPEGImages" / f"{name}.jpg").convert("RGB")
        wide = Image.new("RGB", (176, 128), (128, 128, 128))
        wide.paste(picture, (48, 0))
        objects = [(kind, (b[0] + 48, b[1], b[2] + 48, b[3])) for kind, b in truth[name]]
        detected = detect_tflite(str(tmp_path / "mine.tflite"), np.asarray(wide))
        found = [(int(c), [box[1], box[0], box[3], box[2]], float(s))
                 for box, s, c in zip(detected["boxes"], detected["scores"], detected["classes"])]
        landed += lands_on_objects(found, objects, label_map)
    assert landed >= 9, landed
