"""ecgssl: self-supervised representation learning for electrocardiograms.

Two pretraining methods (ECG-JEPA, Beat-SSL) on shared encoders, data and evaluation.
"""

__version__ = "0.1.0"
