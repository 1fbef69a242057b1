"""The seed design document's Step 01 and Step 02 code, run as written on the default data."""

import glob
import os

import numpy as np
import pytest


def test_seed_step_01_convert(tmp_path, default_data):
    from tfdet.dataio.synthetic import generate_records

    # Step 01: group the dataset as list[{'image_path', 'bboxes', 'labels'}], then convert.
    datasets_step2 = generate_records(str(tmp_path / "images"), 6, seed=5)
    from tfdet.dataio.tfrecord_utilts import convert_dataset_to_tfrecord
    convert_dataset_to_tfrecord(datasets_step2, num_shards=16, output_dir=str(tmp_path / "directory"))
    # num_shards is the most shards: 6 records fill 6, none is left empty
    assert sorted(os.path.basename(p) for p in glob.glob(str(tmp_path / "directory" / "*.tfrecord"))) == [
        f"data-{i:05d}-of-00006.tfrecord" for i in range(6)]


def test_seed_step_02_pipeline(default_data):
    directory = default_data
    # --- the seed's code, with its missing comma after std restored ---
    from tfdet.dataio.pipeline import pipeline

    steps_training_ds = [
        dict(
            name='InputReadRecordFiles',
            pattern_file=f'{directory}/*.tfrecord'
        ),
        dict(
            name='RandomResized',
            height=512,
            width=512,
            scale=(0.8, 1.0),
            ratio=(0.75, 1.3333333333333333)
        ),
        dict(
            name='Normalize',
            mean=(0.485, 0.456, 0.406),
            std=(0.229, 0.224, 0.225),
            p=1.
        )
    ]
    train_ds = pipeline(
        steps_training_ds
    )

    def keep_only(example):
        return {
            'image': example['image'],
            'bboxes': example['bboxes'] * 512.,
            'labels': example['labels'],
            'mask': example['mask']
        }
    train_ds = train_ds.map(lambda value: keep_only(value)).padded_batch(
        4, drop_remainder=True
    )
    # --- end of the seed's code ---
    batches = list(train_ds.as_numpy_iterator())
    assert len(batches) == (48 + 16) // 4
    for batch in batches:
        assert batch["image"].shape == (4, 512, 512, 3)
        real = batch["bboxes"][batch["mask"]]
        assert np.all(real >= 0) and np.all(real <= 512) and np.all(real[:, 2:] > real[:, :2])
        assert np.all(batch["bboxes"][~batch["mask"]] == 0)
    assert os.path.exists(os.path.join(directory, "label_map.json"))


@pytest.mark.long(2.5)
def test_seed_step_03_model(tmp_path, default_data):
    """Step 03 as written, with the seed's slips mended: ``config=config_model``, a callback list, and the
    unfinished ``....`` of fit filled with ``steps_per_epoch=1`` to keep a ResNetV2-50 at 512x512 test-sized."""
    import tensorflow as tf

    from tfdet.dataio.pipeline import pipeline

    train_ds = pipeline([
        dict(name='InputReadRecordFiles', pattern_file=f'{default_data}/train-*.tfrecord'),
        dict(name='RandomResized', height=512, width=512, scale=(0.8, 1.0), ratio=(0.75, 1.3333333333333333)),
        dict(name='Normalize', mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), p=1.),
    ])
    train_ds = train_ds.map(lambda e: {'image': e['image'], 'bboxes': e['bboxes'] * 512., 'labels': e['labels'],
                                       'mask': e['mask']}).padded_batch(4, drop_remainder=True)
    # --- the seed's code ---
    from tfdet.models.architectures.one_stage import ConfigOneStage, OneStageModel  # noqa: I001  (the seed's order)
    from tfdet.models.callbacks import CheckpointResume
    config_model = dict(
        backbone=dict(
            name='resnetv2',
            input_size=(512, 512),
            nb_blocks=(3, 4, 6, 3),
            width_factor=1,
            pool_size=14,
            crop_pct=1.0,
        ),

        neck=dict(
            name='fpn',
            start_level=1,
            num_nb_ins=4,
            num_nb_outs=5,
            filters=256,
            add_extra_convs=True,
            extra_convs_on='on_input',
            relu_before_extra_convs=False,
        ),

        head=dict(
            name="AnchorHead",
            anchor_config=dict(
                octave_base_scale=4,
                scales_per_octave=3,
                ratios=[0.5, 1.0, 2.0],
                strides=[8, 16, 32, 64, 128],
                center_offset=0,),
            assigner=dict(
                name='max_iou_assigner',
                pos_iou_thr=0.5,
                neg_iou_thr=0.4,
                min_pos_iou=0,
            ),
            sampler=dict(
                name='pseudo'
            ),
            bbox_encode=dict(
                name='deltaxywh',
                scale_factors=[1., 1., 1., 1.]),
            act_cfg='relu',
            num_classes=20,

            loss_cls={"name": 'focalloss', 'use_sigmoid': True, 'loss_weight': 1.0},
            loss_bbox={'name': 'SmoothL1Loss', 'beta': 1.0 / 9.0, 'loss_weight': 1.0},

            train_cfg=dict(
                batch_size=4
            )
        )
    )
    model = OneStageModel(ConfigOneStage(**config_model))
    model.compile(optimizer=tf.optimizers.Adam(1e-4))
    callback = [CheckpointResume(str(tmp_path / "checkpoints"))]
    history = model.fit(train_ds.prefetch(4), epochs=4, callbacks=callback, steps_per_epoch=1, verbose=0)
    # --- end of the seed's code ---
    assert len(history.history["loss"]) == 4 and all(np.isfinite(history.history["loss"]))
    assert 25_000_000 < model.count_params() < 45_000_000  # ResNetV2-50 (23.5 M) + FPN + RetinaNet head
    assert CheckpointResume(str(tmp_path / "checkpoints")).initial_epoch == 4
