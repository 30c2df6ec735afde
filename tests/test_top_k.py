"""The chunked top-k of beam search (harness/decoding/search.top_k) against torch.topk itself."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from harness.decoding import search as _search  # noqa: E402


def assert_like_torch(x, k):
    values, index = _search.top_k(x, k)
    ref = torch.topk(x, k, dim=1)
    assert torch.equal(values, ref.values)  # the same elements, bit for bit, largest first
    assert torch.equal(x.gather(1, index), values)  # indices point at those values
    return index, ref.indices


@pytest.mark.parametrize("rows,n,k", [(1, 5 * 58101, 10), (7, 6000, 4), (3, 4 * 10 * 128, 10), (2, 1000, 1),
                                      (4, 128 * 64 + 127, 16)])
def test_top_k_is_torch_topk_on_distinct_values(rows, n, k):
    g = torch.Generator().manual_seed(rows * n + k)
    x = torch.randn(rows, n, generator=g) * 4
    index, ref = assert_like_torch(x, k)
    assert torch.equal(index, ref)


def test_the_largest_values_anywhere_in_a_row_are_found():
    """Winners crowded into one chunk, or in the tail after the last whole chunk, still come out."""
    x = torch.zeros(3, 40 * 128 + 50)
    x[0, 300:310] = torch.arange(10, 20, dtype=torch.float32)  # all in chunk 2
    x[1, -5:] = torch.arange(1, 6, dtype=torch.float32)  # in the tail
    x[2, ::517] = torch.arange(len(range(0, x.shape[1], 517)), dtype=torch.float32) + 1
    index, ref = assert_like_torch(x, 5)
    assert index[0].tolist() == [309, 308, 307, 306, 305]
    assert index[1].tolist() == [x.shape[1] - 1 - i for i in range(5)]
    assert torch.equal(index[2], ref[2])


def test_ties_and_banned_tokens_give_the_same_values():
    """Exactly equal values (-inf bans, a flat row) give torch.topk's values; which of the equal
    indices comes first is unspecified in torch.topk too."""
    x = torch.full((2, 50 * 128), float("-inf"))
    x[0, [7, 900, 5000]] = torch.tensor([1.0, 2.0, 3.0])  # fewer finite values than k
    x[1] = 0.5
    index, _ = assert_like_torch(x, 6)
    assert index[0, :3].tolist() == [5000, 900, 7]
    assert len(set(index[1].tolist())) == 6


def test_nan_rows_and_short_rows_take_torch_topk():
    x = torch.randn(2, 50 * 128)
    x[1, 77] = float("nan")
    values, index = _search.top_k(x, 3)
    ref = torch.topk(x, 3, dim=1)
    assert torch.equal(index, ref.indices) and torch.equal(values[0], ref.values[0])
    short = torch.randn(4, 100)
    assert torch.equal(_search.top_k(short, 10)[1], torch.topk(short, 10, dim=1).indices)


@pytest.mark.parametrize("rows,n", [(16, 58101), (3, 6061), (5, 128 * 4 + 3), (2, 300)])
def test_arg_max_is_torch_argmax_with_its_first_index_among_ties(rows, n):
    """greedy's chunked argmax: the maximum and its *first* index, as torch.argmax, wherever the
    maximum lies (a tie across chunks, the tail after the last whole chunk, an all -inf row)."""
    g = torch.Generator().manual_seed(rows * n)
    x = torch.randn(rows, n, generator=g)
    x[0, 5] = x[0, n - 7] = x[0].max() + 1  # a tie: the first occurrence wins
    x[1, -1] = 100.0  # in the tail
    if rows > 2:
        x[2] = -float("inf")  # every token banned
    values, index = _search.arg_max(x)
    assert torch.equal(index, x.argmax(dim=1)) and torch.equal(values, x.amax(dim=1))
    assert index[0] == 5 and index[1] == n - 1


def test_arg_max_leaves_nan_to_torch():
    x = torch.randn(2, 6000)
    x[1, 3000] = float("nan")
    values, index = _search.arg_max(x)
    assert torch.equal(index, x.argmax(dim=1)) and index[1] == 3000 and values[1].isnan()
