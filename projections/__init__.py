"""The read models, folded from the log (fold.py); see native.py for the compiled fold."""

from projections import native as _native

_native.enable(__path__)
