"""The compiler's limits, in one place.

A spec is data from anywhere: whatever it says, checking or compiling it must end in bounded time
and memory with either a result or a positioned error. Every bound below is far above what a real
backbone needs (ResNet-152 has 155 weighted layers and 3 levels of nesting) and far below what
would exhaust time, memory or Python's recursion limit. README.md ("CLI", "Limits") lists them.

Each limit is (value, reason); `LIMITS` is what the README table and the tests read.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limit:
    name: str
    value: int
    reason: str


LIMITS: dict[str, Limit] = {}


def _limit(name: str, value: int, reason: str) -> int:
    LIMITS[name] = Limit(name, value, reason)
    return value


SPEC_BYTES = _limit(
    "spec_bytes", 1 << 20,
    "size of one spec file (1 MiB): specs are a few KiB; bounds parse time and memory")
TOKENS = _limit(
    "tokens", 50_000,
    "tokens (names, numbers, strings, symbols, comments) of one program's files together, counted "
    "before parsing: the parser takes tens of microseconds a token, so this bounds it to seconds "
    "(the specs in specs/ have a few hundred)")
INCLUDE_DEPTH = _limit(
    "include_depth", 32,
    "files in one chain of includes: a chain that long is a mistake, not a library")
FILES = _limit(
    "files", 256,
    "spec files in one program (the spec and everything it includes)")
NESTING = _limit(
    "nesting", 100,
    "nesting of one expression, list or loop in the source (`a + b + c` nests two deep): keeps the "
    "parser's and evaluator's recursion far from Python's limit")
BLOCK_DEPTH = _limit(
    "block_depth", 64,
    "blocks and loops entered inside one another while elaborating (a block may not instantiate "
    "itself, directly or through others: that is a \"recursive block\" error)")
LIST_LENGTH = _limit(
    "list_length", 100_000,
    "elements of one list, so also the trip count of one loop and the length of a range()")
MODULES = _limit(
    "modules", 100_000,
    "modules (layers and their containers) of one elaborated network")
NODES = _limit(
    "nodes", 200_000,
    "calls in the data-flow graph of one elaborated network (layers, flattens, adds)")
PARAMETERS = _limit(
    "parameters", 1 << 32,
    "parameters of one network's layers together (4.3 billion, 16 GiB of float32; "
    "ResNet-152 has 60 million): building more would exhaust memory before any error")
VALUE_SIZE = _limit(
    "value_size", 1 << 31,
    "numbers in one sample's value at any point of the network (its known sizes multiplied: "
    "channels x height x width, or features)")
PREPARES = _limit(
    "prepares", 16,
    "`prepare(...)` declarations of one spec: `specc compile` builds and traces the network once for "
    "each, so their number bounds the compile time")
STEPS = _limit(
    "steps", 2_000_000,
    "elaboration work: expressions evaluated, chain elements and loop iterations run, list elements "
    "and environment entries copied; bounds the time nested loops can take to seconds (specs/mlp.cl "
    "with 30,000 layers takes about 600,000)")
INT_BITS = _limit(
    "int_bits", 63,
    "integers (literals, -D values, results of arithmetic) are below 2**63 in magnitude")
MESSAGE_CHARS = _limit(
    "message_chars", 1000,
    "characters of an error message or hint (longer ones, e.g. with a huge name, are cut in the middle)")
EXCERPT_CHARS = _limit(
    "excerpt_chars", 160,
    "characters of the source line printed under an error message (cut around the column)")

INT_MAX = (1 << INT_BITS) - 1


def int_in_range(v: int) -> bool:
    return -INT_MAX <= v <= INT_MAX


class Budget:
    """Counts elaboration steps against STEPS; `charge` raises (positioned) when they run out.
    `error` makes the exception: a callable (message, pos) -> Exception."""

    __slots__ = ("left", "error")

    def __init__(self, error, steps: int = STEPS):
        self.left = steps
        self.error = error

    def charge(self, n: int, pos) -> None:
        self.left -= n
        if self.left < 0:
            raise self.error(f"elaboration takes too many steps (limit {STEPS:,}): loops or lists multiply "
                             "beyond what a network needs", pos)
