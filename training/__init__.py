"""Everything in avrec that learns weights with torch beyond ALS itself.

Self-supervised media encoders trained on the catalog's own media (no labels, no downloads):

- :mod:`training.ssl_data` decodes the catalog once into a cached ``.npz`` of log-mel patches and
  frames (:class:`~training.ssl_data.MediaCache`); training only reads it.
- :mod:`training.audio_autoencoder` an Audio2Vec-style masked (gap-filling) autoencoder on log-mel
  patches -> the ``audio_ae`` block.
- :mod:`training.av_correspondence` Look-Listen-Learn audio-visual correspondence -> the
  ``av_audio`` and ``av_video`` blocks.
- :mod:`training.encoders` the entry point :func:`~training.encoders.train_encoders` that trains
  both and adds their blocks to a features folder written by ``avrec features``.

The content -> CF bridge (maps an item's media vector to ALS factors, so a cold item gets factors):
:mod:`training.bridge` (:func:`~training.bridge.train_bridge`, checkpoints), with its pieces
:mod:`training.bridge_config`, :mod:`training.bridge_net`, :mod:`training.bridge_losses` and
:mod:`training.bridge_sampler`. The recommender that uses it is :class:`recsys.models.bridge.Bridge`.

Shared by all of them:

- :mod:`training.trainer` the one training loop (AdamW, epochs, seed, schedule, early stop).
- :mod:`training.checkpoint` the one checkpoint format (config + state_dict, no pickled objects);
  a bad checkpoint is a :class:`~recsys.errors.BundleError` whatever it holds.
- :mod:`features.device` the one device rule (``"auto"``, ``"cpu"``, ``"cuda[:N]"``).
"""
