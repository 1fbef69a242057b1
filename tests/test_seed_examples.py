"""The seed design document's Step 01 and Step 02 code, run as written on the default data."""

import glob
import os

import numpy as np


def test_seed_step_01_convert(tmp_path, default_data):
    from tfdet.dataio.synthetic import generate_records

    # Step 01: group the dataset as list[{'image_path', 'bboxes', 'labels'}], then convert.
    datasets_step2 = generate_records(str(tmp_path / "images"), 6, seed=5)
    from tfdet.dataio.tfrecord_utilts import convert_dataset_to_tfrecord
    convert_dataset_to_tfrecord(datasets_step2, num_shards=16, output_dir=str(tmp_path / "directory"))
    assert len(glob.glob(str(tmp_path / "directory" / "*.tfrecord"))) == 16


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
