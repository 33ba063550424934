"""Text encoders: catalog text (title, tags, description) to vectors, behind one interface.

Two encoders share :class:`TextEncoder`'s three methods:

``rows(texts)``
    Each text as a unit row of the encoder's full *text space* (zero row: nothing known in it).
``coords(rows)``
    Those rows in the dense coordinates of the ``text`` feature block (what fusion, content,
    bridge and hybrid read, and what media is projected into).
``encode(texts)``
    ``coords(rows(texts))``: the dense block itself.

- :class:`LexicalEncoder` (always available): scikit-learn TF-IDF on words (1-2 grams) and on
  character 3-5 grams inside word boundaries (``char_wb``), so plurals, stems and typos still
  share most of their n-grams. The two unit TF-IDF rows are weighted by ``sqrt(w)`` and
  ``sqrt(1 - w)`` and concatenated: the text space is their union, and a cosine in it is
  ``w * cos_words + (1 - w) * cos_chars``. The dense block is a TruncatedSVD (LSA) of that space;
  its components are orthonormal, so for a unit query row ``q`` and a block vector ``p`` of unit
  norm, ``coords(q) . p`` is exactly the cosine between ``q`` and the LSA reconstruction of ``p``:
  sparse (exact) and dense (projected) scores live on one scale.
- :class:`SemanticEncoder` (optional): a sentence-transformers model read from a LOCAL directory,
  never downloaded; rows are its unit embeddings and ``coords`` is the identity.

State is JSON + arrays (vocabularies, idf, SVD components); nothing is pickled. A semantic
encoder's state names its model directory, which bundles copy.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from recsys.errors import ConfigError, DataError, NotFittedError
from recsys.models.content import l2_rows

TEXT_BLOCK = "text"
ENCODER_JSON = "encoder.json"
ENCODER_NPZ = "encoder.npz"
LEXICAL_VERSION = "1"
DEFAULT_TEXT_DIM = 128
#: at most this many texts are encoded by :meth:`LexicalEncoder.terms` (search queries); more go
#: through scikit-learn's vectorised ``transform``
FEW_TEXTS = 8
_WORD_RE = re.compile(r"\w", re.UNICODE)


def has_words(text: str) -> bool:
    """Whether ``text`` holds any letter or digit (a query of punctuation only means nothing)."""
    return bool(_WORD_RE.search(text or ""))


class TextEncoder:
    """Interface of the text encoders (see the module docstring)."""

    kind = "base"

    def fit(self, texts: Sequence[str]) -> "TextEncoder":
        raise NotImplementedError

    def rows(self, texts: Sequence[str]) -> sp.csr_matrix | np.ndarray:
        """(n, V) unit rows in the text space (CSR for lexical, dense for semantic)."""
        raise NotImplementedError

    def coords(self, rows: sp.csr_matrix | np.ndarray) -> np.ndarray:
        """(n, dim) float32 dense block coordinates of ``rows``."""
        raise NotImplementedError

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(n, dim) float32: ``coords(rows(texts))``."""
        return self.coords(self.rows(texts))

    @property
    def dim(self) -> int:
        raise NotImplementedError

    def save(self, directory: str | Path) -> Path:
        raise NotImplementedError


