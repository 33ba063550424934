"""The embedded demo catalog: real audio-video files and an interaction log from hidden tastes.

:func:`generate_demo_catalog` writes a folder that looks like a small real service::

    <out_dir>/
        catalog.csv            item_id, path, title, tags, description, duration_s, width, height, fps,
                               sample_rate
        interactions.parquet   user_id, item_id, timestamp, event, weight
        truth.json             the hidden answer (item attributes, user tastes, train_end, cold items)
        media/i0001.mp4 ...    H.264 video + AAC audio, muxed with PyAV
        .complete              written last; its presence means the folder is whole

Every item has hidden attributes: a cluster (its "genre") and two continuous attributes in [0, 1],
``energy`` and ``tone``. They drive both what is seen (hue, saturation, stripe frequency and angle,
number and kind of moving shapes, motion speed) and what is heard (pitch, harmonic timbre, note
tempo, note decay, tremolo, noise colour). Content predicts taste, but not trivially: per-item noise
makes neighbouring clusters overlap, and for a share of items (``mismatch_fraction``) the sound is
drawn from another cluster than the picture (``audio_cluster``; the taste follows the picture).

Users have a hidden taste over clusters (concentrated on 1-3 of them), a preferred ``energy``, and
share a Zipf-like popularity bias. Each user draws a lognormal number of distinct items from
``softmax(affinity / temperature)``. Interactions carry unix timestamps over ``days`` days, an
``event`` (view < like < share) and a ``weight`` (watch fraction x event factor). A held-back share
of items (``cold_fraction``) is released after ``train_end``: all of their interactions are later
than ``train_end`` while every other item has interactions on both sides of it, so a temporal split
at ``train_end`` makes exactly those items cold. No interaction has a timestamp equal to
``train_end``, so ``<=`` and ``<`` cuts agree.

**Words.** About 60% of the items (:data:`TEXT_FRACTION`) have text, as in a real catalog where many
uploads are never described; the others have empty ``title``, ``tags`` and ``description``. Tags
and descriptions are derived from the hidden attributes with noise (:data:`GENRE_WORDS` of the
picture cluster, :data:`ENERGY_WORDS` of the energy, :data:`TONE_WORDS` of the tone; 15% of genre
words come from another cluster, words are dropped at random); titles are random names that say
nothing. The words come from their own random stream, so the media, the log and every other draw
are exactly what they were before the catalog had text.

**Modules.** :mod:`~recsys.synthetic.world` draws the hidden attributes, users, log and words;
:mod:`~recsys.synthetic.media` renders pictures and sounds and encodes them with PyAV;
:mod:`~recsys.synthetic.catalog` holds the parameters, the folder layout and the entry points.
Import the names from here.

``truth.json`` is for tests and for judging models; ``catalog.csv`` reveals the hidden attributes
only through those noisy words. The output is a pure function of the parameters (``workers`` excluded): the same seed
gives byte-identical interactions and truth, and identical media with the same PyAV/FFmpeg build.
"""

from recsys.synthetic.catalog import (
    CATALOG_COLUMNS,
    CATALOG_FILE,
    COMPLETE_MARKER,
    DEFAULT_PARAMS,
    GENERATOR_VERSION,
    INTERACTION_COLUMNS,
    INTERACTIONS_FILE,
    MEDIA_DIR,
    TRUTH_FILE,
    DemoCatalog,
    demo_cache_key,
    ensure_demo_catalog,
    generate_demo_catalog,
)
from recsys.synthetic.media import encode_mp4, render_audio, render_frames, write_clip
from recsys.synthetic.world import (
    ENERGY_WORDS,
    EVENT_FACTOR,
    EVENTS,
    GENRE_WORDS,
    PERIOD_START,
    TEXT_FRACTION,
    TONE_WORDS,
)

__all__ = [
    "CATALOG_COLUMNS",
    "CATALOG_FILE",
    "COMPLETE_MARKER",
    "DEFAULT_PARAMS",
    "ENERGY_WORDS",
    "EVENTS",
    "EVENT_FACTOR",
    "GENERATOR_VERSION",
    "GENRE_WORDS",
    "INTERACTIONS_FILE",
    "INTERACTION_COLUMNS",
    "MEDIA_DIR",
    "PERIOD_START",
    "TEXT_FRACTION",
    "TONE_WORDS",
    "TRUTH_FILE",
    "DemoCatalog",
    "demo_cache_key",
    "encode_mp4",
    "ensure_demo_catalog",
    "generate_demo_catalog",
    "render_audio",
    "render_frames",
    "write_clip",
]
