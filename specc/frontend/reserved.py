"""Names a spec may not give to a module or a parameter: the attributes and methods of nn.Module and
of the compiled backbone classes (a module named `forward` or `training` would shadow them).

Kept as data so that `specc check` needs no torch import; tests/test_reserved.py checks that it
still covers every such name of the installed torch and of specc's runtime classes."""
from ..schemes import SCHEMES

# Methods and class attributes (of nn.Module and the compiled backbone classes).
METHODS = frozenset({
    "_COMPILED",
    "T_destination",
    "_PlainClass",
    "_apply",
    "_bias_score",
    "_bn_task",
    "_call_impl",
    "_compiled_call_impl",
    "_get_backward_hooks",
    "_get_backward_pre_hooks",
    "_get_name",
    "_independent_bns",
    "_load_from_state_dict",
    "_maybe_warn_non_full_backward_hook",
    "_measure_is_by_list",
    "_specc_block_masks",
    "_specc_sequential_backups",
    "_specc_rewrite",
    "_measure_preceding_layer",
    "_named_members",
    "_preceding_measure",
    "_register_load_state_dict_pre_hook",
    "_register_state_dict_hook",
    "_replicate_for_data_parallel",
    "_save_to_state_dict",
    "_setup_independent_bn",
    "_slow_forward",
    "_version",
    "_wrapped_call_impl",
    "add_module",
    "apply",
    "bfloat16",
    "buffers",
    "call_super_init",
    "children",
    "combine_masks",
    "compile",
    "cpu",
    "cuda",
    "double",
    "dump_patches",
    "eval",
    "extra_repr",
    "float",
    "forward",
    "get_buffer",
    "get_extra_state",
    "get_layer_by_name",
    "get_layer_measure_parameter_wise",
    "get_mask",
    "get_parameter",
    "get_submodule",
    "half",
    "initialize_independent_bn",
    "initialize_parameter_score",
    "initialize_task_embedding",
    "instantiate_backup_backbones",
    "ipu",
    "load_state_dict",
    "modules",
    "mtia",
    "named_buffers",
    "named_children",
    "named_modules",
    "named_parameters",
    "next_layer_name",
    "original_backbone_class",
    "parameters",
    "preceding_layer_name",
    "print_readable",
    "register_backward_hook",
    "register_buffer",
    "register_forward_hook",
    "register_forward_pre_hook",
    "register_full_backward_hook",
    "register_full_backward_pre_hook",
    "register_load_state_dict_post_hook",
    "register_load_state_dict_pre_hook",
    "register_module",
    "register_parameter",
    "register_state_dict_post_hook",
    "register_state_dict_pre_hook",
    "requires_grad_",
    "sanity_check",
    "set_extra_state",
    "set_submodule",
    "setup_task_id",
    "share_memory",
    "specc_setup_scheme",
    "state_dict",
    "store_bn",
    "store_mask",
    "te_to_binary_mask",
    "to",
    "to_empty",
    "train",
    "type",
    "xpu",
    "zero_grad",
})

# Attributes the base classes and the assembly set on instances (constructor arguments aside).
ATTRIBUTES = frozenset({
    "_backward_hooks",
    "_backward_pre_hooks",
    "_bn_groups",
    "_buffers",
    "_forward_hooks",
    "_forward_hooks_always_called",
    "_forward_hooks_with_kwargs",
    "_forward_pre_hooks",
    "_forward_pre_hooks_with_kwargs",
    "_is_full_backward_hook",
    "_load_state_dict_post_hooks",
    "_load_state_dict_pre_hooks",
    "_modules",
    "_non_persistent_buffers_set",
    "_parameters",
    "_specc_backup_forward",
    "_specc_backup_ids",
    "_specc_backup_sequential",
    "_specc_backup_source",
    "_specc_bn_groups",
    "_specc_facts",
    "_specc_forward",
    "_specc_forward_source",
    "_specc_independent",
    "_specc_options",
    "_specc_plain",
    "_state_dict_hooks",
    "_state_dict_pre_hooks",
    "backup_backbone_kwargs",
    "backup_backbones",
    "backup_state_dicts",
    "backup_task_ids",
    "bias_score_t",
    "task_embedding_t",
    "weight_score_t",
    "block_name",
    "path",
    "pretrained_from",
    "in_shape",
    "out_shape",
    "batch_normalization_mode",
    "disable_unlearning",
    "gate",
    "output_dim",
    "task_id",
    "gate_fn",
    "masks",
    "processed_task_ids",
    "specc_arguments",
    "specc_network",
    "training",
    "weighted_layer_names",
})

# Names a generated module binds at module level (its imports) and its constructors call: a class,
# parameter or module of that name would shadow them there (specc/emit/writer.py also renames loop
# variables and branches that would).
GENERATED_NAMES = frozenset({
    "annotations", "torch", "nn", "Tensor", "super",
    "require_runtime", "shapes", "tokens", "check_argument", "indexed", "module_name", "pretrained",
    # `--base clarena`: what a constructor takes and ignores, and the helper that warns about it
    "unknown_kwargs", "ignore_unknown",
    "Backbone", "CLBackbone",
    *(s.base for s in SCHEMES.values()), *(s.runtime for s in SCHEMES.values()),
    # the section of a spec's `prepare(...)` (specc/emit/prepared.py)
    "Facts", "Segment", "structure", "forward",
})
# ...which also imports the runtime helpers its forwards call under fx's names for them.
GENERATED_PREFIX = "specc_runtime_"



def _keepers() -> dict[str, str]:
    """{attribute: the schemes that keep it, for messages} from the declarations (`Scheme.attributes`):
    "HAT", or "HAT (and WSN)" where several do."""
    by: dict[str, list[str]] = {}
    for s in SCHEMES.values():
        for attribute in s.attributes:
            by.setdefault(attribute, []).append(s.title)
    return {a: t[0] + (f" (and {', '.join(t[1:])})" if len(t) > 1 else "") for a, t in by.items()}


# Attributes a masking scheme keeps on the backbone, and who keeps it (for messages). Each is also in
# ATTRIBUTES. Per-task batch-norm copies (`fc_bns`, `original_fc_bn_state_dict`) are named after
# the spec's own batch norms: specc.frontend.masking.check_scheme_names checks those.
SCHEME_ATTRIBUTES = {
    **_keepers(),
    "_bn_groups": "the per-task batch norm of a masked backbone",
    "processed_task_ids": "a continual-learning backbone", "task_id": "a continual-learning backbone",
}

# A module may not take any of these names; a parameter may not take a method's name (parameters
# become attributes of the same name, as in CLArena, so `output_dim` or `gate` are fine there).
MODULE_NAMES = METHODS | ATTRIBUTES
PARAMETER_NAMES = METHODS | (ATTRIBUTES - {"output_dim", "gate", "disable_unlearning"}) | GENERATED_NAMES
