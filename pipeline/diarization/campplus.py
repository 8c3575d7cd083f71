"""The CAM++ speaker-embedding network (Wang et al., Interspeech 2023), written from its description.

The layout follows the published architecture so that the 3D-Speaker ``campplus_cn_en_common``
state dict loads with ``strict=True``; the parameter names below are dictated by that file:

- ``head`` (FCM): a 2D conv front end over the 80 x T fbank image. Two stages of two residual
  blocks, each stage halving the frequency axis (never time), then one more frequency-halving
  conv: 32 channels x 10 bands = 320 features per frame.
- ``xvector``: a TDNN (kernel 5, stride 2 in time), then three densely connected blocks of
  12, 24 and 16 CAM layers (growth 32, bottleneck 128, dilation 1, 2, 2), each followed by a
  transit layer that halves the channels; BN-ReLU, mean+std statistics pooling, and a 1x1
  dense layer with a non-affine batch norm giving a 192-dim embedding.
- Context-aware masking: every dense layer's local conv output is gated by a sigmoid of a
  context vector, the utterance mean plus the mean of the 100-frame segment the frame is in.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - torch's own convention
from torch import nn

EMBEDDING_DIM = 192
FBANK_BINS = 80
# (layers, dilation) of the three dense blocks; the checkpoint has 12 + 24 + 16 layers.
DENSE_BLOCKS = ((12, 1), (24, 2), (16, 2))
GROWTH = 32  # channels each dense layer adds
BOTTLENECK = 128  # channels inside each dense layer (4 x growth)
CONTEXT_SEGMENT = 100  # frames per local-context segment of the masking: 2 s after the TDNN halves the 10 ms frame rate


def _bn_relu(channels: int) -> nn.Sequential:
    # The checkpoint names this pair ``<prefix>.batchnorm``; the ReLU has no parameters.
    block = nn.Sequential()
    block.add_module("batchnorm", nn.BatchNorm1d(channels))
    block.add_module("relu", nn.ReLU(inplace=True))
    return block


class _ResBlock2d(nn.Module):
    """Two 3x3 convs with a skip; ``freq_stride`` > 1 downsamples the frequency axis only."""

    def __init__(self, channels: int, freq_stride: int) -> None:
        super().__init__()
        stride = (freq_stride, 1)
        self.conv1 = nn.Conv2d(channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.shortcut = nn.Sequential()
        if freq_stride != 1:
            self.shortcut = nn.Sequential(
                nn.Conv2d(channels, channels, 1, stride=stride, bias=False), nn.BatchNorm2d(channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + self.shortcut(x))


class FrontEnd(nn.Module):
    """FCM: (batch, bins, frames) -> (batch, 32 * bins / 8, frames)."""

    def __init__(self, bins: int = FBANK_BINS, channels: int = 32) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, channels, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.layer1 = nn.Sequential(_ResBlock2d(channels, 2), _ResBlock2d(channels, 1))
        self.layer2 = nn.Sequential(_ResBlock2d(channels, 2), _ResBlock2d(channels, 1))
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=(2, 1), padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.out_channels = channels * (bins // 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x.unsqueeze(1))))
        y = self.layer2(self.layer1(y))
        y = F.relu(self.bn2(self.conv2(y)))
        batch, channels, bands, frames = y.shape
        return y.reshape(batch, channels * bands, frames)


class _Tdnn(nn.Module):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.linear = nn.Conv1d(in_channels, out_channels, 5, stride=2, padding=2, bias=False)
        self.nonlinear = _bn_relu(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y: torch.Tensor = self.nonlinear(self.linear(x))
        return y


class _ContextMask(nn.Module):
    """A dilated local conv whose output is gated by utterance- and segment-level context."""

    def __init__(self, channels: int, out_channels: int, dilation: int) -> None:
        super().__init__()
        self.linear_local = nn.Conv1d(channels, out_channels, 3, padding=dilation, dilation=dilation, bias=False)
        self.linear1 = nn.Conv1d(channels, channels // 2, 1)
        self.linear2 = nn.Conv1d(channels // 2, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        frames = x.shape[-1]
        # Mean of each 100-frame segment (the last one over the frames it has), held over its frames.
        segments = F.avg_pool1d(x, CONTEXT_SEGMENT, CONTEXT_SEGMENT, ceil_mode=True)
        local = segments.repeat_interleave(CONTEXT_SEGMENT, dim=-1)[..., :frames]
        context = x.mean(dim=-1, keepdim=True) + local
        gate = torch.sigmoid(self.linear2(F.relu(self.linear1(context))))
        y: torch.Tensor = self.linear_local(x) * gate
        return y


class _DenseLayer(nn.Module):
    def __init__(self, in_channels: int, dilation: int) -> None:
        super().__init__()
        self.nonlinear1 = _bn_relu(in_channels)
        self.linear1 = nn.Conv1d(in_channels, BOTTLENECK, 1, bias=False)
        self.nonlinear2 = _bn_relu(BOTTLENECK)
        self.cam_layer = _ContextMask(BOTTLENECK, GROWTH, dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cam_layer(self.nonlinear2(self.linear1(self.nonlinear1(x))))
        return torch.cat([x, y], dim=1)


class _DenseBlock(nn.Sequential):
    def __init__(self, layers: int, in_channels: int, dilation: int) -> None:
        super().__init__()
        for i in range(layers):
            self.add_module(f"tdnnd{i + 1}", _DenseLayer(in_channels + i * GROWTH, dilation))


class _Transit(nn.Module):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.nonlinear = _bn_relu(in_channels)
        self.linear = nn.Conv1d(in_channels, out_channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y: torch.Tensor = self.linear(self.nonlinear(x))
        return y


class _StatsPool(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Unbiased std, as in training: a single frame gives NaN, which callers treat as "no embedding".
        # Written out rather than torch.std, with positive axes, so that the ONNX export keeps its rank.
        mean = x.mean(dim=2)
        var = ((x - mean.unsqueeze(2)) ** 2).sum(dim=2) / (x.shape[2] - 1)
        return torch.cat([mean, var.sqrt()], dim=1)


class _Embedding(nn.Module):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.linear = nn.Conv1d(in_channels, out_channels, 1, bias=False)
        self.nonlinear = nn.Sequential()
        self.nonlinear.add_module("batchnorm", nn.BatchNorm1d(out_channels, affine=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y: torch.Tensor = self.nonlinear(self.linear(x.unsqueeze(-1)).squeeze(-1))
        return y


class CAMPlusPlus(nn.Module):
    """Mean-normalised fbank (batch, frames, 80) -> speaker embedding (batch, 192)."""

    def __init__(self) -> None:
        super().__init__()
        self.head = FrontEnd()
        channels = 128
        self.xvector = nn.Sequential()
        self.xvector.add_module("tdnn", _Tdnn(self.head.out_channels, channels))
        for n, (layers, dilation) in enumerate(DENSE_BLOCKS, start=1):
            self.xvector.add_module(f"block{n}", _DenseBlock(layers, channels, dilation))
            channels += layers * GROWTH
            self.xvector.add_module(f"transit{n}", _Transit(channels, channels // 2))
            channels //= 2
        self.xvector.add_module("out_nonlinear", _bn_relu(channels))
        self.xvector.add_module("stats", _StatsPool())
        self.xvector.add_module("dense", _Embedding(channels * 2, EMBEDDING_DIM))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        embedding: torch.Tensor = self.xvector(self.head(features.transpose(1, 2)))
        return embedding


class CAMPlusPlusFrames(nn.Module):
    """The same network up to its statistics pooling: (batch, frames, 80) -> (batch, channels, frames / 2).

    Pooling any stretch of these frames (mean and unbiased std), then ``CAMPlusPlus.xvector.dense``,
    gives an embedding of that stretch in the context of the whole input: one pass over a segment
    embeds many short units of it (pipeline/diarization/onnx.py, ``OnnxCamPlusPlusFrames``).
    """

    def __init__(self, model: CAMPlusPlus) -> None:
        super().__init__()
        self.head = model.head
        self.body = nn.Sequential(*list(model.xvector.children())[:-2])  # all but stats and dense

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        frames: torch.Tensor = self.body(self.head(features.transpose(1, 2)))
        return frames


def pooling_head(model: CAMPlusPlus) -> dict[str, np.ndarray]:
    """What follows the statistics pooling, as arrays: the dense layer's weight and its batch norm."""
    dense = model.xvector.get_submodule("dense")
    norm = model.xvector.get_submodule("dense.nonlinear.batchnorm")
    assert isinstance(dense, _Embedding) and isinstance(norm, nn.BatchNorm1d)
    assert norm.running_mean is not None and norm.running_var is not None
    return {
        "weight": dense.linear.weight.detach().numpy()[:, :, 0],
        "mean": norm.running_mean.numpy(),
        "var": norm.running_var.numpy(),
        "eps": np.array(norm.eps),
    }


def load_campplus(path: str) -> CAMPlusPlus:
    """Build the network and load a plain state dict strictly: a mismatch is a wrong file, not a warning."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = CAMPlusPlus()
    model.load_state_dict(state, strict=True)
    return model.eval()
