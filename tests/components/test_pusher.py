import errno
import logging
import os
import time

import pytest
import tensorflow as tf
from tfx.components.pusher import executor as tfx_pusher
from tfx.proto import pusher_pb2
from tfx.types import standard_artifacts
from tfx.utils import proto_utils

from components import pusher
from components.model_card import CARD_FILE, ModelCardArtifact
from components.pusher import STAGING_PREFIX, Executor, Pusher, wait_for_free_version
from tfdet.export.serving import CARD_PATH, is_complete, latest_version


class Doubler(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
    def __call__(self, x):
        return 2.0 * x


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A Trainer's Model artifact holding a real SavedModel (under Format-Serving, where TFX puts it)."""
    model = standard_artifacts.Model()
    model.uri = str(tmp_path_factory.mktemp("model"))
    tf.saved_model.save(Doubler(), os.path.join(model.uri, "Format-Serving"))
    return model


def push(executor, model, serving_dir, pushed_uri, blessed=1, card_dir=None):
    blessing = standard_artifacts.ModelBlessing()
    blessing.set_int_custom_property("blessed", blessed)
    pushed = standard_artifacts.PushedModel()
    pushed.uri = str(pushed_uri)
    destination = pusher_pb2.PushDestination(filesystem=pusher_pb2.PushDestination.Filesystem(
        base_directory=str(serving_dir)))
    inputs = {"model": [model], "model_blessing": [blessing]}
    if card_dir is not None:  # the ModelCard component's output
        card = ModelCardArtifact()
        card.uri = str(card_dir)
        inputs["model_card"] = [card]
    executor.Do(inputs, {"pushed_model": [pushed]}, {"push_destination": proto_utils.proto_to_json(destination)})
    return pushed


def cut_short(serving_dir, seconds):
    """Versions a killed push left behind: variables copied, saved_model.pb not yet."""
    now = int(time.time())
    for version in range(now, now + seconds):
        os.makedirs(os.path.join(serving_dir, str(version), "variables"))
    return [str(v) for v in range(now, now + seconds)]


def test_a_push_right_after_one_cut_short_writes_a_whole_version_of_its_own(trained, tmp_path):
    serving_dir = tmp_path / "serving"
    partial = cut_short(serving_dir, 2)  # this second and the next are taken
    pushed = push(Executor(), trained, serving_dir, tmp_path / "pushed")
    destination = pushed.get_string_custom_property("pushed_destination")
    assert pushed.get_int_custom_property("pushed") == 1
    assert os.path.basename(destination) not in partial and int(os.path.basename(destination)) > int(partial[-1])
    assert is_complete(destination) and latest_version(str(serving_dir)) == destination
    assert tf.saved_model.load(destination)(tf.constant([1.5])).numpy().tolist() == [3.0]


def numbered(serving_dir) -> list:
    """The version directories TF Serving's file-system source would aspire: every name that is a number."""
    return sorted(name for name in os.listdir(serving_dir) if name.isdigit()) if os.path.isdir(serving_dir) else []


def test_a_version_appears_whole_or_not_at_all(trained, tmp_path, monkeypatch):
    serving_dir = tmp_path / "serving"
    seen = []
    copy = pusher._copy_file

    def watched(source, target):  # what TF Serving could list while each file is copied
        seen.append((os.path.relpath(target, serving_dir), numbered(serving_dir)))
        copy(source, target)

    monkeypatch.setattr(pusher, "_copy_file", watched)
    pushed = push(Executor(), trained, serving_dir, tmp_path / "pushed")
    version = os.path.basename(pushed.get_string_custom_property("pushed_destination"))
    assert len(seen) >= 3 and all(listed == [] for _, listed in seen)  # no number during the copy
    assert all(target.startswith(STAGING_PREFIX + version) for target, _ in seen)
    assert seen[-1][0].endswith("saved_model.pb")  # TF Serving's sign of a whole version comes last
    assert numbered(serving_dir) == [version] and os.listdir(serving_dir) == [version]
    assert is_complete(str(serving_dir / version))
    assert tf.saved_model.load(str(serving_dir / version))(tf.constant([2.0])).numpy().tolist() == [4.0]


def test_a_push_cut_short_leaves_no_number_and_the_next_push_clears_it(trained, tmp_path, monkeypatch, caplog):
    serving_dir = tmp_path / "serving"
    copy = pusher._copy_file

    def killed_at_the_last_file(source, target):
        if target.endswith("saved_model.pb"):
            raise KeyboardInterrupt  # as a kill would stop it: the finally of the push still removes its copy
        copy(source, target)

    monkeypatch.setattr(pusher, "_copy_file", killed_at_the_last_file)
    with pytest.raises(KeyboardInterrupt):
        push(Executor(), trained, serving_dir, tmp_path / "pushed")
    assert os.listdir(serving_dir) == []
    # a SIGKILL leaves the staging folder itself: still no number, and the next push removes it
    os.makedirs(serving_dir / f"{STAGING_PREFIX}1700000000-deadbeef" / "variables")
    monkeypatch.setattr(pusher, "_copy_file", copy)
    caplog.set_level(logging.INFO, logger="absl")
    pushed = push(Executor(), trained, serving_dir, tmp_path / "pushed2")
    assert os.listdir(serving_dir) == [os.path.basename(pushed.get_string_custom_property("pushed_destination"))]
    assert f"Removed {STAGING_PREFIX}1700000000-deadbeef, left by a push that was cut short." in caplog.messages


def test_an_object_store_gets_saved_model_pb_last_in_place(trained, tmp_path, monkeypatch):
    order = []
    copy = pusher.io_utils.fileio.copy  # every file TFX's io_utils writes goes through it
    monkeypatch.setattr(pusher, "is_local", lambda path: False)
    monkeypatch.setattr(pusher.io_utils.fileio, "copy", lambda source, target, *a, **k: order.append(target) or
                        copy(source, target, *a, **k))
    pushed = push(Executor(), trained, tmp_path / "serving", tmp_path / "pushed")
    destination = pushed.get_string_custom_property("pushed_destination")
    into_version = [target for target in order if target.startswith(destination + os.sep)]
    assert os.path.dirname(destination) == str(tmp_path / "serving")
    assert len(into_version) > 1 and is_complete(destination)
    # written once, after every other file of the version
    assert [t for t in into_version if t.endswith("saved_model.pb")] == [into_version[-1]] == [
        os.path.join(destination, "saved_model.pb")]


def test_tfx_own_pusher_records_the_cut_short_version_as_pushed(trained, tmp_path):
    # why components.pusher exists: remove it once TFX stops skipping the copy into an existing directory
    serving_dir = tmp_path / "serving"
    partial = cut_short(serving_dir, 3)
    pushed = push(tfx_pusher.Executor(), trained, serving_dir, tmp_path / "pushed")
    destination = pushed.get_string_custom_property("pushed_destination")
    assert os.path.basename(destination) in partial and not is_complete(destination)


def test_an_unblessed_model_is_not_pushed_and_does_not_wait(trained, tmp_path):
    serving_dir = tmp_path / "serving"
    cut_short(serving_dir, 30)
    started = time.monotonic()
    pushed = push(Executor(), trained, serving_dir, tmp_path / "pushed", blessed=0)
    assert pushed.get_int_custom_property("pushed") == 0 and time.monotonic() - started < 5
    assert latest_version(str(serving_dir)) is None


def test_a_serving_directory_someone_keeps_filling_is_a_clear_error(tmp_path):
    cut_short(tmp_path, 5)
    newest = int(time.time())
    with pytest.raises(RuntimeError) as error:
        wait_for_free_version(str(tmp_path), max_wait=0.2)
    message = str(error.value)
    assert any(message == f"every version directory under {tmp_path} for 0 s already exists (the newest: {v}); is "
               f"another process pushing there? Stop it and rerun." for v in (newest, newest + 1)), message


def test_the_pusher_keeps_tfx_node_id_and_arguments(trained):
    from tfx import v1 as tfx

    from components.model_card import ModelCardArtifact

    destination = tfx.proto.PushDestination(filesystem=tfx.proto.PushDestination.Filesystem(base_directory="/x"))
    model = tfx.dsl.Channel(type=standard_artifacts.Model)
    blessing = tfx.dsl.Channel(type=standard_artifacts.ModelBlessing)
    card = tfx.dsl.Channel(type=ModelCardArtifact)
    component = Pusher(model=model, model_blessing=blessing, push_destination=destination, model_card=card)
    assert component.id == "Pusher" and component.executor_spec.executor_class is Executor
    assert component.inputs == {"model": model, "model_blessing": blessing, "model_card": card}
    assert list(component.outputs) == ["pushed_model"]
    assert component.outputs["pushed_model"].type is standard_artifacts.PushedModel
    properties = component.exec_properties
    assert properties["custom_config"] == "null" and properties.get("infra_blessing") is None
    assert proto_utils.json_to_proto(properties["push_destination"], pusher_pb2.PushDestination()) == destination
    bare = Pusher(model=model, push_destination=destination)  # TFX's own arguments alone, as the pipeline gives them
    assert bare.inputs == {"model": model}


def test_a_write_on_a_full_disk_names_the_file_it_was_writing(tmp_path):
    # /dev/full answers every write with ENOSPC, as a full disk does; Python's failed write names no file
    source = tmp_path / "variables.data"
    source.write_bytes(b"\0" * (3 << 20))
    with pytest.raises(OSError) as raised:
        pusher._copy_file(str(source), "/dev/full")
    assert raised.value.errno == errno.ENOSPC and raised.value.filename == "/dev/full"
    assert str(raised.value) == "[Errno 28] No space left on device: '/dev/full'"


def test_only_paths_without_a_url_scheme_or_with_file_get_the_atomic_rename():
    assert [pusher.is_local(p) for p in ("/srv/models", "relative/models", "file:///srv/models",
                                         "gs://bucket/models", "s3://bucket/models", "hdfs://nn/models")] == [
        True, True, True, False, False, False]


def test_a_model_copied_into_an_existing_folder_arrives_byte_for_byte(trained, tmp_path):
    source = os.path.join(trained.uri, "Format-Serving")
    target = tmp_path / "version"
    (target / "variables").mkdir(parents=True)  # an object store's "folder" exists as soon as a name under it does
    pusher.copy_model(source, str(target))
    assert _files(str(target)) == _files(source)


def _files(directory):
    """Every file under ``directory``: relative path -> bytes."""
    return {os.path.relpath(os.path.join(root, name), directory): open(os.path.join(root, name), "rb").read()
            for root, _, names in os.walk(directory) for name in names}


@pytest.mark.parametrize("store", ["local", "object store"])
def test_the_model_card_arrives_inside_the_version(trained, tmp_path, monkeypatch, store):
    card = tmp_path / "model_card.html"
    card.write_text("<html>the card</html>")
    if store == "object store":
        monkeypatch.setattr(pusher, "is_local", lambda path: False)
    version = pusher.push_version(os.path.join(trained.uri, "Format-Serving"), str(tmp_path / "serving"), str(card))
    with open(os.path.join(version, CARD_PATH)) as handle:
        assert handle.read() == "<html>the card</html>"
    assert is_complete(version)


def test_a_file_url_pushes_into_the_folder_it_names(trained, tmp_path):
    version = pusher.push_version(os.path.join(trained.uri, "Format-Serving"), f"file://{tmp_path}/serving")
    assert os.path.dirname(version) == str(tmp_path / "serving") and is_complete(version)


def test_the_executor_pushes_the_model_card_it_is_given_and_records_the_version(trained, tmp_path, caplog):
    cards = tmp_path / "card"
    cards.mkdir()
    (cards / CARD_FILE).write_text("<html>blessed</html>")
    caplog.set_level(logging.INFO, logger="absl")
    pushed = push(Executor(), trained, tmp_path / "serving", tmp_path / "pushed", card_dir=cards)
    destination = pushed.get_string_custom_property("pushed_destination")
    with open(os.path.join(destination, CARD_PATH)) as handle:
        assert handle.read() == "<html>blessed</html>"
    assert pushed.get_string_custom_property("pushed_version") == os.path.basename(destination)
    assert f"Model written to serving path {destination}." in caplog.messages
    # a card artifact without its page (the ModelCard step could not draw one) does not stop the push
    bare = push(Executor(), trained, tmp_path / "serving2", tmp_path / "pushed2", card_dir=tmp_path / "no-card")
    destination = bare.get_string_custom_property("pushed_destination")
    assert is_complete(destination) and not os.path.exists(os.path.join(destination, CARD_PATH))


def test_a_destination_other_than_a_file_system_is_refused_by_name(trained, tmp_path):
    blessing = standard_artifacts.ModelBlessing()
    blessing.set_int_custom_property("blessed", 1)
    pushed = standard_artifacts.PushedModel()
    pushed.uri = str(tmp_path / "pushed")
    with pytest.raises(NotImplementedError) as error:
        Executor().Do({"model": [trained], "model_blessing": [blessing]}, {"pushed_model": [pushed]},
                      {"push_destination": "{}"})
    assert str(error.value) == "the tfdet Pusher writes to a file system; got "
