"""Delineation and R-peaks that work out of the box: any lead, any length, any rate >= 100 Hz.

* ``model``: the single-channel delineator (a small 1-D U-Net), its input normalisation and its
  file format (``<stem>.safetensors`` + ``<stem>.json`` with the weights' sha256); the bundled
  default model in ``ecgssl/resources/``.
* ``windows``: resampling to the model's rate, overlapping windows, stitched class probabilities.
* ``rules``: physiological post-processing of the wave lists (one QRS per beat, one P before and
  one T after each QRS, refractory limits).
* ``augment``: what other recorders do to an ECG (noise, wander, powerline, band limits, rates),
  used in training.
* ``infer``: ``delineate_signal`` (the body of ``ecgssl.delineate`` without a user model).
* ``rpeaks``: the R-peak detector registry behind ``ecgssl.detect_rpeaks``.
* ``train``: rebuilds the bundled model (``python -m ecgssl.delineation.train``).
"""
