"""HAT with specc's backbone under Lightning's DDP on CPU: 2 tasks, HAT's gradient rules from
specc.runtime.rules, in a minimal LightningModule (manual optimisation, as CLArena's HAT).

    python examples/lightning_ddp_hat.py --devices 2 --out ddp.pt     # 2 processes (gloo)
    python examples/lightning_ddp_hat.py --devices 1 --out single.pt  # 1 process, batches twice as large
    python examples/lightning_ddp_hat.py --compare ddp.pt single.pt   # max |difference| of the parameters

Both runs see the same samples in each step: each of the 2 processes gets every other sample, in
order, and DDP averages their gradients, which is the gradient of the mean loss over the batch one
process gets. The parameters agree up to the order
of floating-point reductions (<= 1e-6).

What a data-parallel HAT run needs, and specc's backbones do: per-task batch-norm copies that are
not trainable (DDP's default find_unused_parameters=False), store_bn() averaging running statistics
across ranks, gradient rules applied after DDP has averaged the gradients (manual_backward), and
AmnesiacHAT backups created before the model is wrapped (in setup, before Trainer.fit).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Subset, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TASKS = (1, 2)
STEPS = 3  # optimizer steps per task
GLOBAL_BATCH = 8  # samples per step, over all processes
S_MAX = 400.0
CLAMP = 50.0


def task_data(task: int) -> TensorDataset:
    g = torch.Generator().manual_seed(task)
    x = torch.randn(STEPS * GLOBAL_BATCH, 12, generator=g)
    y = torch.randint(0, 3, (STEPS * GLOBAL_BATCH,), generator=g)
    return TensorDataset(x, y)


def build_module():
    import lightning as L

    from generated.mlp_hat import HATMaskMLP
    from specc.runtime import rules

    class HAT(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.backbone = HATMaskMLP(input_dim=12, hidden_dims=[16], output_dim=8, gate="sigmoid")
            self.head = nn.Linear(8, 3)  # one head shared by the tasks (every parameter is used)
            self.automatic_optimization = False
            self.cumulative_mask: dict[str, torch.Tensor] = {}

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

        def train_dataloader(self):
            # every other sample to each process, in order: step k of all processes together is
            # step k of one process with batches `world` times as large
            data = task_data(self.backbone.task_id)
            world, rank = self.trainer.world_size, self.trainer.global_rank
            return DataLoader(Subset(data, range(rank, len(data), world)), batch_size=GLOBAL_BATCH // world)

        def on_train_start(self):
            if not self.cumulative_mask:
                self.cumulative_mask = {n: torch.zeros(self.backbone.get_layer_by_name(n).weight.shape[0],
                                                       device=self.device)
                                        for n in self.backbone.weighted_layer_names}

        def training_step(self, batch, batch_idx):
            x, y = batch
            opt = self.optimizers()
            opt.zero_grad()
            step, num_batches = batch_idx + 1, self.trainer.num_training_batches  # HAT's batches count from 1
            feature, mask, _ = self.backbone(x, "train", s_max=S_MAX, batch_idx=step, num_batches=num_batches)
            loss = F.cross_entropy(self.head(feature), y)
            self.manual_backward(loss)  # DDP has averaged the gradients when this returns
            rules.clip_hat_gradients(self.backbone, self.cumulative_mask)
            rules.compensate_hat_embedding_gradients(self.backbone, S_MAX, step, num_batches, CLAMP)
            opt.step()
            return loss

        def on_train_end(self):
            mask = self.backbone.store_mask()  # the same on every rank: the embeddings are
            self.cumulative_mask = {n: torch.maximum(self.cumulative_mask[n], mask[n]) for n in mask}

    return HAT


def train(devices: int, out: str) -> None:
    import lightning as L

    torch.set_num_threads(1)
    L.seed_everything(0, verbose=False)
    module = build_module()()
    for task in TASKS:
        module.backbone.setup_task_id(task)
        trainer = L.Trainer(accelerator="cpu", devices=devices, strategy="ddp" if devices > 1 else "auto",
                            max_epochs=1, use_distributed_sampler=False, logger=False, enable_checkpointing=False,
                            enable_progress_bar=False, enable_model_summary=False)
        trainer.fit(module)
    if module.global_rank == 0:
        torch.save({k: v.detach().cpu() for k, v in module.state_dict().items()}, out)
        print(f"saved {out} ({devices} process{'es' if devices > 1 else ''})")


def compare(a: str, b: str) -> float:
    sa, sb = torch.load(a), torch.load(b)
    assert sa.keys() == sb.keys()
    return max((sa[k].float() - sb[k].float()).abs().max().item() for k in sa)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--devices", type=int, default=2)
    ap.add_argument("--out", default="hat_ddp.pt")
    ap.add_argument("--compare", nargs=2, metavar=("A", "B"))
    a = ap.parse_args()
    if a.compare:
        diff = compare(*a.compare)
        print(f"max |difference| of the parameters: {diff:.3g}")
        sys.exit(0 if diff <= 1e-6 else 1)
    train(a.devices, a.out)


if __name__ == "__main__":
    main()
