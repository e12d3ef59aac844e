"""ecgssl: self-supervised representation learning for electrocardiograms.

Two pretraining methods (ECG-JEPA, Beat-SSL) on shared encoders, data and evaluation. The public
API: ``load_encoder``, ``embed``, ``delineate``, ``detect_rpeaks``, ``read_records``
(see ``ecgssl.api``).
"""

__version__ = "0.1.0"


def __getattr__(name):
    # Lazy: `import ecgssl` stays cheap (no torch import) for the CLI's --help.
    if name in ("load_encoder", "embed", "delineate", "detect_rpeaks", "read_records", "Encoder"):
        from ecgssl import api

        return getattr(api, name)
    raise AttributeError(f"module 'ecgssl' has no attribute {name!r}")
