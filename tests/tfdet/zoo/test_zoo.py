import pytest
import tf_keras

import tfdet
from tfdet.dataio.pipeline import build_steps
from tfdet.models.architectures.one_stage import ConfigOneStage
from tfdet.registry import RegistryError
from tfdet.training import build_optimizer
from tfdet.training.work_dir import load_spec
from tfdet.zoo import ENTRIES, get_entry, merge_sections, model_config, train_recipe


def test_list_models_filters_by_pattern():
    assert tfdet.list_models() == sorted(ENTRIES)
    assert tfdet.list_models("*resnet50*") == ["atss_resnet50_fpn_cpu", "retinanet_resnet50_fpn",
                                                "retinanet_resnet50_fpn_cpu"]
    with pytest.raises(RegistryError, match="unknown model 'cpu_smal'. Did you mean 'cpu_small'?"):
        get_entry("cpu_smal")


@pytest.mark.parametrize("name", ENTRIES)
def test_every_entry_is_a_valid_config_pipeline_and_recipe(name):
    entry = get_entry(name)
    config = ConfigOneStage(**model_config(name, pretrained=False))
    assert "init_cfg" not in config.backbone
    steps = build_steps(entry.train_steps("data/*.tfrecord"))
    normalize = [s for s in steps if type(s).__name__ == "Normalize"][-1]
    assert tuple(normalize.mean) == tuple(config.mean) and tuple(normalize.std) == tuple(config.std)
    optimizer = build_optimizer(train_recipe(name), 100)
    assert isinstance(optimizer, tf_keras.optimizers.Optimizer)


def test_overrides_change_nested_keys_without_touching_the_entry():
    config = model_config("cpu_small", num_classes=3, **{"backbone.width_factor": 0.5},
                          head=dict(stacked_convs=1, norm_cfg=dict(groups=8)), mixed_precision="mixed_bfloat16")
    assert config["head"]["num_classes"] == 3 and config["head"]["stacked_convs"] == 1
    assert config["head"]["norm_cfg"] == {"name": "GN", "groups": 8}  # merged, not replaced
    assert config["backbone"]["width_factor"] == 0.5 and config["mixed_precision"] == "mixed_bfloat16"
    assert get_entry("cpu_small").MODEL["head"]["num_classes"] == 5
    with pytest.raises(KeyError, match="override 'bakbone.depth': the config has no section 'bakbone'; sections: "
                                       "backbone, neck, head"):
        model_config("cpu_small", **{"bakbone.depth": 18})


def test_pretrained_selects_the_backbone_weights():
    assert model_config("retinanet_resnet50_fpn_cpu")["backbone"]["init_cfg"]["checkpoint"] == "keras:resnet50_imagenet"
    assert "init_cfg" not in model_config("retinanet_resnet50_fpn_cpu", pretrained=False)["backbone"]
    chosen = model_config("retinanet_resnet50_fpn", pretrained="weights/r50.safetensors")
    assert chosen["backbone"]["init_cfg"] == {"name": "Pretrained", "checkpoint": "weights/r50.safetensors"}
    with pytest.raises(ValueError, match="zoo model 'cpu_small' has no pretrained weights; pass "
                                         "pretrained='<checkpoint>' or choose one of atss_resnet50_fpn_cpu, "
                                         "retinanet_resnet50_fpn, retinanet_resnet50_fpn_cpu"):
        model_config("cpu_small", pretrained=True)


def test_create_model_builds_the_detector():
    model = tfdet.create_model("tiny", num_classes=3, **{"head.feat_channels": 16})
    assert model.built and model.num_classes == 3 and model.head.feat_channels == 16


def test_an_entry_changes_its_base_only_where_it_says():
    atss, retina = get_entry("atss_resnet50_fpn_cpu"), get_entry("retinanet_resnet50_fpn_cpu")
    assert atss.base == "retinanet_resnet50_fpn_cpu" and retina.base == "retinanet_resnet50_fpn"
    assert ({k: v for k, v in atss.MODEL.items() if k != "head"}
            == {k: v for k, v in retina.MODEL.items() if k != "head"})
    assert atss.TRAIN == retina.TRAIN and atss.train_steps is retina.train_steps
    # another head is a new component: none of the RetinaNet head's arguments leak into it
    assert atss.MODEL["head"]["name"] == "ATSSHead" and "sampler" not in atss.MODEL["head"]
    assert atss.MODEL["head"]["assigner"] == {"name": "atss_assigner", "topk": 9}
    # a derived entry's changes, and only they, differ from its base
    base = get_entry("retinanet_resnet50_fpn")
    assert retina.MODEL["backbone"] == dict(base.MODEL["backbone"], frozen_stages=2)
    assert retina.TRAIN["optimizer"] == "adamw" and "momentum" not in retina.TRAIN  # another optimizer: a new recipe


def test_merge_sections_merges_dicts_and_replaces_a_renamed_component():
    base = {"name": "fpn", "filters": 256, "inner": {"a": 1, "b": 2}, "list": [1, 2]}
    assert merge_sections(base, {"filters": 128, "inner": {"b": 3}, "list": [3]}) == {
        "name": "fpn", "filters": 128, "inner": {"a": 1, "b": 3}, "list": [3]}
    assert merge_sections(base, {"name": "pafpn", "filters": 64}) == {"name": "pafpn", "filters": 64}
    assert base["inner"] == {"a": 1, "b": 2}  # the base is not changed
    recipe = {"optimizer": "sgd", "momentum": 0.9, "learning_rate": 0.01}
    assert merge_sections(recipe, {"learning_rate": 0.02}, identity="optimizer") == dict(recipe, learning_rate=0.02)
    assert merge_sections(recipe, {"optimizer": "adam"}, identity="optimizer") == {"optimizer": "adam"}


def test_a_config_file_can_start_from_a_zoo_entry(tmp_path):
    path = tmp_path / "my_trees.py"
    path.write_text('BASE = "retinanet_resnet50_fpn_cpu"\nMODEL = dict(head=dict(stacked_convs=4))\n'
                    'TRAIN = dict(steps=1000)\n')
    spec = load_spec(str(path))
    assert spec.MODEL["head"]["stacked_convs"] == 4 and spec.MODEL["head"]["feat_channels"] == 128
    assert spec.TRAIN == dict(train_recipe("retinanet_resnet50_fpn_cpu"), steps=1000)
    bare = tmp_path / "bare.py"
    bare.write_text("MODEL = {}\n")
    with pytest.raises(ValueError, match="lacks TRAIN, train_steps \\(and names no BASE to take them from\\)"):
        load_spec(str(bare))
