"""Reproduce a bundle's golden outputs with plain onnxruntime, numpy and the manifest: no edgeft.

Run as a script: ``python plain_check.py BUNDLE`` prints a JSON line with the max abs difference,
the tolerance and whether top-1 agrees. This is what an app developer's own code would do.
"""

import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort


def main(bundle: Path) -> dict:
    manifest = json.loads((bundle / "edgeft.json").read_text())
    golden = np.load(bundle / manifest["golden"]["file"])
    pre = manifest["preprocessing"]
    if pre["kind"] == "image":
        x = (golden["crops"].astype(np.float32) - np.array(pre["mean"], np.float32)) / np.array(pre["std"], np.float32)
        feeds = {"pixel_values": np.ascontiguousarray(x.transpose(0, 3, 1, 2))}
    else:
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(bundle / "tokenizer.json"))
        tok.enable_truncation(max_length=pre["max_length"])
        tok.enable_padding(pad_id=tok.token_to_id(pre["pad_token"]), pad_token=pre["pad_token"])
        enc = tok.encode_batch([str(t) for t in golden["texts"]])
        arrays = {"input_ids": [e.ids for e in enc], "attention_mask": [e.attention_mask for e in enc],
                  "token_type_ids": [e.type_ids for e in enc]}
        feeds = {name: np.array(arrays[name], dtype=np.int64) for name in pre["input_names"]}
    session = ort.InferenceSession(str(bundle / manifest["files"]["model"]), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == [i["name"] for i in manifest["inputs"]]
    logits = session.run(None, feeds)[0]
    return {"max_abs_diff": float(np.abs(logits - golden["logits"]).max()), "atol": manifest["golden"]["atol"],
            "top1_agrees": logits.argmax(-1).tolist() == manifest["golden"]["top1"],
            "edgeft_imported": any(m.startswith("edgeft") for m in sys.modules)}


def classify_photo(bundle: Path, photo: Path) -> dict:
    """Top-5 of one photograph, preprocessed as the manifest says, with Pillow and numpy."""
    from PIL import Image

    manifest = json.loads((bundle / "edgeft.json").read_text())
    pre = manifest["preprocessing"]
    image = Image.open(photo).convert("RGB")
    scale = pre["resize"] / min(image.size)
    image = image.resize((max(pre["size"], round(image.width * scale)), max(pre["size"], round(image.height * scale))),
                         {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR}[pre["interpolation"]])
    left, top = (image.width - pre["size"]) // 2, (image.height - pre["size"]) // 2
    crop = np.asarray(image.crop((left, top, left + pre["size"], top + pre["size"])), np.float32)
    x = ((crop - np.array(pre["mean"], np.float32)) / np.array(pre["std"], np.float32)).transpose(2, 0, 1)[None]
    session = ort.InferenceSession(str(bundle / manifest["files"]["model"]), providers=["CPUExecutionProvider"])
    logits = session.run(None, {"pixel_values": np.ascontiguousarray(x)})[0][0]
    top5 = np.argsort(-logits)[:5].tolist()
    return {"top5": top5, "labels": [manifest["labels"][i] for i in top5], "logits": logits[top5].tolist(),
            "edgeft_imported": any(m.startswith("edgeft") for m in sys.modules)}


if __name__ == "__main__":
    if len(sys.argv) == 3:
        print(json.dumps(classify_photo(Path(sys.argv[1]), Path(sys.argv[2]))))
    else:
        print(json.dumps(main(Path(sys.argv[1]))))
