"""Everything in avrec that learns weights with torch beyond ALS itself.

Self-supervised media encoders trained on the catalog's own media (no labels, no downloads):

- :mod:`training.ssl_data` decodes the catalog once into a cached ``.npz`` of log-mel patches and
  frames (:class:`~training.ssl_data.MediaCache`); training only reads it.
- :mod:`training.audio_autoencoder` an Audio2Vec-style masked (gap-filling) autoencoder on log-mel
  patches -> the ``audio_ae`` block.
- :mod:`training.av_correspondence` Look-Listen-Learn audio-visual correspondence -> the
  ``av_audio`` and ``av_video`` blocks.
- :mod:`training.trainer` the generic loop (AdamW, epochs, seed, device, early stop) both use.
- :mod:`training.checkpoint` self-describing checkpoints (config + state_dict, no pickled objects).
- :mod:`training.encoders` the entry point :func:`~training.encoders.train_encoders` that trains
  both and adds their blocks to a features folder written by ``avrec features``.
"""
