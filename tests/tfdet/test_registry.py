import pytest

from tfdet.registry import PIPELINE_STEPS, Registry, RegistryError


def make_registry():
    things = Registry("thing")

    @things.register("AnchorHead")
    class AnchorHead:
        def __init__(self, num_classes=80, act="relu"):
            self.num_classes, self.act = num_classes, act

    @things.register("max_iou_assigner", aliases=("MaxIoUAssigner",))
    def max_iou(pos_iou_thr=0.5):
        return ("assigner", pos_iou_thr)

    return things, AnchorHead


def test_build_passes_kwargs_and_defaults_without_mutating_config():
    things, head_class = make_registry()
    config = dict(name="AnchorHead", num_classes=20)
    head = things.build(config, act="gelu")
    assert isinstance(head, head_class)
    assert (head.num_classes, head.act) == (20, "gelu")
    assert config == dict(name="AnchorHead", num_classes=20)
    assert things.build(dict(name="MaxIoUAssigner", pos_iou_thr=0.7)) == ("assigner", 0.7)


def test_lookup_ignores_case_and_separators():
    things, head_class = make_registry()
    assert things.get("anchor_head") is head_class
    assert things.get("ANCHORHEAD") is head_class
    assert "Max-IoU-Assigner" in things
    assert "nothing" not in things


def test_unknown_name_lists_names_and_closest_match():
    things, _ = make_registry()
    with pytest.raises(RegistryError) as error:
        things.get("AnchorHaed")
    assert str(error.value) == (
        "unknown thing 'AnchorHaed'. Did you mean 'AnchorHead'? "
        "Registered thing names: AnchorHead, MaxIoUAssigner, max_iou_assigner"
    )


def test_unknown_name_without_close_match_has_no_hint():
    things, _ = make_registry()
    with pytest.raises(RegistryError, match=r"^unknown thing 'zzz'\. Registered thing names: AnchorHead"):
        things.get("zzz")


def test_config_without_name_says_what_to_add():
    things, _ = make_registry()
    with pytest.raises(RegistryError, match=r"thing config \{'num_classes': 3\} has no 'name' key; add one of"):
        things.build({"num_classes": 3})


def test_bad_kwargs_name_the_entry():
    things, _ = make_registry()
    with pytest.raises(TypeError, match=r"cannot build thing 'AnchorHead' from .*unexpected keyword argument 'colour'"):
        things.build(dict(name="AnchorHead", colour="red"))


def test_duplicate_names_are_refused():
    things, _ = make_registry()
    with pytest.raises(RegistryError, match="thing name 'anchorhead' is already registered"):
        things.register("anchorhead")(object)


def test_pipeline_steps_are_registered_under_the_seed_names():
    import tfdet.dataio.pipeline  # noqa: F401  (registers the steps)

    for name in ("InputReadRecordFiles", "RandomResized", "Normalize", "Resize", "RandomFlip", "ColorJitter"):
        assert name in PIPELINE_STEPS


def test_builtin_entries_load_on_first_lookup():
    import subprocess
    import sys

    code = ("from tfdet.registry import NECKS, LOSSES, PIPELINE_STEPS; "
            "print(sorted(NECKS.names), 'focalloss' in LOSSES, len(PIPELINE_STEPS) >= 6)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['FPN'] True True"
