"""A small detection scene whose every error is known: two images, three classes (one without eval boxes)."""

import numpy as np

NAMES = {0: "cat", 1: "dog", 2: "eel"}
A, B, C = [10, 10, 50, 50], [60, 60, 100, 100], [20, 20, 80, 80]
TRUTH = [{"image_id": 0, "height": 120, "width": 120, "boxes": np.array([A, B], np.float32),
          "labels": np.array([0, 1])},
         {"image_id": 1, "height": 120, "width": 120, "boxes": np.array([C], np.float32), "labels": np.array([1])}]
# image 0: the cat found, the dog taken for a cat, a dog seen where nothing is; image 1: its dog missed
FOUND = [{"image_id": 0, "boxes": np.array([A, B, [0, 90, 20, 110]], np.float32),
          "scores": np.array([0.9, 0.8, 0.7]), "classes": np.array([0, 0, 1])},
         {"image_id": 1, "boxes": np.zeros([0, 4], np.float32), "scores": np.zeros([0]), "classes": np.zeros([0])}]
