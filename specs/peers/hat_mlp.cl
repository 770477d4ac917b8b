# The HAT paper's MLP (joansj/hat, src/networks/mlp_hat.py: Net; the plain parts): the image
# flattened, dropout pdrop1 ON THE INPUT, then `nlayers` hidden layers fc1, fc2, ... (1 to 3 in the
# public code; attributes named fc{i+1}, not a ModuleList) of `nhid` units: linear -> ReLU ->
# dropout pdrop2. Public MNIST configuration: (1, 28, 28) input, nlayers 2, nhid 2000, 0.2 / 0.5.
#
# Same state_dict keys, in the same order, as the public model minus its heads `last` (a ModuleList
# of per-task Linear(nhid, n)), left to the continual-learning heads; tests/test_peer_specs.py drops
# `last.*`.
#
# Difference that changes no key and no value: the public network registers ONE relu and ONE drop2
# module called at every layer; here each layer has its own stateless relu{i}, drop2_{i} (a module
# shared across loop iterations, `(relu: ReLU() if i == 0) -> (use relu if i > 0)`, passes
# `specc check` but `specc compile` refuses it: "module 'relu' is declared in a loop without an
# index"). Dropout draws the same numbers from the same generator either way.
network HATMLP(
    input_channels: int = 1,
    input_size: int = 28,
    nlayers: int = 2,
    nhid: int = 2000,
    pdrop1: float = 0.2,
    pdrop2: float = 0.5,
) {
    input image(input_channels, input_size, input_size)
    flatten -> drop1: dropout(pdrop1)
    for i in range(nlayers) {
        fc{i + 1}: linear(nhid) -> relu{i + 1}: ReLU() -> record -> drop2_{i + 1}: dropout(pdrop2)
    }
}
