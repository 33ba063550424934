"""Text modality: encoders, catalog text with an explicit has_text mask, the text block in models.

The semantic encoder is tested with a tiny sentence-transformers model the test builds itself
(a one-layer BERT with random weights and a word-level tokenizer trained on a few sentences):
nothing is downloaded.
"""

from __future__ import annotations

import numpy as np
import pytest

from features.catalog_text import catalog_text, split_tags, tag_vocabulary, text_from_columns
from features.text import LexicalEncoder, SemanticEncoder, load_encoder
from recsys.errors import ConfigError, DataError

DOCS = ["dog barking in the yard", "rain on a tin roof", "calm piano for studying", "heavy rain and thunder",
        "a puppy and a dog playing", "soft piano lullaby", "city traffic at night", "ocean waves on the beach"]
SENTENCES = DOCS + ["dogs", "pianos", "waves", "storm"]


@pytest.fixture(scope="module")
def lexical():
    return LexicalEncoder(dim=6).fit(DOCS)


def best(encoder, query: str) -> str:
    sims = (encoder.rows([query]) @ encoder.rows(DOCS).T)
    sims = sims.toarray() if hasattr(sims, "toarray") else sims
    return DOCS[int(np.argmax(sims))]


@pytest.mark.parametrize("query,expected", [("dogs barking", "dog barking in the yard"),
                                            ("pianno lulaby", "soft piano lullaby"),
                                            ("thunderstorm rains", "heavy rain and thunder")])
def test_lexical_matches_plurals_and_typos(lexical, query, expected):
    assert best(lexical, query) == expected


def test_lexical_state_round_trip_is_exact(lexical, tmp_path):
    lexical.save(tmp_path)
    again = load_encoder(tmp_path)
    q = ["rain roof", "piano", "zzzz", ""]
    assert (again.rows(q) != lexical.rows(q)).nnz == 0
    np.testing.assert_array_equal(again.encode(DOCS), lexical.encode(DOCS))


@pytest.mark.parametrize("word_weight", [0.5, 0.0, 1.0])
def test_one_text_rows_equal_scikit_learns_vectorised_rows(word_weight):
    """The direct path for a few texts (search queries) gives scikit-learn's TF-IDF rows."""
    enc = LexicalEncoder(dim=4, word_weight=word_weight).fit(DOCS + ["Café crème naïve résumé", "rain rain rain"])
    texts = ["rain on a tin roof", "Rain RAIN rain!!", "pianno lulaby", "café creme", "zzzz qqq", "", None,
             "dog", "a", "  the dog,  the DOG  "]
    direct = enc.rows(texts[:8])  # few texts: the direct path
    assert len(texts[:8]) <= 8 and len(texts) > 8
    vectorised = enc.rows(texts)  # many texts: scikit-learn's transform
    assert direct.shape == (8, enc.vocabulary_size) and direct.dtype == np.float32
    np.testing.assert_allclose(direct.toarray(), vectorised[:8].toarray(), atol=1e-6)
    cols, w = enc.terms("rain on a tin roof")
    assert (np.diff(cols) > 0).all() and abs(float(w @ w) - 1.0) < 1e-5
    assert len(enc.terms("zzzz qqq")[0]) == 0


def test_dense_coordinates_give_the_cosine_with_the_reconstruction(lexical):
    """coords(q) . p == cos(q, p @ components) for unit p: projected and exact scores share a scale."""
    rng = np.random.default_rng(0)
    p = rng.normal(size=(5, lexical.dim)).astype(np.float32)
    p /= np.linalg.norm(p, axis=1, keepdims=True)
    q = lexical.rows(["rain piano dog"])
    recon = p @ lexical.components_
    exact = (q @ recon.T).ravel() / np.linalg.norm(recon, axis=1)
    np.testing.assert_allclose(lexical.coords(q) @ p.T, exact[None, :], atol=1e-5)


def test_missing_text_is_explicit():
    text = text_from_columns(["a", "b", "c", "d"], {"title": ["Rain", None, "  ", "!!!"],
                                                    "tags": ["storm; night", "", None, None]}, ("title", "tags", "x"))
    assert text.has_text.tolist() == [True, False, False, False]
    assert text.texts[0] == "Rain. storm; night" and text.tags[0] == ["storm", "night"]
    assert text.columns == ["title", "tags"]
    assert split_tags("Rain, Tin roof|night") == ["rain", "tin roof", "night"]
    assert tag_vocabulary(text) == ["night", "storm"]


def test_explicit_text_columns_that_do_not_exist_raise():
    from recsys.data import Catalog

    cat = Catalog(["a"], ["a.mp4"])
    with pytest.raises(ConfigError, match="text columns"):
        catalog_text(cat, ["title"], required=True)
    assert not catalog_text(cat).has_text.any()


def test_lexical_needs_two_texts():
    with pytest.raises(DataError):
        LexicalEncoder().fit(["only one", "", "?!"])


