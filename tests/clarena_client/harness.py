"""CLArena's own algorithms, driven through Lightning's real `Trainer`, with a pluggable backbone.

`run(scenario, backbone_target, clarena)` replays the minimum of CLArena's task loop
(`clarena/pipelines/cl_main_expr.py`, and `cul_main_expr.py` for unlearning) on tiny synthetic data:

    seed_everything(SEED, workers=True)
    backbone = hydra.utils.instantiate({"_target_": backbone_target, **backbone_kwargs},
                                       disable_unlearning=<True for CL, False for CUL>)
    heads = HeadsTIL(input_dim=output_dim); model = <Algorithm>(backbone, heads, ...)
    [cul = AmnesiacHATUnlearn(model=model, ...)]
    for task_id in 1..T:
        optimizer = hydra partial of torch.optim.SGD;  trainer = lightning.Trainer(...)
        datamodule.setup_task_id(task_id)
        [cul.setup_task_id(task_id, unlearning_requests, unlearnable ids, just-no-longer-unlearnable ids)]
        model.setup_task_id(task_id, num_classes, optimizer, None)
        trainer.fit(model, datamodule)
        [cul.unlearn() if task_id requests unlearning]
        [cul.setup_test_task_id()]
        trainer.test(model, datamodule)

exactly in the pipeline's order. The backbone is built the pipeline's way: through Hydra without
`_convert_` (so `hidden_dims` arrives as an omegaconf ListConfig) and with the extra
`disable_unlearning` keyword the pipeline passes to every backbone. `backbone_target` is any
callable (CLArena's class, specc's class, or a test's factory function) that is importable by its
dotted path: Hydra 1.3.8 turns a callable `_target_` back into `module.qualname` and imports it.

Everything observable is recorded (`Record` is a nested dict of tensors and plain values):
every training/validation/test step's returned dict (losses, masks, activations, logits, adjustment
rates, capacity ...), the model's full state dict (backbone + heads, parameters and buffers) and its
parameter/buffer lists after construction and after each fit / unlearning / test, the backbone's
masks and bookkeeping, the algorithm's masks (HAT cumulative/summative masks, WSN weight/bias masks),
AmnesiacHAT's update records, backups and replay buffer, the logits of an extra test-stage forward of
every seen task, and the sequence of calls the algorithm makes into the backbone (outermost calls
only: a backbone's calls to its own methods are its own business).

`diff(a, b)` compares two records with `torch.equal` on every tensor (after checking dtype and
shape), exact equality on everything else, and the same key order in every mapping.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import random
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset

SEED = 1234
OPTIMIZER = {"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.05}

# -- scenarios ---------------------------------------------------------------------------------

MLP_INPUT = (1, 8, 8)
IMAGE_INPUT = (3, 8, 8)
MLP_KW = {"input_dim": 64, "hidden_dims": [16, 16], "output_dim": 16}
HAT_KW = {"adjustment_mode": "hat", "s_max": 400.0, "clamp_threshold": 50.0,
          "mask_sparsity_reg_factor": 0.75}
ADAHAT_KW = {"adjustment_mode": "adahat", "adjustment_intensity": 0.1, "s_max": 400.0,
             "clamp_threshold": 50.0, "mask_sparsity_reg_factor": 0.75, "epsilon": 0.1}


@dataclasses.dataclass(frozen=True)
class Scenario:
    name: str
    algorithm: str                       # class in clarena.cl_algorithms
    backbone: str                        # class name in clarena.backbones (= specc's class name)
    backbone_kwargs: dict
    algorithm_kwargs: dict
    input_shape: tuple[int, ...]
    num_classes: tuple[int, ...] = (3, 2)  # per task; len = number of tasks
    batch_size: int = 4
    train_batches: int = 3
    needs_wsn_backward: bool = False
    # continual unlearning (cul_main_expr): {"requests": {task: [tasks]}, "unlearnable_age": int,
    # "cul_algorithm": name in clarena.cul_algorithms, "cul_kwargs": {...}}
    unlearning: dict | None = None

    @property
    def pipeline(self) -> str:
        return "cul" if self.unlearning else "cl"


SCENARIOS: list[Scenario] = [
    Scenario("hat-mlp-bn_none", "HAT", "HATMaskMLP",
             {**MLP_KW, "gate": "sigmoid", "batch_normalization": None}, HAT_KW, MLP_INPUT),
    Scenario("hat-mlp-bn_independent", "HAT", "HATMaskMLP",
             {**MLP_KW, "gate": "sigmoid", "batch_normalization": "independent"}, HAT_KW, MLP_INPUT),
    Scenario("hat-mlp-bn_shared", "HAT", "HATMaskMLP",
             {**MLP_KW, "gate": "sigmoid", "batch_normalization": "shared"}, HAT_KW, MLP_INPUT),
    Scenario("hat-resnet18-bn_none", "HAT", "HATMaskResNet18",
             {"input_channels": 3, "output_dim": 512, "gate": "sigmoid", "batch_normalization": None},
             HAT_KW, IMAGE_INPUT),
    Scenario("adahat-resnet18-bn_independent", "AdaHAT", "HATMaskResNet18",
             {"input_channels": 3, "output_dim": 512, "gate": "sigmoid",
              "batch_normalization": "independent"}, ADAHAT_KW, IMAGE_INPUT),
    # batch_normalization must be None here: DER++ replay in CLArena runs the AmnesiacHAT backbone on
    # one sample at a time (stage "test") while the model is in train mode, which a BatchNorm rejects.
    Scenario("amnesiac_hat-derpp-mlp-unlearn_1", "AmnesiacHAT", "AmnesiacHATMLP",
             {**MLP_KW, "gate": "sigmoid", "batch_normalization": None},
             {**ADAHAT_KW, "buffer_size": 12, "distillation_reg_factor": 0.5, "replay_ce_factor": 0.5,
              "architecture": "AdaHAT", "if_replay": True, "backup_init_mode": "before"},
             MLP_INPUT,
             # equal class counts: CLArena's DER buffer stores logits in one (N, classes) tensor, so
             # tasks with different class counts make `Buffer.add_data` fail (cat / copy_ size mismatch)
             num_classes=(3, 3),
             unlearning={"requests": {2: [1]}, "unlearnable_age": 2,
                         "cul_algorithm": "AmnesiacHATUnlearn",
                         "cul_kwargs": {"if_backup_compensation": True, "compensate_order": "forward",
                                        "if_replay_repairing": True, "repair_batch_size": 4,
                                        "repair_num_steps": 2, "repair_strategy": "sequential_adahat"}}),
    Scenario("wsn-mlp", "WSN", "WSNMaskMLP", dict(MLP_KW),
             {"mask_percentage": 0.5, "parameter_score_init_mode": "default"}, MLP_INPUT,
             needs_wsn_backward=True),
    Scenario("finetuning-clmlp", "Finetuning", "CLMLP", dict(MLP_KW), {}, MLP_INPUT),
    Scenario("finetuning-clresnet18", "Finetuning", "CLResNet18",
             {"input_channels": 3, "output_dim": 512}, {}, IMAGE_INPUT),
]
SCENARIO_BY_NAME = {s.name: s for s in SCENARIOS}


# -- data ----------------------------------------------------------------------------------------

def _datamodule_class():
    from lightning import LightningDataModule

    class SyntheticCLData(LightningDataModule):
        """Tiny random tasks, drawn from a private generator (the global RNG is left to the run).
        `dataset_test` is what CLArena's `get_test_task_id_from_dataloader_idx` reads."""

        def __init__(self, input_shape, num_classes, batch_size, train_batches, seed):
            super().__init__()
            g = torch.Generator().manual_seed(seed)

            def draw(n, k):
                return TensorDataset(torch.randn((n, *input_shape), generator=g),
                                     torch.randint(0, k, (n,), generator=g))

            self.batch_size = batch_size
            self.num_classes = dict(enumerate(num_classes, start=1))
            self.splits = {t: {"train": draw(batch_size * train_batches, k), "val": draw(batch_size, k),
                               "test": draw(batch_size, k)} for t, k in self.num_classes.items()}
            self.task_id: int | None = None
            self.dataset_test: dict[int, TensorDataset] = {}

        def setup_task_id(self, task_id: int) -> None:
            self.task_id = task_id
            self.dataset_test = {t: self.splits[t]["test"] for t in range(1, task_id + 1)}

        def train_dataloader(self):
            return DataLoader(self.splits[self.task_id]["train"], batch_size=self.batch_size, shuffle=True)

        def val_dataloader(self):
            return DataLoader(self.splits[self.task_id]["val"], batch_size=self.batch_size)

        def test_dataloader(self):
            return [DataLoader(ds, batch_size=self.batch_size) for ds in self.dataset_test.values()]

    return SyntheticCLData


