"""The backbones samplesize can build, by config name (no TensorFlow import).

Kept apart from `models` so that config validation and `samplesize plan` stay
fast and never import TensorFlow.
"""

from typing import NamedTuple


class Backbone(NamedTuple):
    module: str  # keras.applications sub-module holding preprocess_input
    constructor: str  # keras.applications class name
    min_size: int  # smallest input side the architecture accepts


# Names users write in sweep.yaml (`model.backbone`) -> keras.applications.
APPLICATIONS = {
    "mobilenet_v2": Backbone("mobilenet_v2", "MobileNetV2", 32),
    "mobilenet_v3_small": Backbone("mobilenet_v3", "MobileNetV3Small", 32),
    "mobilenet_v3_large": Backbone("mobilenet_v3", "MobileNetV3Large", 32),
    "efficientnet_b0": Backbone("efficientnet", "EfficientNetB0", 32),
    "efficientnet_b1": Backbone("efficientnet", "EfficientNetB1", 32),
    "efficientnet_b2": Backbone("efficientnet", "EfficientNetB2", 32),
    "efficientnet_b3": Backbone("efficientnet", "EfficientNetB3", 32),
    "efficientnet_v2_b0": Backbone("efficientnet_v2", "EfficientNetV2B0", 32),
    "resnet50": Backbone("resnet50", "ResNet50", 32),
    "resnet50_v2": Backbone("resnet_v2", "ResNet50V2", 32),
    "densenet121": Backbone("densenet", "DenseNet121", 32),
    "convnext_tiny": Backbone("convnext", "ConvNeXtTiny", 32),
    "inception_v3": Backbone("inception_v3", "InceptionV3", 75),
    "xception": Backbone("xception", "Xception", 71),
}

SMALL_CNN = "small_cnn"
BACKBONE_NAMES = (SMALL_CNN, *APPLICATIONS)
