"""The model's GPU speed options: channels_last_3d and torch.compile change speed, not results or checkpoints."""

from __future__ import annotations

import torch

from video_processing.classification import VideoClassificationLightningModule

TINY = dict(num_classes=3, stem_dim_out=4, num_frames=4, crop_size=32)


def test_channels_last_gives_the_same_logits():
    torch.manual_seed(0)
    plain = VideoClassificationLightningModule(**TINY).eval()
    fast = VideoClassificationLightningModule(**TINY, channels_last=True).eval()
    fast.load_state_dict(plain.state_dict())
    conv = next(m for m in fast.model.modules() if isinstance(m, torch.nn.Conv3d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last_3d)
    video = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(fast(video), plain(video), rtol=1e-4, atol=1e-4)


def test_compile_keeps_checkpoint_keys_and_hyperparameters():
    plain = VideoClassificationLightningModule(**TINY)
    compiled = VideoClassificationLightningModule(**TINY, compile=True)
    assert compiled.model._compiled_call_impl is not None  # compiled lazily, at the first forward
    assert list(compiled.state_dict()) == list(plain.state_dict())
    assert compiled.hparams.compile and not plain.hparams.compile


def test_the_resnet_compiles_as_one_graph_with_the_same_logits():
    # PyTorchVideo gives its shortcut convolutions numpy strides, on which the compiler broke the graph at every
    # stage; the module makes them Python ints. aot_eager traces as inductor does, without generating code.
    torch.manual_seed(0)
    module = VideoClassificationLightningModule(**TINY).eval()
    strides = [m.stride for m in module.model.modules() if isinstance(m, torch.nn.Conv3d)]
    assert all(type(s) is int for stride in strides for s in stride)
    torch._dynamo.reset()
    compiled = torch.compile(module.model, backend="aot_eager", fullgraph=True)  # fullgraph: a break fails
    video = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(compiled(video), module.model(video))
