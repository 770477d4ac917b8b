"""specc/reserved.py is data (so `specc check` imports no torch): check it still covers the names it
stands for, for the installed torch and specc's runtime classes."""
from torch import nn

from specc.frontend.reserved import ATTRIBUTES, METHODS, MODULE_NAMES, PARAMETER_NAMES
from specc.runtime import bases
from specc.runtime.schemes import amnesiac_hat, hat, wsn


def test_every_method_of_nn_module_and_the_compiled_classes_is_reserved():
    classes = (nn.Module, bases.Backbone, bases.CLBackbone, bases.HATMaskBackbone, bases.WSNMaskBackbone,
               bases.AmnesiacHATBackbone, hat.HATMasked, hat.HATBlock, wsn.WSNMasked, amnesiac_hat.AmnesiacHATMasked)
    names = {n for cls in classes for n in dir(cls) if not n.startswith("__")}
    assert names <= METHODS, sorted(names - METHODS)


def test_instance_attributes_are_reserved_for_modules():
    module = nn.Module()
    assert {n for n in vars(module) if not n.startswith("__")} <= ATTRIBUTES
    assert {"training", "weighted_layer_names", "output_dim", "task_embedding_t", "masks"} <= MODULE_NAMES
    # Constructor arguments mirrored as attributes by the seed's own classes stay allowed.
    assert not {"output_dim", "gate", "disable_unlearning", "batch_normalization"} & PARAMETER_NAMES