# ---------------------------------------------------------------------------- semantic (tiny local model)
def tiny_sentence_model(d):
    """A sentence-transformers folder: 1-layer BERT (random weights) + word-level tokenizer + mean pooling."""
    import torch
    from sentence_transformers import SentenceTransformer

    try:  # sentence-transformers >= 6 moved the module classes
        from sentence_transformers.sentence_transformer import modules as models
    except ImportError:
        from sentence_transformers import models
    from tokenizers import Tokenizer, pre_tokenizers, trainers
    from tokenizers import models as tm
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    torch.manual_seed(0)
    tok = Tokenizer(tm.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(SENTENCES, trainers.WordLevelTrainer(special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]", model_max_length=32)
    cfg = BertConfig(vocab_size=tok.get_vocab_size(), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=34)
    BertModel(cfg).save_pretrained(d / "hf")
    fast.save_pretrained(d / "hf")
    SentenceTransformer(modules=[models.Transformer(str(d / "hf")), models.Pooling(16, "mean")],
                        device="cpu").save(str(d / "st"))
    return d / "st"


@pytest.fixture(scope="module")
def sentence_model(tmp_path_factory):
    pytest.importorskip("sentence_transformers")
    return tiny_sentence_model(tmp_path_factory.mktemp("st"))


def test_semantic_encoder_reads_a_local_folder(sentence_model, tmp_path):
    enc = SemanticEncoder(sentence_model).fit()
    rows = enc.rows(["dog barking", "", "rain on a tin roof"])
    assert rows.shape == (3, 16) and not rows[1].any()
    np.testing.assert_allclose(np.linalg.norm(rows[[0, 2]], axis=1), 1.0, atol=1e-5)
    enc.save(tmp_path)
    np.testing.assert_allclose(load_encoder(tmp_path).rows(DOCS), enc.rows(DOCS), atol=1e-6)
    with pytest.raises(ConfigError, match="never downloaded"):
        SemanticEncoder(tmp_path / "absent").fit()


# ---------------------------------------------------------------------------- the text block in models
WORDS = ("rain storm thunder", "piano keys calm", "dog bark puppy", "ocean waves surf")


def planted_text(feats, share=0.6, seed=0):
    from serving_data import cluster

    rng = np.random.default_rng(seed)
    ids = feats.item_ids
    titles = [WORDS[cluster(i)] if rng.uniform() < share else None for i in ids]
    return text_from_columns(ids, {"title": titles}, ("title",))


@pytest.fixture(scope="module")
def planted():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parents[1] / "serving"))
    from serving_data import planted_data

    return planted_data()


@pytest.mark.parametrize("semantic", [False, True])
def test_text_block_joins_fusion_content_and_bridge(planted, semantic, request):
    from features.fusion import FusionConfig
    from recsys.models import make_model
    from recsys.jobs.text import build_text

    train, _, _, feats = planted
    text = planted_text(feats)
    model_dir = request.getfixturevalue("sentence_model") if semantic else None
    out, state, fusion = build_text(feats, text, model_dir=model_dir, fusion_config=FusionConfig())
    has = out.mask_of("text")
    assert has.tolist() == text.has_text.tolist() and not out.blocks["text"][~has].any()
    assert "text" in fusion.blocks_ and out.fused.shape[1] == sum(b.shape[1] for b in out.blocks.values())
    assert state.projection is not None and state.projection.n_train_ == int(has.sum())
    content = make_model("content", block="text", half_life_days=None).fit(train, out)
    assert content.has_media_.tolist() == has.tolist()  # items without words are not scored by words
    bridge = make_model("bridge", epochs=5, hidden=16, cold_share=None,
                        als_params={"factors": 8, "regularization": 0.05, "alpha": 5.0, "weighting": "none"})
    assert bridge.fit(train, out).predicted_factors_.shape[0] == out.n_items


def test_projection_predicts_the_words_of_items_without_text(planted):
    from serving_data import cluster

    from features.fusion import FusionConfig
    from recsys.jobs.text import build_text

    _, _, _, feats = planted
    text = planted_text(feats)
    out, state, _ = build_text(feats, text, fusion_config=FusionConfig())
    pred, has_media = state.projection.predict(out)
    queries = state.encoder.coords(state.encoder.rows(list(WORDS)))
    untagged = np.flatnonzero(~text.has_text)
    guess = np.argmax(pred[untagged] @ queries.T, axis=1)
    assert np.mean(guess == cluster(feats.item_ids[untagged])) > 0.9


def test_text_state_round_trip_copies_a_semantic_model(planted, sentence_model, tmp_path):
    import shutil

    from recsys.jobs.text import build_text
    from serving.text_state import TextState

    train, _, _, feats = planted
    local = tmp_path / "model_src"
    shutil.copytree(sentence_model, local)
    _, state, _ = build_text(feats, planted_text(feats), model_dir=local)
    state.save(tmp_path / "text", copy_model=True)
    shutil.rmtree(local)  # the saved state must not need the original folder any more
    again = TextState.load(tmp_path / "text")
    np.testing.assert_allclose(again.encoder.rows(DOCS), state.encoder.rows(DOCS), atol=1e-6)
    assert again.has_text.tolist() == state.has_text.tolist() and again.vocabulary == state.vocabulary
    assert again.projection is not None
