"""docs/outputs.md's TF Serving requests, checked against a saved model's signatures as far as this machine reaches:
TF Serving cannot run here, so each REST body is turned into the PredictRequest the server builds from it (row
format: the instances stacked per input, ``{"b64": ...}`` decoded to bytes, with tensorflow-serving-api's protos)
and that request's tensors are fed to the signature it names."""

import base64
import json
import os
import re

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2

import tfdet
from tfdet.core.detections import split_detections
from tfdet.export.saved_model import export_saved_model

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def rest_bodies():
    text = open(os.path.join(REPO, "docs", "outputs.md")).read()
    return [json.loads(body) for body in re.findall(r"^```json\n(.*?)^```$", text, re.S | re.M)
            if '"signature_name"' in body]


def predict_request(body) -> predict_pb2.PredictRequest:
    """What TF Serving's REST handler makes of a row-format body: one tensor per input name, rows stacked."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "tfdet"
    request.model_spec.signature_name = body["signature_name"]
    names = set().union(*(instance.keys() for instance in body["instances"]))
    for name in names:
        rows = [instance[name] for instance in body["instances"]]
        values = [base64.b64decode(row["b64"]) if isinstance(row, dict) and "b64" in row else row for row in rows]
        request.inputs[name].CopyFrom(tf.make_tensor_proto(values))
    return request


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    model = tfdet.create_model("tiny", num_classes=2, **{"head.prior_prob": 0.5})  # it answers for any image
    return export_saved_model(model, str(tmp_path_factory.mktemp("served") / "1")), model


def test_both_rest_bodies_are_requests_the_signatures_take_and_answer_alike(saved_model):
    path, model = saved_model
    bodies = rest_bodies()
    assert sorted(body["signature_name"] for body in bodies) == ["serving_default", "serving_images"]
    loaded = tf.saved_model.load(path)
    answers = {}
    for body in bodies:
        request = predict_request(body)
        signature = loaded.signatures[request.model_spec.signature_name]
        specs = signature.structured_input_signature[1]
        assert set(request.inputs) == set(specs), (request.model_spec.signature_name, set(specs))
        inputs = {name: tf.make_ndarray(proto) for name, proto in request.inputs.items()}
        for name, spec in specs.items():
            assert tf.as_dtype(request.inputs[name].dtype) == spec.dtype
        out = signature(**{name: tf.constant(value) for name, value in inputs.items()})
        assert bool(out["valid"][0]) and out["error"].numpy()[0] == b"", out["error"]
        assert out["image_size"].numpy().tolist() == [[8, 8]]
        answers[request.model_spec.signature_name] = split_detections(out)[0]
    # the PNG inside both bodies, through the Python path: the same detections in the same pixels
    png = base64.b64decode(rest_bodies()[0]["instances"][0]["images"]["b64"])
    python = model.predict_images([tf.io.decode_png(png).numpy()])[0]
    for found in answers.values():
        assert len(found["scores"]) == len(python["scores"]) > 0
        np.testing.assert_allclose(found["boxes"], python["boxes"], atol=1e-3)
        np.testing.assert_allclose(found["scores"], python["scores"], atol=1e-5)
        np.testing.assert_array_equal(found["classes"], python["classes"])
