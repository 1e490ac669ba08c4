"""The fast forward paths give the plain model call's outputs."""

import numpy as np
import pytest

from sigbridge.config import Config
from sigbridge.models.builder import build_model, set_seed
from sigbridge.models.bundle import load_latest_bundle
from sigbridge.models.inference import Predictor

WINDOW = 40
# float32 outputs of the same ops in a different grouping (batch size, XLA fusion) differ by a
# few ulps; tanh outputs lie in (-1, 1).
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def model():
    set_seed(7)
    return build_model(Config().model, window=WINDOW)


@pytest.fixture(scope="module")
def windows():
    return np.random.default_rng(11).normal(size=(700, WINDOW, 4)).astype(np.float32)


def plain_call(model, windows):
    return model(windows, training=False).numpy()


@pytest.mark.parametrize("jit_compile", [True, False])
@pytest.mark.parametrize("batch", [1, 2, 7, 256, 700])
def test_predictor_matches_plain_call(model, windows, jit_compile, batch):
    predictor = Predictor(model, WINDOW, jit_compile=jit_compile)
    assert predictor.wait_for_xla(timeout=120) == jit_compile
    expected = plain_call(model, windows[:batch])
    outputs = predictor.predict(windows[:batch])
    assert outputs.shape == (batch, 2)
    assert outputs.dtype == np.float32
    np.testing.assert_allclose(outputs, expected, rtol=0, atol=TOLERANCE)


def test_predictor_matches_model_predict(model, windows):
    predictor = Predictor(model, WINDOW)
    expected = model.predict(windows[:5], verbose=0)
    np.testing.assert_allclose(predictor.predict(windows[:5]), expected, rtol=0, atol=TOLERANCE)


def test_predictor_batch_one_equals_row_of_batch(model, windows):
    predictor = Predictor(model, WINDOW)
    predictor.wait_for_xla(timeout=120)
    single = np.concatenate([predictor.predict(windows[index : index + 1]) for index in range(20)])
    np.testing.assert_allclose(single, predictor.predict(windows[:20]), rtol=0, atol=TOLERANCE)


def test_predictor_chunks_large_calls(model, windows):
    predictor = Predictor(model, WINDOW, chunk_size=64)
    np.testing.assert_allclose(predictor.predict(windows[:300]), plain_call(model, windows[:300]), rtol=0, atol=TOLERANCE)


def test_predictor_uses_xla_when_asked(model):
    assert Predictor(model, WINDOW, jit_compile=True).wait_for_xla(timeout=120)
    assert not Predictor(model, WINDOW, jit_compile=False).wait_for_xla(timeout=0)


def test_predictor_serves_while_xla_compiles(model, windows):
    """Single windows go through the graph function until XLA is ready, with the same outputs."""
    predictor = Predictor(model, WINDOW, jit_compile=True)
    outputs = [predictor.predict(windows[index : index + 1]) for index in range(30)]
    predictor.wait_for_xla(timeout=120)
    outputs.append(predictor.predict(windows[30:31]))
    np.testing.assert_allclose(np.concatenate(outputs), plain_call(model, windows[:31]), rtol=0, atol=TOLERANCE)


def test_predictor_rejects_wrong_shape(model):
    predictor = Predictor(model, WINDOW)
    with pytest.raises(ValueError, match=r"`windows` must have shape \(B, 40, 4\)"):
        predictor.predict(np.zeros((1, WINDOW - 1, 4)))
    with pytest.raises(ValueError, match="received"):
        predictor.predict(np.zeros((WINDOW, 4)))


def test_predictor_rejects_bad_chunk_size(model):
    with pytest.raises(ValueError, match="`chunk_size` must be a positive int"):
        Predictor(model, WINDOW, chunk_size=0)


def test_bundle_predictor_matches_plain_call(trained_models_dir, eurusd, fast_config):
    """The served bundle's scaled windows through its Predictor, against the Keras call."""
    from sigbridge.models.features import compute_features, make_windows, window_end_indices

    bundle = load_latest_bundle(trained_models_dir, "EURUSD", "H1")
    bundle.predictor.wait_for_xla(timeout=120)
    bars = eurusd.bars
    features = compute_features(bars.high, bars.low, bars.close, fast_config.features)
    ends = window_end_indices(len(bars), fast_config.features)[-300:]
    scaled = bundle.scaling.apply(make_windows(features, ends, bundle.window))
    expected = plain_call(bundle.model, scaled)
    np.testing.assert_allclose(bundle.predictor.predict(scaled), expected, rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(bundle.predictor.predict(scaled[-1:]), expected[-1:], rtol=0, atol=TOLERANCE)
