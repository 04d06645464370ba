"""Loss functions (alignrec_lite.losses): MMRec's EmbLoss written out by hand in float64."""

from __future__ import annotations

import math

import pytest
import torch

from alignrec_lite.losses import emb_loss, l2_reg_loss


def test_emb_loss_value_and_gradient_match_mmrec_by_hand():
    g = torch.Generator().manual_seed(0)
    u, p, n = (torch.randn(5, 3, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(3))
    got = emb_loss(u, p, n)
    by_hand = sum(math.sqrt(float((e.detach() ** 2).sum())) for e in (u, p, n)) / 5
    assert float(got.detach()) == pytest.approx(by_hand, rel=1e-12)
    got.backward()
    # d/dE of ||E||_F / B is E / (||E||_F B)
    for e in (u, p, n):
        assert torch.allclose(e.grad, e.detach() / (e.detach().norm() * 5), rtol=1e-12)
    # a known value: ||ones(4, 4)||_F = 4 for each matrix, / 4 rows
    assert float(emb_loss(torch.ones(4, 4), torch.ones(4, 4), torch.ones(4, 4))) == pytest.approx(3.0)


def test_emb_loss_is_not_the_squared_form_and_scales_linearly():
    e = torch.full((2048, 64), 0.125)
    # unsquared: ||E||_F / B = sqrt(2048 * 64) * 0.125 / 2048; squared (AlignRec): 0.5 * 2048 * 64 * 0.125² / 2048
    assert float(emb_loss(e)) == pytest.approx(math.sqrt(2048 * 64) * 0.125 / 2048, rel=1e-6)
    assert float(l2_reg_loss(e)) == pytest.approx(0.5 * 64 * 0.125**2, rel=1e-6)
    assert float(emb_loss(8 * e)) == pytest.approx(8 * float(emb_loss(e)), rel=1e-6)  # degree 1, not 2


def test_emb_loss_divides_by_the_actual_last_batch_size():
    small = torch.ones(3, 2)
    assert float(emb_loss(small)) == pytest.approx(math.sqrt(6) / 3)
