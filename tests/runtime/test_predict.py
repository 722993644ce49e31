"""`edgeft predict` and `EdgeModel.predict` as an app uses them."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from edgeft.cli import main
from edgeft.errors import DataError
from edgeft.runtime import EdgeModel
from edgeft.runtime.model import InputError


def test_text_from_arguments_file_and_stdin(text_bundle, tmp_path):
    texts = ["the rain today was snow 3", "the goal today was match 5"]
    (tmp_path / "texts.txt").write_text("\n".join(texts) + "\n\n")
    runs = [
        CliRunner().invoke(main, ["predict", str(text_bundle), *texts, "--json", "-k", "2"]),
        CliRunner().invoke(main, ["predict", str(text_bundle), "--file", str(tmp_path / "texts.txt"), "--json", "-k", "2"]),
        CliRunner().invoke(main, ["predict", str(text_bundle), "-", "--json", "-k", "2"], input="\n".join(texts)),
    ]
    outputs = []
    for result in runs:
        assert result.exit_code == 0, result.output
        outputs.append(json.loads(result.stdout))
    assert outputs[0] == outputs[1] == outputs[2]
    first = outputs[0][0]
    assert first["input"] == texts[0] and len(first["top_k"]) == 2
    assert first["label"] == first["top_k"][0]["label"] and first["top_k"][0]["score"] >= first["top_k"][1]["score"]


def test_text_is_padded_to_the_longest_item_not_max_length(text_bundle):
    model = EdgeModel.load(text_bundle)
    feeds = model.preprocess(["short", "a somewhat longer sentence than the other one"])
    longest = int(feeds["attention_mask"].sum(1).max())
    assert feeds["input_ids"].shape == (2, longest) and longest < model.preprocessing.max_length
    long_text = " ".join(["word"] * 500)
    assert model.preprocess([long_text])["input_ids"].shape[1] == model.preprocessing.max_length


def test_predictions_do_not_depend_on_batching(text_bundle):
    model = EdgeModel.load(text_bundle)
    texts = [f"the {w} today was {w} {i}" for i, w in enumerate(["rain", "goal", "soup", "wind", "race"])]
    together = model.predict(texts, top_k=3, return_logits=True)
    chunked = model.predict(texts, top_k=3, batch_size=2, return_logits=True)
    for a, b in zip(together, chunked, strict=True):
        assert a.label == b.label
        # dynamic INT8 picks activation scales per batch, so logits move a little with the batch
        np.testing.assert_allclose(a.logits, b.logits, atol=0.03 * np.abs(b.logits).max())


def test_images_from_paths_pil_and_arrays_agree(image_bundle, image_run):
    model = EdgeModel.load(image_bundle)
    paths = sorted((image_run.parent / "images").rglob("*.png"))[:3]
    pil = [Image.open(p).convert("RGB") for p in paths]
    arrays = [np.asarray(im) for im in pil]
    by_path, by_pil, by_array = (model.predict(x, return_logits=True) for x in (paths, pil, arrays))
    for a, b, c in zip(by_path, by_pil, by_array, strict=True):
        assert a.logits == b.logits == c.logits
    assert model.predict(arrays[0])[0].label == by_path[0].label  # one array is one image


def test_bad_inputs_are_refused(image_bundle, text_bundle, tmp_path):
    model = EdgeModel.load(image_bundle)
    with pytest.raises(InputError, match="uint8 HWC"):
        model.predict([np.zeros((8, 8), np.uint8)])
    with pytest.raises(InputError, match="uint8 HWC"):
        model.predict([np.zeros((8, 8, 3), np.float32)])
    with pytest.raises(InputError, match="no inputs"):
        model.predict([])
    with pytest.raises(InputError, match="no inputs"):
        EdgeModel.load(text_bundle).predict([])
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    with pytest.raises(DataError, match="cannot read image"):
        model.predict([tmp_path / "broken.jpg"])
    result = CliRunner().invoke(main, ["predict", str(image_bundle), str(tmp_path / "broken.jpg")])
    assert result.exit_code == 2 and "cannot read image" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(main, ["predict", str(text_bundle)])
    assert result.exit_code == 2 and "no inputs" in result.output
