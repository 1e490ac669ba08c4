import os

# Hide TensorFlow's C++ INFO and WARNING start-up lines in test output; errors still show.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
