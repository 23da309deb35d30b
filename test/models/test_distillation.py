"""Residual KD head: identity residual at init, official initialisations and parameter counts."""

import torch

from cleanpose_core.models.distillation import ResidualKDHead


def test_zero_initialised_k2_makes_the_residual_an_identity():
    torch.manual_seed(0)
    head = ResidualKDHead(128, 768)
    f = torch.nn.functional.normalize(torch.randn(5, 128), dim=1)
    torch.testing.assert_close(head.residual(f), f, rtol=0, atol=0)
    feats = torch.randn(5, 128, 64)
    pooled = torch.nn.functional.normalize(feats.mean(2), dim=1)
    torch.testing.assert_close(head(feats), pooled @ head.psi)


def test_head_parameters_match_official_shapes_and_init():
    torch.manual_seed(0)
    head = ResidualKDHead(128, 768)
    assert head.k1.bias is None and head.k2.bias is None
    assert head.k1.weight.numel() + head.k2.weight.numel() == 32_768  # official projector_pts
    assert head.psi.shape == (128, 768)  # official pointnet2ulip, 98,304
    assert abs(head.psi.std().item() - 768 ** -0.5) < 0.002
    assert abs(head.k1.weight.std().item() - (2 / 128) ** 0.5) < 0.01  # Kaiming normal, fan_in 128


def test_residual_branch_receives_gradient_and_changes_output_after_a_step():
    torch.manual_seed(0)
    head = ResidualKDHead(16, 32)
    feats, target = torch.randn(4, 16, 10), torch.randn(4, 32)
    (head(feats) - target).norm(dim=1).mean().backward()
    assert head.k2.weight.grad.abs().sum() > 0
    assert head.psi.grad.abs().sum() > 0