# -- recording -----------------------------------------------------------------------------------

def capture(obj: Any) -> Any:
    """A detached, cloned, plain copy: tensors cloned, mappings -> dict (order kept), sequences -> list,
    sets -> sorted list; other objects by their type name only."""
    if isinstance(obj, Tensor):
        return obj.detach().clone()
    if isinstance(obj, Mapping):
        return {k: capture(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [capture(v) for v in obj]
    if isinstance(obj, (set, frozenset)):
        return sorted(capture(v) for v in obj)
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, torch.nn.Module):
        return {"<module>": type(obj).__name__, "state_dict": capture(obj.state_dict())}
    return f"<{type(obj).__name__}>"


BACKBONE_ATTRS = ("task_id", "processed_task_ids", "weighted_layer_names", "output_dim",
                  "batch_normalization", "masks", "backup_task_ids", "backup_state_dicts")
ALGORITHM_ATTRS = ("task_id", "processed_task_ids",
                   "cumulative_mask_for_previous_tasks", "summative_mask_for_previous_tasks",
                   "weight_masks", "bias_masks", "cumulative_weight_mask_for_previous_tasks",
                   "cumulative_bias_mask_for_previous_tasks",
                   "original_backbone_state_dict", "original_heads_state_dict",
                   "state_dict_task_start", "heads_state_dict_task_start",
                   "parameters_task_update", "parameters_task_update_heads",
                   "unlearning_task_ids", "unlearned_task_ids", "unlearnable_task_ids")
BUFFER_ATTRS = ("examples", "labels", "logits", "task_labels", "num_seen_examples", "size")


def snapshot(model) -> dict:
    bb = model.backbone
    snap = {
        "state_dict": capture(model.state_dict()),
        "parameters": [(n, tuple(p.shape), str(p.dtype), p.requires_grad) for n, p in model.named_parameters()],
        "buffers": [(n, tuple(b.shape), str(b.dtype)) for n, b in model.named_buffers()],
        "backbone": {a: capture(getattr(bb, a)) for a in BACKBONE_ATTRS if hasattr(bb, a)},
        "algorithm": {a: capture(getattr(model, a)) for a in ALGORITHM_ATTRS if hasattr(model, a)},
    }
    if hasattr(model, "memory_buffer"):
        snap["memory_buffer"] = {a: capture(getattr(model.memory_buffer, a)) for a in BUFFER_ATTRS}
    return snap


# Backbone methods the algorithms call (found by reading clarena/cl_algorithms and cul_algorithms).
TRACED_METHODS = ("forward", "setup_task_id", "initialize_task_embedding", "initialize_independent_bn",
                  "store_mask", "store_bn", "te_to_binary_mask", "get_mask", "combine_masks",
                  "get_layer_measure_parameter_wise", "get_layer_by_name", "preceding_layer_name",
                  "next_layer_name", "initialize_parameter_score", "instantiate_backup_backbones",
                  "get_bn", "state_dict", "load_state_dict")


def _describe(v: Any) -> Any:
    if isinstance(v, Tensor):
        return f"Tensor{list(v.shape)}:{str(v.dtype).removeprefix('torch.')}"
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, (list, tuple)) and all(isinstance(x, (int, str)) for x in v):
        return list(v)
    if isinstance(v, Mapping):
        return f"{type(v).__name__}[{len(v)}]"
    return f"<{type(v).__name__}>"


