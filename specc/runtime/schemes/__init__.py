"""Masking schemes, one module each: HAT (unit masks), WSN (parameter masks), AmnesiacHAT (HAT
plus backup backbones). Each offers `install(network, PlainClass, ...)`, called by a masked class's
constructor, and a mixin with the scheme's forward."""
