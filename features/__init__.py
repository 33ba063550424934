"""Media files to feature vectors.

- :mod:`features.media` decodes: sampled RGB frames with OpenCV, 16 kHz mono audio with PyAV, and
  ``probe`` for stream information. Bad files raise :class:`~recsys.errors.MediaDecodeError`.
- :mod:`features.audio` turns a waveform into a log-mel spectrogram and a fixed-length statistics
  vector (MFCC, spectral descriptors, onset/tempo); it also defines the ``AudioEncoder`` interface
  for learned audio encoders.
- :mod:`features.video` turns sampled frames into a torchvision-backbone vector (temporal mean and
  max pooling) and a hand-crafted colour/brightness/motion descriptor.
- :mod:`features.extract` is the per-file entry point: ``extract_file(path, ExtractorConfig())``.

Heavy libraries (torch, torchvision, cv2, av) are imported inside the functions that use them.
"""