class LexicalEncoder(TextEncoder):
    """TF-IDF over words and character n-grams, reduced by TruncatedSVD for the dense block.

    Parameters
    ----------
    dim : int
        Dense block size (capped by the number of texts and of n-gram features).
    word_weight : float in [0, 1]
        Share of the cosine that comes from word n-grams (the rest from character n-grams).
    word_ngrams, char_ngrams : (int, int)
        n-gram ranges.
    seed : int
        Random state of the randomized SVD.
    """

    kind = "lexical"

    def __init__(self, dim: int = DEFAULT_TEXT_DIM, word_weight: float = 0.5,
                 word_ngrams: tuple[int, int] = (1, 2), char_ngrams: tuple[int, int] = (3, 5),
                 seed: int = 0) -> None:
        if int(dim) != dim or dim < 1:
            raise ConfigError(f"text dim must be a positive integer, got {dim!r}")
        if not 0.0 <= word_weight <= 1.0:
            raise ConfigError(f"word_weight must be in [0, 1], got {word_weight!r}")
        self.dim_request = int(dim)
        self.word_weight = float(word_weight)
        self.word_ngrams = tuple(int(v) for v in word_ngrams)
        self.char_ngrams = tuple(int(v) for v in char_ngrams)
        self.seed = int(seed)

    def _vectorizers(self, vocab: tuple[dict, dict] | None = None):
        from sklearn.feature_extraction.text import TfidfVectorizer

        # sublinear tf: a word repeated in a description should not outweigh the title
        common = dict(lowercase=True, sublinear_tf=True, strip_accents="unicode", dtype=np.float32)
        word = TfidfVectorizer(analyzer="word", ngram_range=self.word_ngrams,
                               vocabulary=None if vocab is None else vocab[0], **common)
        char = TfidfVectorizer(analyzer="char_wb", ngram_range=self.char_ngrams,
                               vocabulary=None if vocab is None else vocab[1], **common)
        return word, char

    def fit(self, texts: Sequence[str]) -> "LexicalEncoder":
        """Learn vocabularies, idf and the SVD from ``texts`` (the catalog items that have text)."""
        from sklearn.decomposition import TruncatedSVD

        texts = [t for t in texts if has_words(t)]
        self.__dict__.pop("_fast_", None)  # analyzers of a previous fit
        if len(texts) < 2:
            raise DataError(f"the lexical text encoder needs at least 2 items with text, got {len(texts)}")
        self.word_, self.char_ = self._vectorizers()
        try:
            self.word_.fit(texts)
        except ValueError:  # no token of 2+ characters anywhere: character n-grams still work
            self.word_ = None
        self.char_.fit(texts)
        x = self._tfidf(texts)
        k = max(1, min(self.dim_request, x.shape[0], x.shape[1] - 1))
        svd = TruncatedSVD(n_components=k, random_state=self.seed).fit(x)
        self._set_components(svd.components_)
        return self

    def _set_components(self, components: np.ndarray) -> None:
        self.components_ = np.asarray(components, dtype=np.float32)
        # (V, dim) C-ordered once: sparse rows @ a transposed view would copy it on every query
        self.components_t_ = np.ascontiguousarray(self.components_.T)

    def _check_fitted(self) -> None:
        if not hasattr(self, "components_"):
            raise NotFittedError("this LexicalEncoder is not fitted; call fit(texts) or LexicalEncoder.load(dir)")

    @property
    def dim(self) -> int:
        self._check_fitted()
        return int(self.components_.shape[0])

    @property
    def vocabulary_size(self) -> int:
        self._check_fitted()
        return (0 if self.word_ is None else len(self.word_.vocabulary_)) + len(self.char_.vocabulary_)

    def rows(self, texts: Sequence[str]) -> sp.csr_matrix:
        """(n, V) float32 CSR, unit rows (zero rows for texts with no known n-gram)."""
        self._check_fitted()
        if len(texts) <= FEW_TEXTS:
            return _csr_rows([self.terms(t) for t in texts], self.vocabulary_size)
        return self._tfidf(texts)

    def terms(self, text: str | None) -> tuple[np.ndarray, np.ndarray]:
        """One text's unit row as ``(columns, weights)``: the same row as :meth:`rows`, computed directly.

        A search query is one short text, and scikit-learn's ``transform`` spends ~1 ms on input
        checks and sparse bookkeeping for it; here its own analyzers (the same tokenisation,
        lowercasing, accent stripping and n-grams) feed the TF-IDF arithmetic of
        ``TfidfVectorizer(sublinear_tf=True)``: ``(1 + log count) * idf``, each vectorizer's row
        unit-normalised, the two weighted by ``sqrt(w)`` and ``sqrt(1 - w)`` and renormalised.

        Returns
        -------
        columns : (m,) int64, increasing
        weights : (m,) float32, unit norm (both empty when no n-gram of the text is known)
        """
        self._check_fitted()
        text = "" if text is None else str(text)
        if not hasattr(self, "_fast_"):
            self._fast_ = _fast_parts(self)
        cols, vals = [], []
        for analyze, vocab, idf, offset, scale in self._fast_:
            if scale == 0.0:  # word_weight 0 or 1: that half adds nothing (scikit-learn stores no entry either)
                continue
            counts: dict[int, int] = {}
            for gram in analyze(text):
                j = vocab.get(gram)
                if j is not None:
                    counts[j] = counts.get(j, 0) + 1
            if not counts:
                continue
            j = np.fromiter(counts.keys(), np.int64, len(counts))
            w = (1.0 + np.log(np.fromiter(counts.values(), np.float64, len(counts)))) * idf[j]
            w *= scale / np.sqrt(w @ w)
            cols.append(j + offset)
            vals.append(w)
        if not cols:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        j, w = np.concatenate(cols), np.concatenate(vals)
        order = np.argsort(j)
        return j[order], (w[order] / np.sqrt(w @ w)).astype(np.float32)

    def _tfidf(self, texts: Sequence[str]) -> sp.csr_matrix:
        from sklearn import config_context
        from sklearn.preprocessing import normalize

        texts = ["" if t is None else str(t) for t in texts]
        parts = []
        # the inputs are our own strings and fitted vocabularies: scikit-learn's argument checks
        # are half the time of encoding one search query, so they are skipped here
        with config_context(skip_parameter_validation=True, assume_finite=True):
            c = self.char_.transform(texts)
            if self.word_ is not None:
                parts.append(self.word_.transform(texts) * np.float32(np.sqrt(self.word_weight)))
                c = c * np.float32(np.sqrt(1.0 - self.word_weight))
            parts.append(c)
            # a text with words but no char n-grams (or the reverse) gets its known half renormalised
            return normalize(sp.hstack(parts, format="csr", dtype=np.float32), copy=False)

    def coords(self, rows: sp.csr_matrix | np.ndarray) -> np.ndarray:
        self._check_fitted()
        return np.asarray(rows @ self.components_t_, dtype=np.float32)

    # ------------------------------------------------------------------ state
    def save(self, directory: str | Path) -> Path:
        """``DIR/encoder.json`` (settings + vocabularies) and ``DIR/encoder.npz`` (idf, components)."""
        self._check_fitted()
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        meta = {"kind": self.kind, "version": LEXICAL_VERSION, "dim": self.dim_request,
                "word_weight": self.word_weight, "word_ngrams": list(self.word_ngrams),
                "char_ngrams": list(self.char_ngrams), "seed": self.seed,
                "word_vocabulary": _vocabulary(self.word_), "char_vocabulary": _vocabulary(self.char_)}
        (d / ENCODER_JSON).write_text(json.dumps(meta, sort_keys=True))
        arrays = {"char_idf": self.char_.idf_, "components": self.components_}
        if self.word_ is not None:
            arrays["word_idf"] = self.word_.idf_
        np.savez(d / ENCODER_NPZ, **arrays)
        return d

    @classmethod
    def from_state(cls, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> "LexicalEncoder":
        if meta.get("version") != LEXICAL_VERSION:
            raise DataError(f"lexical encoder state version {meta.get('version')!r} is not {LEXICAL_VERSION!r}; "
                            "re-run avrec features")
        self = cls(meta["dim"], meta["word_weight"], tuple(meta["word_ngrams"]), tuple(meta["char_ngrams"]),
                   meta["seed"])
        # the vectorizers are rebuilt from their vocabularies and idf: same rows as at fit time
        word, self.char_ = self._vectorizers((meta["word_vocabulary"] or {}, meta["char_vocabulary"]))
        self.char_.idf_ = np.asarray(arrays["char_idf"], dtype=np.float64)
        self.word_ = None
        if meta["word_vocabulary"] is not None:
            word.idf_ = np.asarray(arrays["word_idf"], dtype=np.float64)
            self.word_ = word
        self._set_components(arrays["components"])
        return self


class SemanticEncoder(TextEncoder):
    """A sentence-transformers model loaded from a local directory (never downloaded).

    Parameters
    ----------
    model_dir : path
        A folder written by ``SentenceTransformer.save`` (config, tokenizer, safetensors weights).
    batch_size : int
    """

    kind = "semantic"

    def __init__(self, model_dir: str | Path, batch_size: int = 64) -> None:
        self.model_dir = Path(model_dir)
        self.batch_size = int(batch_size)

    def fit(self, texts: Sequence[str] = ()) -> "SemanticEncoder":
        """Load the model (it is pre-trained: nothing is learned from ``texts``)."""
        import os

        d = self.model_dir
        if not d.is_dir() or not any(d.iterdir()):
            raise ConfigError(f"--text-model {d} is not a sentence-transformers model folder "
                              "(save one with SentenceTransformer(...).save(DIR)); models are never downloaded")
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise ConfigError(f"the semantic text encoder needs the text extra: pip install 'avrec[text]' ({exc})") from None
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local folder must never reach the network
        try:
            self.model_ = SentenceTransformer(str(d), device="cpu", local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot load the sentence-transformers model in {d}: {exc}") from None
        # sentence-transformers 5.x+ renamed the method; either way the dimension may be None
        dim_of = getattr(self.model_, "get_embedding_dimension", None) or self.model_.get_sentence_embedding_dimension
        self.dim_ = int(dim_of() or self.model_.encode(["x"]).shape[1])
        return self

    @property
    def dim(self) -> int:
        if not hasattr(self, "model_"):
            raise NotFittedError("this SemanticEncoder is not loaded; call fit()")
        return self.dim_

    def rows(self, texts: Sequence[str]) -> np.ndarray:
        """(n, dim) float32 unit embeddings; texts without words get zero rows."""
        texts = ["" if t is None else str(t) for t in texts]
        out = np.zeros((len(texts), self.dim), np.float32)
        keep = [i for i, t in enumerate(texts) if has_words(t)]
        if keep:
            emb = self.model_.encode([texts[i] for i in keep], batch_size=self.batch_size,
                                     convert_to_numpy=True, show_progress_bar=False)
            out[keep] = l2_rows(np.asarray(emb, dtype=np.float32))
        return out

    def coords(self, rows: sp.csr_matrix | np.ndarray) -> np.ndarray:
        return np.asarray(rows, dtype=np.float32)

    def save(self, directory: str | Path) -> Path:
        """``DIR/encoder.json`` naming the model folder (bundles copy the folder itself)."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        meta = {"kind": self.kind, "model_dir": str(self.model_dir.resolve()), "batch_size": self.batch_size,
                "dim": self.dim}
        (d / ENCODER_JSON).write_text(json.dumps(meta, sort_keys=True))
        return d


def _fast_parts(enc: LexicalEncoder) -> list[tuple]:
    """Per vectorizer of ``enc``: ``(analyzer, vocabulary, idf, column offset, weight)``, as :meth:`terms` reads them."""
    parts = []
    offset = 0
    if enc.word_ is not None:
        parts.append((enc.word_.build_analyzer(), enc.word_.vocabulary_, np.asarray(enc.word_.idf_, np.float64),
                      0, np.sqrt(enc.word_weight)))
        offset = len(enc.word_.vocabulary_)
    scale = 1.0 if enc.word_ is None else np.sqrt(1.0 - enc.word_weight)
    parts.append((enc.char_.build_analyzer(), enc.char_.vocabulary_, np.asarray(enc.char_.idf_, np.float64),
                  offset, scale))
    return parts


def _csr_rows(rows: Sequence[tuple[np.ndarray, np.ndarray]], width: int) -> sp.csr_matrix:
    """(len(rows), width) float32 CSR from ``(columns, weights)`` pairs."""
    indptr = np.zeros(len(rows) + 1, np.int64)
    indptr[1:] = np.cumsum([len(j) for j, _ in rows])
    indices = np.concatenate([j for j, _ in rows]) if rows else np.zeros(0, np.int64)
    data = np.concatenate([w for _, w in rows]) if rows else np.zeros(0, np.float32)
    return sp.csr_matrix((data.astype(np.float32, copy=False), indices.astype(np.int32), indptr.astype(np.int32)),
                         shape=(len(rows), width))


def _vocabulary(vectorizer) -> dict[str, int] | None:
    """A fitted vectorizer's n-gram -> column map as plain JSON (None for no vectorizer)."""
    return None if vectorizer is None else {k: int(i) for k, i in vectorizer.vocabulary_.items()}


def make_encoder(model_dir: str | Path | None = None, dim: int = DEFAULT_TEXT_DIM) -> TextEncoder:
    """The semantic encoder when ``model_dir`` is given, else the lexical one."""
    return SemanticEncoder(model_dir) if model_dir is not None else LexicalEncoder(dim=dim)


def load_encoder(directory: str | Path, model_dir: str | Path | None = None) -> TextEncoder:
    """Rebuild an encoder written by ``save``; ``model_dir`` overrides a semantic encoder's folder."""
    d = Path(directory)
    if not (d / ENCODER_JSON).is_file():
        raise DataError(f"{d} has no text encoder ({ENCODER_JSON}); re-run avrec features")
    meta = json.loads((d / ENCODER_JSON).read_text())
    if meta.get("kind") == LexicalEncoder.kind:
        with np.load(d / ENCODER_NPZ, allow_pickle=False) as z:
            return LexicalEncoder.from_state(meta, {k: z[k] for k in z.files})
    if meta.get("kind") == SemanticEncoder.kind:
        return SemanticEncoder(model_dir or meta["model_dir"], meta.get("batch_size", 64)).fit()
    raise DataError(f"{d / ENCODER_JSON}: unknown text encoder kind {meta.get('kind')!r}")
