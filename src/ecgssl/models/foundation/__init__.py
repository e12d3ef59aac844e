"""Public ECG foundation models as ecgssl encoders (one module per model, see ``checkpoints``).

Importing a module registers its architectures on the encoder registry; ``checkpoints.load``
recognises a released checkpoint by its contents and returns it with its spec (model card,
preprocessing, licence, pretraining data).
"""