class BackboneTracer:
    """Wraps the backbone instance's methods (instance attributes shadowing the class's) to log the
    algorithm's calls into it. Only outermost calls are logged, and only while `enabled`."""

    def __init__(self, backbone, log: list):
        self.log = log
        self.enabled = True
        self._depth = 0
        for name in TRACED_METHODS:
            if callable(getattr(type(backbone), name, None)):
                object.__setattr__(backbone, name, self._wrap(name, getattr(backbone, name)))

    def _wrap(self, name: str, bound: Callable) -> Callable:
        def traced(*args, **kwargs):
            if self.enabled and self._depth == 0:
                self.log.append([name, [_describe(a) for a in args],
                                 {k: _describe(v) for k, v in kwargs.items()}])
            self._depth += 1
            try:
                return bound(*args, **kwargs)
            finally:
                self._depth -= 1

        traced.__wrapped__ = bound
        return traced

    @contextlib.contextmanager
    def paused(self):
        was, self.enabled = self.enabled, False
        try:
            yield
        finally:
            self.enabled = was


def _recorder(task_log: dict):
    from lightning import Callback

    class Recorder(Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            task_log["train"].append({"batch_idx": batch_idx, "outputs": capture(outputs)})

        def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
            task_log["validation"].append({"sanity_check": trainer.sanity_checking, "batch_idx": batch_idx,
                                           "outputs": capture(outputs)})

        def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
            task_log["test"].append({"dataloader_idx": dataloader_idx, "batch_idx": batch_idx,
                                     "outputs": capture(outputs)})

    return Recorder()


def _test_stage_forward(model, datamodule) -> dict:
    """Logits (and whatever else the algorithm's forward returns) of every seen task's test set,
    through the algorithm's own `forward(..., stage="test", task_id=t)`, in eval mode, no grad."""
    was_training = model.training
    model.eval()
    out = {}
    try:
        with torch.no_grad():
            for t, ds in datamodule.dataset_test.items():
                out[t] = capture(model.forward(ds.tensors[0], stage="test", task_id=t))
    finally:
        model.train(was_training)
    return out


# -- isolation -----------------------------------------------------------------------------------

_ENV_KEYS = ("PL_GLOBAL_SEED", "PL_SEED_WORKERS", "CUBLAS_WORKSPACE_CONFIG")


@contextlib.contextmanager
def isolated_global_state():
    """Undo what a run changes process-wide: Lightning's `deterministic=True` switches on
    `torch.use_deterministic_algorithms` and sets CUBLAS_WORKSPACE_CONFIG, `seed_everything` sets
    PL_GLOBAL_SEED/PL_SEED_WORKERS and reseeds random/numpy/torch; Lightning's info logs are quieted."""
    det = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    cudnn = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    env = {k: os.environ.get(k) for k in _ENV_KEYS}
    rng = (random.getstate(), np.random.get_state(), torch.get_rng_state())
    threads = torch.get_num_threads()
    loggers = {name: logging.getLogger(name) for name in ("lightning", "lightning.pytorch", "lightning.fabric")}
    levels = {name: lg.level for name, lg in loggers.items()}
    for lg in loggers.values():
        lg.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", module=r"lightning(\.|$)")
            warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
            yield
    finally:
        torch.use_deterministic_algorithms(det, warn_only=warn_only)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn
        for k, v in env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        random.setstate(rng[0])
        np.random.set_state(rng[1])
        torch.set_rng_state(rng[2])
        torch.set_num_threads(threads)
        for name, lg in loggers.items():
            lg.setLevel(levels[name])


# -- the run -------------------------------------------------------------------------------------

def _trainer(workdir, callback):
    from lightning import Trainer

    return Trainer(accelerator="cpu", devices=1, max_epochs=1, logger=False, enable_checkpointing=False,
                   enable_progress_bar=False, enable_model_summary=False, deterministic=True,
                   default_root_dir=str(workdir), callbacks=[callback])


def run(scenario: Scenario, backbone_target: Callable, clarena, workdir) -> dict:
    """One full run of `scenario` with backbones built by `backbone_target`. Returns the record."""
    import hydra
    import lightning as L

    record: dict = {"calls": [], "tasks": {}}
    unl = scenario.unlearning
    with isolated_global_state():
        L.seed_everything(SEED, workers=True, verbose=False)
        data = _datamodule_class()(scenario.input_shape, scenario.num_classes, scenario.batch_size,
                                   scenario.train_batches, seed=SEED + 1)
        disable_unlearning = scenario.pipeline == "cl"
        backbone = hydra.utils.instantiate({"_target_": backbone_target, **scenario.backbone_kwargs},
                                           disable_unlearning=disable_unlearning)
        record["constructed"] = {"state_dict": capture(backbone.state_dict()),
                                 "parameters": [(n, tuple(p.shape)) for n, p in backbone.named_parameters()]}
        heads = clarena.heads.HeadsTIL(input_dim=scenario.backbone_kwargs["output_dim"])
        algorithm_cls = getattr(clarena.cl_algorithms, scenario.algorithm)
        model = algorithm_cls(backbone=backbone, heads=heads, non_algorithmic_hparams={},
                              disable_unlearning=disable_unlearning, **scenario.algorithm_kwargs)
        tracer = BackboneTracer(model.backbone, record["calls"])
        cul = None
        if unl:
            cul = getattr(clarena.cul_algorithms, unl["cul_algorithm"])(model=model, **unl["cul_kwargs"])
        with tracer.paused():
            record["initial"] = snapshot(model)

        for task_id in range(1, len(scenario.num_classes) + 1):
            task_log = record["tasks"][task_id] = {"train": [], "validation": [], "test": []}
            record["calls"].append(["<task>", [task_id], {}])
            optimizer = hydra.utils.instantiate(OPTIMIZER)
            trainer = _trainer(workdir, _recorder(task_log))
            data.setup_task_id(task_id)
            if cul is not None:
                age = unl["unlearnable_age"]
                cul.setup_task_id(
                    task_id=task_id, unlearning_requests=unl["requests"],
                    unlearnable_task_ids=[t for t in range(1, task_id + 1) if task_id - t < age],
                    task_ids_just_no_longer_unlearnable=[t for t in range(1, task_id + 1) if task_id - age == t])
            record["calls"].append(["<model.setup_task_id>", [task_id], {}])
            model.setup_task_id(task_id=task_id, num_classes=data.num_classes[task_id],
                                optimizer=optimizer, lr_scheduler=None)
            record["calls"].append(["<trainer.fit>", [task_id], {}])
            trainer.fit(model, datamodule=data)
            with tracer.paused():
                task_log["after_fit"] = snapshot(model)
            if cul is not None and task_id in unl["requests"]:
                record["calls"].append(["<cul.unlearn>", [task_id], {}])
                cul.unlearn()
                with tracer.paused():
                    task_log["after_unlearning"] = snapshot(model)
            if cul is not None:
                cul.setup_test_task_id()
            record["calls"].append(["<trainer.test>", [task_id], {}])
            trainer.test(model, datamodule=data)
            with tracer.paused():
                task_log["test_stage_forward"] = _test_stage_forward(model, data)
                task_log["after_test"] = snapshot(model)
    return record


# -- checks --------------------------------------------------------------------------------------

def diff(a: Any, b: Any, path: str = "", out: list | None = None) -> list[str]:
    """Every difference between two records, as 'path: what'. Tensors: dtype, shape, torch.equal.
    Mappings: same keys in the same order, then values. Sequences: length, then items."""
    out = [] if out is None else out
    if isinstance(a, Tensor) or isinstance(b, Tensor):
        if not (isinstance(a, Tensor) and isinstance(b, Tensor)):
            out.append(f"{path}: {type(a).__name__} vs {type(b).__name__}")
        elif a.dtype != b.dtype:
            out.append(f"{path}: dtype {a.dtype} vs {b.dtype}")
        elif a.shape != b.shape:
            out.append(f"{path}: shape {tuple(a.shape)} vs {tuple(b.shape)}")
        elif not torch.equal(a, b):
            n = int((a != b).sum()) if a.numel() else 0
            out.append(f"{path}: values differ ({n} of {a.numel()} elements)")
        return out
    if isinstance(a, Mapping) or isinstance(b, Mapping):
        if not (isinstance(a, Mapping) and isinstance(b, Mapping)):
            out.append(f"{path}: {type(a).__name__} vs {type(b).__name__}")
            return out
        ka, kb = list(a.keys()), list(b.keys())
        if ka != kb:
            only_a = [k for k in ka if k not in b]
            only_b = [k for k in kb if k not in a]
            if only_a or only_b:
                out.append(f"{path}: keys only in first {only_a[:8]}{'...' if len(only_a) > 8 else ''}, "
                           f"only in second {only_b[:8]}{'...' if len(only_b) > 8 else ''}")
            else:
                first = next(i for i, (x, y) in enumerate(zip(ka, kb)) if x != y)
                out.append(f"{path}: same keys, different order (first at #{first}: {ka[first]!r} vs {kb[first]!r})")
        for k in ka:
            if k in b:
                diff(a[k], b[k], f"{path}/{k}", out)
        return out
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            out.append(f"{path}: length {len(a)} vs {len(b)}")
        for i, (x, y) in enumerate(zip(a, b)):
            diff(x, y, f"{path}[{i}]", out)
        return out
    if type(a) is not type(b) or a != b:
        out.append(f"{path}: {a!r} vs {b!r}")
    return out


def assert_same(reference: dict, candidate: dict, limit: int = 40) -> None:
    d = diff(reference, candidate)
    assert not d, f"{len(d)} difference(s) between the runs:\n  " + "\n  ".join(d[:limit]) + (
        f"\n  ... and {len(d) - limit} more" if len(d) > limit else "")


def check_record(record: dict, scenario: Scenario) -> None:
    """The record is not vacuous: every step, test batch and snapshot the scenario implies is there,
    and training moved the parameters (so equal records mean equal computations)."""
    n_tasks = len(scenario.num_classes)
    assert list(record["tasks"]) == list(range(1, n_tasks + 1))
    for t, log in record["tasks"].items():
        assert [s["batch_idx"] for s in log["train"]] == list(range(scenario.train_batches)), t
        for step in log["train"]:
            assert isinstance(step["outputs"].get("loss"), Tensor), f"task {t}: no loss in {list(step['outputs'])}"
        assert sorted({s["dataloader_idx"] for s in log["test"]}) == list(range(t)), t
        assert sum(not v["sanity_check"] for v in log["validation"]) == 1, t
        assert list(log["test_stage_forward"]) == list(range(1, t + 1)), t
        before = record["initial"]["state_dict"] if t == 1 else record["tasks"][t - 1]["after_test"]["state_dict"]
        after = log["after_fit"]["state_dict"]
        moved = [k for k in before if k.startswith("backbone.") and k in after
                 and after[k].is_floating_point() and not torch.equal(before[k], after[k])]
        assert moved, f"task {t}: training changed no backbone tensor"
        if scenario.unlearning and t in scenario.unlearning["requests"]:
            assert "after_unlearning" in log, t
            fit_sd, unl_sd = log["after_fit"]["state_dict"], log["after_unlearning"]["state_dict"]
            assert any(not torch.equal(fit_sd[k], unl_sd[k]) for k in fit_sd if k.startswith("backbone.")), \
                f"task {t}: unlearning changed no backbone tensor"
    last = record["tasks"][n_tasks]["after_test"]
    if scenario.algorithm in ("HAT", "AdaHAT", "AmnesiacHAT"):
        masks = last["backbone"]["masks"]
        assert list(masks) == list(range(1, n_tasks + 1)) and all(masks.values()), "HAT masks missing"
        assert last["algorithm"]["cumulative_mask_for_previous_tasks"], "cumulative mask missing"
    if scenario.algorithm == "WSN":
        assert list(last["algorithm"]["weight_masks"]) == list(range(1, n_tasks + 1)), "WSN masks missing"
    if scenario.algorithm == "AmnesiacHAT":
        assert last["backbone"]["backup_state_dicts"], "no backup state dicts recorded"
        assert last["memory_buffer"]["num_seen_examples"] > 0
