"""Client tests of specc's `--base clarena` classes: CLArena's own algorithms, driven through
Lightning's real `Trainer`, once with CLArena's backbone and once with specc's, compared bit for bit
(the tests are in tests/test_clarena_client.py).

- `stub`: the stand-in for torchvision that lets CLArena import here, and how it is kept scoped.
- `loader`: puts CLArena (`<repo>/../shared/clarena`) on sys.path, imports it under the stub,
  compiles and imports specc's classes.
- `harness`: the scenarios, the task loop (CLArena's pipeline, reduced), the recorder, the comparison.
- `fixtures`: pytest fixtures (CLArena or skip, the compiler, the WSN backward patch, the stub guard).
- `factories`: deliberately wrong backbones, to show the comparison fails when it should.
"""
