"""`mask hat(fold_batch_norm = true)`: the mask after a batch norm folded into its affine weight and
bias. Off by default (the default is bit-identical to CLArena's bn(x) * m, tests/test_hat_parity.py);
when on, the same function up to rounding, and identical with binary masks."""
from __future__ import annotations

import torch

from conftest import SPECS

import specc
from specc.runtime.batchnorm import batch_norm_masked


def _build(tmp_path, fold: bool, **args):
    spec = tmp_path / f"mlp_hat_fold_{fold}.cl"
    spec.write_text(f'include "{SPECS / "mlp.cl"}"\nbackbone HATMaskMLPFold = MLP\n'
                    f'mask hat(gate = "sigmoid", batch_normalization = "shared", '
                    f'fold_batch_norm = {"true" if fold else "false"})\n')
    return specc.build(spec, **args)


def test_fold_is_opt_in_and_computes_the_same_function(tmp_path):
    args = dict(input_dim=20, hidden_dims=[32, 16], output_dim=8)
    torch.manual_seed(0)
    folded = _build(tmp_path, True, **args)
    plain = _build(tmp_path, False, **args)
    plain.load_state_dict(folded.state_dict())
    uses = lambda m: batch_norm_masked.__name__ in m.print_readable(print_output=False)  # noqa: E731
    assert uses(folded) and not uses(plain)
    for m in (folded, plain):
        m.setup_task_id(1)
        m.train()
    x = torch.randn(16, 20)
    a = folded(x, "train", s_max=2.0, batch_idx=1, num_batches=3)
    b = plain(x, "train", s_max=2.0, batch_idx=1, num_batches=3)
    assert torch.allclose(a[0], b[0], atol=1e-5, rtol=1e-5)
    for k in a[2]:
        assert torch.allclose(a[2][k], b[2][k], atol=1e-5, rtol=1e-5)
    # Running statistics do not depend on the affine transform: identical for the first batch
    # norm (same input); later ones see inputs that differ by rounding.
    assert all(torch.equal(p, q) for p, q in zip(folded.fc_bn[0].buffers(), plain.fc_bn[0].buffers()))
    assert all(torch.allclose(p.float(), q.float(), atol=1e-5)
               for p, q in zip(folded.fc_bn.buffers(), plain.fc_bn.buffers()))
    # With binary (stored) masks the products are exact: identical outputs (same state).
    folded.load_state_dict(plain.state_dict())
    for m in (folded, plain):
        m.store_mask()
        m.eval()
    assert torch.equal(folded(x, "test", test_task_id=1)[0], plain(x, "test", test_task_id=1)[0])
