"""RetinaNet with an ImageNet ResNet-50 (Keras applications weights), FPN P3-P7, 512x512.

mmdetection's ``retinanet_r50_fpn`` layout: frozen BatchNorm, stem and stage 1 frozen, FPN from C3
with extra levels convolved from C5, a 4-conv RetinaNet head with 9 anchors per location. The
backbone is Keras' caffe-style ResNet-50 (stride on the first 1x1 conv), so inputs are normalised
as the weights expect (ImageNet mean, std 1/255). The recipe is mmdetection's 1x schedule scaled to
one machine: SGD, momentum 0.9, weight decay 1e-4, linear warm-up, cosine decay.
"""

from tfdet.weights.keras_resnet import CAFFE_MEAN_RGB
from tfdet.zoo._parts import RETINA_HEAD

SIZE = 512
MEAN, STD = tuple(v / 255.0 for v in CAFFE_MEAN_RGB), (1 / 255.0,) * 3

MODEL = dict(
    backbone=dict(name="resnet", depth=50, input_size=(SIZE, SIZE), style="caffe", frozen_stages=1, norm_eval=True,
                  init_cfg=dict(name="Pretrained", checkpoint="keras:resnet50_imagenet")),
    neck=dict(name="fpn", start_level=1, num_nb_ins=4, num_nb_outs=5, filters=256, add_extra_convs=True,
              extra_convs_on="on_input"),
    head=dict(RETINA_HEAD, name="RetinaHead", num_classes=80, stacked_convs=4, feat_channels=256),
    mean=MEAN,
    std=STD,
)

# mmdetection's 1x schedule: 12 COCO epochs = 90k steps of 16 images, SGD 0.01 (its step decay here cosine)
TRAIN = dict(batch_size=16, steps=90000, optimizer="sgd", learning_rate=0.01, momentum=0.9, weight_decay=1e-4,
             warmup_steps=500, clipnorm=35.0)


def train_steps(pattern: str, size: int = SIZE) -> list:
    """The training input pipeline; ``size``: the network input (a multiple of 32)."""
    return [
        dict(name="InputReadRecordFiles", pattern_file=pattern, shuffle=True),
        dict(name="Resize", height=size, width=size),
        dict(name="RandomFlip", direction="horizontal", p=0.5),
        dict(name="Normalize", mean=MEAN, std=STD),
    ]
