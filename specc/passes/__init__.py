"""fx graph passes, one per file, each `(graph, net) -> graph`, each checking what it requires of
its input and what it ensures of its output. Facts about nodes are read from and written to
`node.meta["specc"]`."""
