"""pipeline/configs.py: every knob is one PipelineConfig field, and its flag comes from the field."""

import argparse
import dataclasses

import pytest

from pipeline import configs
from pipeline.configs import PipelineConfig, add_flags, from_flags


def parse(*argv, defaults=None):
    parser = argparse.ArgumentParser()
    add_flags(parser, defaults)
    return from_flags(parser.parse_args(list(argv)), defaults)


def test_no_flags_give_the_module_constants():
    config = parse()
    assert config == PipelineConfig()
    assert config.min_map50 == configs.MIN_MAP50 and config.drift_thresholds == configs.DRIFT_THRESHOLDS
    assert config.drift_thresholds is not configs.DRIFT_THRESHOLDS  # a copy: a run cannot change the constant


def test_every_field_with_a_flag_has_one_named_after_it():
    parser = argparse.ArgumentParser()
    add_flags(parser)
    flags = {option for action in parser._actions for option in action.option_strings}
    for field in dataclasses.fields(PipelineConfig):
        assert (("--" + field.name.replace("_", "-")) in flags) == field.metadata["flag"], field.name


def test_scalar_list_and_dict_flags():
    config = parse("--min-map50", "0.3", "--seed", "7", "--beam-args=--parallelism=4", "--beam-args=--a=b",
                   "--drift-thresholds", "classes=0.3", "box_size=0.5", "--distribution", "none")
    assert config.min_map50 == 0.3 and config.seed == 7
    assert config.beam_args == ["--parallelism=4", "--a=b"]
    assert config.drift_thresholds == {**configs.DRIFT_THRESHOLDS, "classes": 0.3, "box_size": 0.5}
    assert config.distribution is None


def test_a_dict_flag_names_its_keys_when_given_an_unknown_one(capsys):
    with pytest.raises(SystemExit):
        parse("--drift-thresholds", "colour=0.3")
    assert "expected NAME=VALUE with NAME one of classes, box_size, box_aspect, boxes_per_image, image_size, got " \
           "'colour=0.3'" in capsys.readouterr().err


def test_help_shows_what_an_unset_knob_means():
    parser = argparse.ArgumentParser()
    add_flags(parser)
    shown = {action.dest: action.help for action in parser._actions}
    assert shown["train_steps"] == "training steps (default: the model's recipe)"
    assert shown["seed"].endswith("(default: unseeded)")
    assert shown["distribution"].endswith("(default: none)")
    assert shown["min_map50"].endswith(f"(default: {configs.MIN_MAP50})")


def test_other_defaults_come_from_the_runner():
    kubeflow = PipelineConfig(distribution=configs.KUBEFLOW_DISTRIBUTION)
    assert parse(defaults=kubeflow).distribution == "mirrored"
