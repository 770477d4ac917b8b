# The small Inception network with HAT unit masks: every BasicConv2d's conv is a weighted layer (the
# four branches of an Inception block included: they are parallel paths, not shortcuts), masked
# after its batch norm, before its ReLU. A layer after a block reads the concatenation: its inputs
# are the units of the four branches' last convs, in order.
include "inception_net.cl"
backbone HATMaskInceptionNet = InceptionNet
mask hat(gate = "sigmoid")
