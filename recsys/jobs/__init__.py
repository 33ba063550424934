"""Jobs: the orchestration layer on top of the core, one file per job.

=================  ==============================================================================
``checks``         the checks every job runs before it reads or fits anything (paths, numbers,
                   model names, features a model needs), messages in command-line terms
``load``           the one load step of ``evaluate``/``fit``/``info``: ``--dataset`` or ``--log`` (+
                   ``--features``) -> interactions and fused item features
``evaluate``       load -> split -> (tune ->) fit -> evaluate -> report (``avrec evaluate``)
``fit``            load -> fit -> bundle (``avrec fit``); ``fit_model``, the fit every job uses
``update``         bundle + new log -> updated bundle and drift, no refit (``avrec update``)
``extract``        media catalog -> features folder (``avrec features``)
``encoders``       features folder + catalog -> self-supervised blocks (``avrec train-encoders``)
``text``           catalog words -> ``text`` block, fused vectors, media -> text projection
``recommend``      bundle -> top-n lists file (``avrec recommend``)
``search``         bundle -> search answers and tags (``avrec search``, ``avrec tags``)
``demo``           the whole pipeline on the embedded demo catalog (``avrec demo``)
``demo_words``     the demo's searches and explained recommendations
=================  ==============================================================================

Layers: the core (``recsys.data``, ``recsys.models``, ``recsys.split``, ``recsys.metrics``,
``recsys.evaluation``) imports nothing from ``features``, ``serving`` or the jobs. In ``recsys``,
only the jobs, the CLI (a thin parser over them) and the Spark engine (``recsys.spark``) import
``features``, ``training`` or ``serving``; the exception is the models' use of ``training``'s
learners (``recsys.models.bridge``; DESIGN draws training below the models). Outside the jobs only
the CLI (and benchmarks, tests) imports them; ``features``, ``training`` and ``serving`` never do.
``tests/test_layers.py`` checks this from the source.

Every job runs its ``check_*`` function first (``check_evaluate``, ``check_fit``,
``check_recommend`` ...), so the Python API refuses unusable arguments as early as the CLI does.

The package imports nothing at import time, so ``avrec --help`` stays fast.
"""
