"""The sizes edgeft accepts from files it did not write itself (stdlib only, decided here once).

Every limit is far above what a real bundle or dataset needs and far below what would exhaust a
phone or a build machine: a value beyond one is refused with a clear error before any memory
or disk is spent on it.
"""

from __future__ import annotations

MAX_CROP = 2048                  # preprocessing.size: the model's input side in pixels
MAX_RESIZE = 4096                # preprocessing.resize: the shorter side before the crop
MAX_RESIZED_PIXELS = 64 * 2**20  # an image after resizing (a panorama's long side grows with resize)
MAX_IMAGE_PIXELS = 64 * 2**20    # an image file's width x height (8192 x 8192), checked before decoding
MAX_SEQUENCE = 8192              # preprocessing.max_length in tokens
MAX_LABELS = 100_000
MAX_TEXT_CHARS = 1_000_000       # one text to classify
MAX_MANIFEST_BYTES = 16 * 2**20
MAX_GOLDEN_BYTES = 256 * 2**20   # golden.npz, uncompressed
MAX_ZIP_ENTRIES = 64             # a packaged bundle holds a handful of files
MAX_ZIP_BYTES = 4 * 2**30        # a packaged bundle, uncompressed
MAX_ZIP_RATIO = 100              # uncompressed / compressed for one entry (ONNX weights compress ~1.1x)
