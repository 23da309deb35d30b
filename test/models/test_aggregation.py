"""GAFA: official parameter count; the reordered computations equal the official step-by-step formulation."""

import torch

from cleanpose_core.models.aggregation import GAFA, GAFABlock, GAFAConfig
from cleanpose_core.ops.knn import knn


def test_gafa_block_parameter_count_matches_official():
    assert sum(p.numel() for p in GAFABlock(16, 256).parameters()) == 972_544
    assert sum(p.numel() for p in GAFA(GAFAConfig()).parameters()) == 1_945_088


def test_relative_encoding_equals_mlp_over_all_pairs_then_mean():
    torch.manual_seed(0)
    block = GAFABlock(4, 32, pos_hidden=8).double()
    kpt = torch.randn(2, 7, 3, dtype=torch.float64)
    direct = block.fc_delta_l(kpt.unsqueeze(2) - kpt.unsqueeze(1)).mean(dim=2)  # official: K x K pairs
    torch.testing.assert_close(block.relative_encoding(kpt), direct)


def test_gafa_forward_shapes_and_gradients():
    torch.manual_seed(0)
    gafa = GAFA(GAFAConfig(k_list=(4, 8), d_model=32, pos_hidden=8))
    feat = torch.randn(2, 5, 32, requires_grad=True)
    out = gafa(feat, torch.randn(2, 5, 3), torch.randn(2, 40, 32), torch.randn(2, 40, 3))
    assert out.shape == (2, 5, 32) and bool((out >= 0).all())
    out.sum().backward()
    assert all(p.grad is not None for p in gafa.parameters())


def official_block(block, kpt_feat, kpt, point_feat, pts):
    """GAFA block written step by step as architecture-facts §2.4 describes it (no reordering)."""
    b, n_kpt, c = kpt_feat.shape
    idx = knn(block.k, pts, kpt)[1]
    knn_xyz = torch.stack([pts[i][idx[i]] for i in range(b)])
    knn_feat = torch.stack([point_feat[i][idx[i]] for i in range(b)])
    pre = kpt_feat
    q = block.fc_in(kpt_feat.transpose(1, 2)).transpose(1, 2)
    pos = block.fc_delta(kpt.unsqueeze(2) - knn_xyz)
    knn_feat = block.fc_delta_1(torch.cat([knn_feat, pos], dim=3))
    w = torch.softmax(
        torch.nn.functional.cosine_similarity(q.unsqueeze(2), knn_feat, dim=3) / block.tau, dim=2
    )
    kpt_feat = torch.relu((w.unsqueeze(3) * knn_feat).sum(2) + pre)
    pre = kpt_feat
    rel = block.fc_delta_l(kpt.unsqueeze(2) - kpt.unsqueeze(1)).mean(2)
    pos_l = block.fc_delta_abs(kpt) + rel
    g = kpt_feat.mean(1, keepdim=True).expand(-1, n_kpt, -1)
    f = block.fuse_mlp(torch.cat([kpt_feat, g, pos_l], 2).transpose(1, 2)).transpose(1, 2)
    kpt_feat = torch.relu(f + pre)
    return torch.relu(kpt_feat + block.out_mlp(kpt_feat))


def test_block_equals_the_official_step_by_step_formulation():
    torch.manual_seed(0)
    block = GAFABlock(6, 32, pos_hidden=8).double().eval()
    for bn in (block.fc_in[1], block.fuse_mlp[1], block.fuse_mlp[4]):  # non-trivial running statistics
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
    args = (torch.randn(2, 5, 32, dtype=torch.float64), torch.randn(2, 5, 3, dtype=torch.float64),
            torch.randn(2, 40, 32, dtype=torch.float64), torch.randn(2, 40, 3, dtype=torch.float64))
    torch.testing.assert_close(block(*args), official_block(block, *args))
