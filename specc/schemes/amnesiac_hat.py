"""AmnesiacHAT: HAT plus a backup backbone per earlier task, for unlearning."""
from .declaration import Scheme
from .hat import OPTIONS

SCHEME = Scheme(
    name="amnesiac_hat", title="AmnesiacHAT", summary="HAT's unit masks and AmnesiacHAT's backup backbones",
    options=OPTIONS, runtime="amnesiac_hat", mixin="AmnesiacHATMasked", base="AmnesiacHATBackbone",
    class_prefix="AmnesiacHAT", unit_masks=True, backups=True, gates=("sigmoid",),
    extra_params=(("disable_unlearning", "bool", False),),
    attributes=("backup_backbones", "backup_backbone_kwargs", "backup_state_dicts", "backup_task_ids",
                "_specc_backup_forward", "_specc_backup_ids"),
    maskable="it builds its backups from the network's constructor: compile a spec for it",
    exportable="its backup paths depend on the tasks backed up at run time")
