"""resnet1d / resnet1d-subject: the seed's parameter counts, shapes for other lengths, per-subject layers."""

from __future__ import annotations

import pickle

import pytest
import torch

import eegbench
from eegbench.errors import EegbenchError
from eegbench_plugins.resnet1d_geometry import conv_padding, stage_lengths


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_seed_parameter_counts():
    net = eegbench.create("backbone", "resnet1d", n_chans=17, n_times=128)
    assert net.lengths == [128, 128, 64, 32, 16]
    assert net.n_features == 5120
    assert n_params(net) == 6_925_024
    head = torch.nn.Linear(net.n_features, 768)  # what the engine appends for the seed's 768-d CLS target
    assert n_params(net) + n_params(head) == 10_857_952


def test_forward_backward_shape():
    torch.manual_seed(0)
    net = eegbench.create("backbone", "resnet1d", n_chans=17, n_times=128)
    x = torch.randn(3, 17, 128)
    out = net(x)
    assert out.shape == (3, 5120)
    out.sum().backward()
    assert net.conv1.weight.grad is not None and net.conv1.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("n_times", [100, 250, 63, 200])
def test_other_input_lengths(n_times):
    net = eegbench.create("backbone", "resnet1d", n_chans=5, n_times=n_times, filters=[8, 8, 12, 12, 16])
    net.eval()
    assert net.lengths == stage_lengths(n_times, 5)
    assert net(torch.randn(2, 5, n_times)).shape == (2, net.n_features)
    assert net.n_features == 16 * net.lengths[-1]


def test_stage_lengths_rules():
    assert stage_lengths(128, 5) == [128, 128, 64, 32, 16]
    assert stage_lengths(100, 5) == [100, 100, 50, 25, 13]
    assert stage_lengths(256, 5, [128, 128, 64, 32, 16]) == [128, 128, 64, 32, 16]  # a strided stem
    with pytest.raises(EegbenchError, match="lengths\\[2\\] = 50"):
        stage_lengths(128, 5, [128, 128, 50, 25, 13])
    with pytest.raises(EegbenchError, match="one per entry of filters"):
        stage_lengths(128, 5, [128, 64])
    # the paper's symmetric padding where it already gives ceil(L / stride) outputs
    assert conv_padding(128, 1, 17) == (8, 8)
    assert conv_padding(128, 2, 17) == (8, 8)
    assert conv_padding(128, 4, 17) == (7, 7)
    assert conv_padding(129, 4, 17)[1] > 7


def test_explicit_params_change_the_model():
    net = eegbench.create(
        "backbone", "resnet1d", n_chans=4, n_times=64, filters=[8, 16], lengths=[64, 32], kernel_size=5, dropout=0.1
    )
    assert net.n_features == 16 * 32
    assert net.conv1.kernel_size == (5,)
    assert net.blocks[0].dropout1.p == pytest.approx(0.1)
    with pytest.raises(EegbenchError, match="kernel_size must be an odd"):
        eegbench.create("backbone", "resnet1d", n_chans=4, n_times=64, kernel_size=4)
    with pytest.raises(EegbenchError, match="no parameter 'width'"):
        eegbench.create("backbone", "resnet1d", n_chans=4, n_times=64, width=3)


def test_subject_variant_matches_per_subject_convolution():
    torch.manual_seed(0)
    net = eegbench.create(
        "backbone", "resnet1d-subject", n_chans=6, n_times=32, subjects=[1, 4], filters=[8, 8, 12], lengths="auto"
    ).eval()
    assert net.takes_subject and net.subjects == [1, 4]
    x = torch.randn(4, 6, 32)
    subject = torch.tensor([4, 1, 1, 4])
    out = net(x, subject)
    assert out.shape == (4, net.n_features)
    # reference: each row through its own subject's conv with the shared rest
    for i in range(4):
        w = net.subject_weights[str(int(subject[i]))]
        h = torch.nn.functional.conv1d(x[i : i + 1], w, padding=net.conv1.padding)
        ref = net.trunk(net.bn1(h))  # the stem has no activation (the seed's ResNet1d)
        torch.testing.assert_close(out[i : i + 1], ref, rtol=1e-5, atol=1e-5)
    # different subjects' layers give different features for the same input
    a = net(x[:1], torch.tensor([1]))
    b = net(x[:1], torch.tensor([4]))
    assert not torch.allclose(a, b)


def test_subject_variant_add_subject_and_unknown_subject():
    net = eegbench.create(
        "backbone", "resnet1d-subject", n_chans=3, n_times=16, subjects=[1, 2], filters=[4, 4], lengths="auto"
    ).eval()
    x = torch.randn(2, 3, 16)
    with pytest.raises(IndexError):
        net(x, torch.tensor([1, 7]))
    net.add_subject(7, init_from=2)
    torch.testing.assert_close(net.subject_weights["7"], net.subject_weights["2"])
    torch.testing.assert_close(net(x, torch.tensor([7, 7])), net(x, torch.tensor([2, 2])))
    net.add_subject(9)  # mean of the existing layers
    mean = torch.stack([net.subject_weights[k] for k in ("1", "2", "7")]).mean(0)
    torch.testing.assert_close(net.subject_weights["9"].detach(), mean.detach())
    assert "subject_weights.9" in dict(net.named_parameters())
    with pytest.raises(EegbenchError, match="already has"):
        net.add_subject(9)
    with pytest.raises(EegbenchError, match="no such subject"):
        net.add_subject(11, init_from=5)
    pickle.loads(pickle.dumps(net))


def test_subject_variant_channel_mix_starts_as_identity():
    torch.manual_seed(0)
    net = eegbench.create(
        "backbone",
        "resnet1d-subject",
        n_chans=3,
        n_times=16,
        subjects=[1, 2],
        filters=[4, 4],
        subject_layer="channel-mix",
    ).eval()
    x = torch.randn(2, 3, 16)
    torch.testing.assert_close(net(x, torch.tensor([1, 2])), net.trunk(net.stem(x)))


def test_subject_variant_needs_subjects():
    with pytest.raises(EegbenchError, match="needs the training subjects"):
        eegbench.create("backbone", "resnet1d-subject", n_chans=3, n_times=16)
