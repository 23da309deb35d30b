"""Confounder queue: FIFO order, per-category routing, sampling, state_dict round trip, eval/ablation
modes."""

import io

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cleanpose_core.models.confounder_queue import ConfounderQueue, QueueConfig


def make(length=5, sample_num=3, cat_num=3, dim=4, **kw):
    return ConfounderQueue(QueueConfig(length=length, sample_num=sample_num, **kw), cat_num, dim,
                           generator=torch.Generator().manual_seed(0))


def test_push_is_fifo_in_batch_order_and_routed_to_each_category():
    q = make()
    old = q.entries.clone()
    feats = torch.arange(4 * 4, dtype=torch.float32).view(4, 4)
    q.push(feats, torch.tensor([1, 2, 1, 1]))
    torch.testing.assert_close(q.entries[0], old[0])  # untouched category
    torch.testing.assert_close(q.entries[1], torch.cat([old[1, 3:], feats[[0, 2, 3]]]))  # newest last
    torch.testing.assert_close(q.entries[2], torch.cat([old[2, 1:], feats[[1]]]))


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, 2), min_size=1, max_size=20))
def test_push_matches_a_list_of_per_category_fifos(labels):
    q = make(length=4)
    ref = [list(q.entries[c].clone()) for c in range(3)]
    feats = torch.randn(len(labels), 4)
    q.push(feats, torch.tensor(labels))
    for f, c in zip(feats, labels):  # the official pop(0) / append
        ref[c].pop(0)
        ref[c].append(f)
    for c in range(3):
        torch.testing.assert_close(q.entries[c], torch.stack(ref[c]))


def test_samples_are_distinct_entries_of_the_own_category_shared_within_a_category():
    q = make(length=6, sample_num=4)
    s = q.sample(torch.tensor([2, 0, 2]), torch.Generator().manual_seed(3))
    assert s.shape == (3, 4, 4)
    torch.testing.assert_close(s[0], s[2])
    for b, c in enumerate([2, 0, 2]):
        rows = [int((q.entries[c] == row).all(1).nonzero()) for row in s[b]]
        assert len(set(rows)) == 4


def test_sampling_is_deterministic_with_a_seeded_generator():
    q = make()
    ids = torch.tensor([0, 1, 2, 1])
    a = q.sample(ids, torch.Generator().manual_seed(42))
    b = q.sample(ids, torch.Generator().manual_seed(42))
    c = q.sample(ids, torch.Generator().manual_seed(43))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.equal(a, c)


def test_queue_round_trips_through_state_dict_save_and_load():
    q = make()
    q.push(torch.randn(6, 4), torch.tensor([0, 1, 2, 2, 1, 0]))
    buf = io.BytesIO()
    torch.save(q.state_dict(), buf)
    buf.seek(0)
    fresh = make()
    fresh.reset_random(torch.Generator().manual_seed(99))
    fresh.load_state_dict(torch.load(buf, weights_only=True))
    torch.testing.assert_close(fresh.entries, q.entries, rtol=0, atol=0)
    assert set(q.state_dict()) == {"entries", "pending", "pending_count"}


def test_queue_is_not_updated_in_eval_mode_nor_with_update_none():
    q = make().eval()
    before = q.entries.clone()
    assert q.push(torch.randn(2, 4), torch.tensor([0, 1])) is False
    torch.testing.assert_close(q.entries, before)
    frozen = make(update="none")
    before = frozen.entries.clone()
    assert frozen.push(torch.randn(2, 4), torch.tensor([0, 1])) is False
    torch.testing.assert_close(frozen.entries, before)


def test_per_epoch_policy_stages_entries_until_end_epoch():
    q = make(length=3, policy="per_epoch")
    before = q.entries.clone()
    feats = torch.randn(5, 4)
    q.push(feats[:2], torch.tensor([0, 0]))
    q.push(feats[2:], torch.tensor([0, 1, 0]))
    torch.testing.assert_close(q.entries, before)
    assert q.end_epoch()
    torch.testing.assert_close(q.entries[0], feats[[1, 2, 4]])  # newest three of category 0, oldest first
    torch.testing.assert_close(q.entries[1], torch.cat([before[1, 1:], feats[[3]]]))
    assert int(q.pending_count.sum()) == 0


def test_similarity_update_replaces_the_most_similar_entry():
    q = make(length=3, update="similarity")
    q.fill_(torch.eye(4)[:3].expand(3, 3, 4).clone())
    q.push(torch.tensor([[0.0, 2.0, 0.1, 0.0]]), torch.tensor([1]))
    torch.testing.assert_close(q.entries[1, 1], torch.tensor([0.0, 2.0, 0.1, 0.0]))
    torch.testing.assert_close(q.entries[1, [0, 2]], torch.eye(4)[[0, 2]])


def test_memory_bank_update_overwrites_one_slot():
    q = make(storage="memory_bank")
    before = q.entries.clone()
    f = torch.full((1, 4), 7.0)
    q.push(f, torch.tensor([2]), generator=torch.Generator().manual_seed(0))
    changed = (q.entries[2] != before[2]).any(1)
    assert int(changed.sum()) == 1 and torch.equal(q.entries[2][changed][0], f[0])


def test_bad_inputs_raise_clear_errors():
    q = make()
    with pytest.raises(ValueError, match="category ids"):
        q.sample(torch.tensor([3]))
    with pytest.raises(ValueError, match=r"\(B, 4\)"):
        q.push(torch.randn(2, 5), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="shape"):
        q.fill_(torch.randn(3, 2, 4))


def test_queue_moves_with_the_model_to_another_device_or_dtype():
    # Regression: a method named `_apply` shadowed nn.Module._apply, so model.to(...) raised a TypeError.
    q = ConfounderQueue(QueueConfig(length=4, sample_num=2), cat_num=2, dim=3)
    q.to(torch.float64).to("cpu")
    assert torch.float64 in {b.dtype for b in q.buffers()}
