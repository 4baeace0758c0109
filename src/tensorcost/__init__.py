"""tensorcost: learned cost models of tensor programs.

Rooms (one concept each): hardware, zoo, collect, records, validation, features,
splits, metrics, models, registry, tuning. ``stages`` and ``cli`` are thin entry points.
"""

__version__ = "0.1.0"
