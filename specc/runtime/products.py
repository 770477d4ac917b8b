"""The channel-wise product of `mul(b)` (squeeze-excitation, gating): the stream times a gate with one
value per unit, broadcast over the stream's other sizes. One function so that fx traces it as one
call (torch.fx.wrap) whose role the masking analysis knows (specc.core.roles: "gate")."""
from __future__ import annotations

import torch
import torch.fx


def channel_gate(x: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
    """`x * gate` with the gate (N, C) or (N, C, 1, ...) viewed as (N, C, 1, ...) to match `x`:
    the same product as `x * gate.view(n, c, 1, 1)` in an SE block (bit for bit)."""
    return x * gate.reshape(gate.shape[0], gate.shape[1], *([1] * (x.dim() - 2)))


torch.fx.wrap("channel_gate")
