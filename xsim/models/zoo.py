"""Model zoo: layer graphs of published networks, as mapped onto crossbars.

The topologies follow the reference implementations (torchvision for ResNet-18/50, VGG-16 and
MobileNetV2; He et al. 2016 for the CIFAR ResNet-20; LeCun et al. 1998 for LeNet-5) with batch
norm folded into the preceding convolution, so every convolution that had batch norm carries a
bias.  Dropout is an identity at inference and is omitted.  Layer names follow torchvision's
module names where there is one (``layer1.0.conv1``, ``features.3.conv.1``), so trained weights
map onto them by name.

Every builder takes ``input_shape`` and ``num_classes``; a shape too small for the network's
down-sampling raises ValueError naming the first layer whose output would be empty.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from xsim.models.graph import Network
from xsim.models.spec import GraphBuilder


def _classifier(b: GraphBuilder, num_classes: int) -> None:
    """Global average pool, flatten and the final fully connected layer."""
    b.avgpool("avgpool")
    b.flatten("flatten")
    b.linear("fc", num_classes)


def lenet5(input_shape: Sequence[int] = (1, 32, 32), num_classes: int = 10) -> Network:
    """LeNet-5: conv5x5·6 → pool → conv5x5·16 → pool → fc120 → fc84 → fc10 (ReLU, max pool)."""
    b = GraphBuilder("lenet5", input_shape)
    b.conv("conv1", 6, 5, activation="relu")
    b.maxpool("pool1", 2)
    b.conv("conv2", 16, 5, activation="relu")
    b.maxpool("pool2", 2)
    b.flatten("flatten")
    b.linear("fc1", 120, activation="relu")
    b.linear("fc2", 84, activation="relu")
    b.linear("fc3", num_classes)
    return b.build(num_classes)


def mlp(input_shape: Sequence[int] = (1, 8, 8), num_classes: int = 10, hidden: int = 64) -> Network:
    """Two-layer perceptron on flattened images (default: 8x8 digits → 64 → 10)."""
    b = GraphBuilder("mlp", input_shape)
    b.flatten("flatten")
    b.linear("fc1", hidden, activation="relu")
    b.linear("fc2", num_classes)
    return b.build(num_classes)


def _basic_block(b: GraphBuilder, prefix: str, planes: int, stride: int) -> None:
    """ResNet basic block: two 3x3 convs, 1x1 projection shortcut when the shape changes."""
    x = b.last
    b.conv(f"{prefix}.conv1", planes, 3, stride=stride, padding=1, activation="relu")
    branch = b.conv(f"{prefix}.conv2", planes, 3, padding=1)
    shortcut = x
    if stride != 1 or b.shape(x)[0] != planes:
        shortcut = b.conv(f"{prefix}.downsample", planes, 1, stride=stride, inputs=x)
    b.add(f"{prefix}.add", (branch, shortcut), activation="relu")


def _bottleneck(b: GraphBuilder, prefix: str, planes: int, stride: int) -> None:
    """ResNet v1.5 bottleneck: 1x1 → 3x3 (carries the stride) → 1x1 with 4x expansion."""
    x = b.last
    out = planes * 4
    b.conv(f"{prefix}.conv1", planes, 1, activation="relu")
    b.conv(f"{prefix}.conv2", planes, 3, stride=stride, padding=1, activation="relu")
    branch = b.conv(f"{prefix}.conv3", out, 1)
    shortcut = x
    if stride != 1 or b.shape(x)[0] != out:
        shortcut = b.conv(f"{prefix}.downsample", out, 1, stride=stride, inputs=x)
    b.add(f"{prefix}.add", (branch, shortcut), activation="relu")


def _imagenet_resnet(
    name: str,
    block: Callable[[GraphBuilder, str, int, int], None],
    depths: Sequence[int],
    input_shape: Sequence[int],
    num_classes: int,
) -> Network:
    b = GraphBuilder(name, input_shape)
    b.conv("conv1", 64, 7, stride=2, padding=3, activation="relu")
    b.maxpool("maxpool", 3, stride=2, padding=1)
    for stage, (planes, depth) in enumerate(zip((64, 128, 256, 512), depths, strict=True)):
        for i in range(depth):
            stride = 2 if stage > 0 and i == 0 else 1
            block(b, f"layer{stage + 1}.{i}", planes, stride)
    _classifier(b, num_classes)
    return b.build(num_classes)


def resnet18(input_shape: Sequence[int] = (3, 224, 224), num_classes: int = 1000) -> Network:
    """torchvision ResNet-18 (basic blocks 2-2-2-2)."""
    return _imagenet_resnet("resnet18", _basic_block, (2, 2, 2, 2), input_shape, num_classes)


def resnet50(input_shape: Sequence[int] = (3, 224, 224), num_classes: int = 1000) -> Network:
    """torchvision ResNet-50 v1.5 (bottlenecks 3-4-6-3, stride on the 3x3 conv)."""
    return _imagenet_resnet("resnet50", _bottleneck, (3, 4, 6, 3), input_shape, num_classes)


def resnet20(input_shape: Sequence[int] = (3, 32, 32), num_classes: int = 10) -> Network:
    """CIFAR ResNet-20 (He et al. 2016, 3 stages of 3 basic blocks, 16-32-64 channels).

    The stage-changing shortcuts are 1x1 projection convolutions (the paper's option B): a
    zero-padding shortcut (option A) has no layer kind here.
    """
    b = GraphBuilder("resnet20", input_shape)
    b.conv("conv1", 16, 3, padding=1, activation="relu")
    for stage, planes in enumerate((16, 32, 64)):
        for i in range(3):
            stride = 2 if stage > 0 and i == 0 else 1
            _basic_block(b, f"layer{stage + 1}.{i}", planes, stride)
    _classifier(b, num_classes)
    return b.build(num_classes)


def vgg16(input_shape: Sequence[int] = (3, 224, 224), num_classes: int = 1000) -> Network:
    """torchvision VGG-16 without batch norm (configuration D).

    torchvision's adaptive 7x7 average pool is the identity at 224x224 and is omitted; at other
    input sizes the first classifier layer reads the whole last feature map instead.
    """
    cfg = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
    b = GraphBuilder("vgg16", input_shape)
    for i, item in enumerate(cfg):
        if item == "M":
            b.maxpool(f"features.{i}", 2)
        else:
            b.conv(f"features.{i}", item, 3, padding=1, activation="relu")
    b.flatten("flatten")
    b.linear("classifier.0", 4096, activation="relu")
    b.linear("classifier.3", 4096, activation="relu")
    b.linear("classifier.6", num_classes)
    return b.build(num_classes)


def mobilenetv2(input_shape: Sequence[int] = (3, 224, 224), num_classes: int = 1000) -> Network:
    """torchvision MobileNetV2, width 1.0: inverted residuals with linear bottlenecks.

    Expansion 1x1 and depthwise 3x3 convs use ReLU6; the projection 1x1 conv and the residual add
    have no activation.  At width 1.0 torchvision's channel rounding leaves the channels as listed.
    """
    # (expansion t, output channels c, repeats n, first stride s) from the paper's Table 2.
    settings = (
        (1, 16, 1, 1),
        (6, 24, 2, 2),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    )
    b = GraphBuilder("mobilenetv2", input_shape)
    b.conv("features.0", 32, 3, stride=2, padding=1, activation="relu6")
    index = 1
    for t, c, n, s in settings:
        for i in range(n):
            stride = s if i == 0 else 1
            x = b.last
            cin = b.shape(x)[0]
            hidden = cin * t
            prefix = f"features.{index}.conv"
            j = 0
            if t != 1:
                b.conv(f"{prefix}.{j}", hidden, 1, activation="relu6")
                j += 1
            b.conv(
                f"{prefix}.{j}",
                hidden,
                3,
                stride=stride,
                padding=1,
                groups=hidden,
                activation="relu6",
            )
            branch = b.conv(f"{prefix}.{j + 1}", c, 1)
            if stride == 1 and cin == c:
                b.add(f"features.{index}.add", (branch, x))
            index += 1
    b.conv(f"features.{index}", 1280, 1, activation="relu6")
    b.avgpool("avgpool")
    b.flatten("flatten")
    b.linear("classifier.1", num_classes)
    return b.build(num_classes)


ZOO: dict[str, Callable[..., Network]] = {
    "lenet5": lenet5,
    "mlp": mlp,
    "resnet20": resnet20,
    "resnet18": resnet18,
    "resnet50": resnet50,
    "vgg16": vgg16,
    "mobilenetv2": mobilenetv2,
}


class UnknownModelError(KeyError, ValueError):
    """A model name not in :data:`ZOO` (both a KeyError and a ValueError for callers)."""

    def __str__(self) -> str:
        # KeyError's str() would quote the message.
        return str(self.args[0])


def build_model(
    name: str, *, input_shape: Sequence[int] | None = None, num_classes: int | None = None
) -> Network:
    """Build the zoo model ``name``; ``None`` keeps the model's default input shape / classes.

    Raises :class:`UnknownModelError` for a name not in :data:`ZOO` and ValueError for an input
    shape too small for the network or a non-positive class count.
    """
    try:
        builder = ZOO[name]
    except (KeyError, TypeError):
        raise UnknownModelError(
            f"unknown model {name!r}; known models: {', '.join(sorted(ZOO))}"
        ) from None
    kwargs: dict[str, object] = {}
    if input_shape is not None:
        kwargs["input_shape"] = input_shape
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    return builder(**kwargs)
