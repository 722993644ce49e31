"""Make edgeft's bundled sample data (deterministic; run once, the output is committed).

Images: four procedural texture classes (stripes, checkerboard, dots, rings) with random
colours, scales, rotations and noise, 96 px JPEG. Text: four topics (weather, sports, food,
technology), short sentences composed from hand-written phrases.

    python scripts/make_sample_data.py
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

import numpy as np
from PIL import Image

OUT = Path(__file__).resolve().parent.parent / "edgeft" / "data" / "samples"
SIZE = 96
PER_CLASS = 40


def _coords(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    theta = rng.uniform(0, np.pi)
    u = x * np.cos(theta) + y * np.sin(theta)
    v = -x * np.sin(theta) + y * np.cos(theta)
    return u, v


def _pattern(kind: str, rng: np.random.Generator) -> np.ndarray:
    """A float mask in [0, 1] for one texture class."""
    u, v = _coords(rng)
    period = rng.uniform(8, 24)
    if kind == "stripes":
        return (np.sin(2 * np.pi * u / period + rng.uniform(0, 6.3)) > 0).astype(np.float32)
    if kind == "checkerboard":
        return ((np.floor(u / period) + np.floor(v / period)) % 2).astype(np.float32)
    if kind == "dots":
        cu = (u % period) - period / 2
        cv = (v % period) - period / 2
        radius = period * rng.uniform(0.18, 0.32)
        return (cu**2 + cv**2 < radius**2).astype(np.float32)
    if kind == "rings":
        cy, cx = rng.uniform(0, SIZE, size=2)
        y, x = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
        r = np.sqrt((x - cx) ** 2 + (y - cy) ** 2)
        return (np.sin(2 * np.pi * r / period) > 0).astype(np.float32)
    raise ValueError(kind)


def make_images(rng: np.random.Generator) -> None:
    for kind in ("checkerboard", "dots", "rings", "stripes"):
        folder = OUT / "shapes" / kind
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(PER_CLASS):
            mask = _pattern(kind, rng)[..., None]
            fg, bg = rng.uniform(0, 255, size=(2, 3))
            img = mask * fg + (1 - mask) * bg + rng.normal(0, rng.uniform(4, 20), size=(SIZE, SIZE, 3))
            Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(folder / f"{kind}_{i:03d}.jpg", quality=85)


TOPICS = {
    "weather": {
        "subjects": ["The forecast", "This morning", "The afternoon", "Tonight", "The weekend", "The coast",
                     "The valley", "Tomorrow", "The north of the country", "The city"],
        "predicates": ["brings heavy rain and strong wind", "will be sunny with a light breeze",
                       "turns cold with a chance of snow", "stays cloudy with scattered showers",
                       "sees thunderstorms rolling in from the west", "warms up to thirty degrees",
                       "starts with thick fog that clears by noon", "gets a hard frost overnight",
                       "has hail and gusts near the hills", "stays dry but humid"],
        "tails": ["", " according to the met office", ", so take an umbrella", ", so dress warmly",
                  " before the temperature drops again"],
    },
    "sports": {
        "subjects": ["The home team", "Our goalkeeper", "The young striker", "The visiting side",
                     "The marathon runner", "The tennis champion", "The coach", "The cycling team",
                     "The captain", "The relay squad"],
        "predicates": ["won the final in extra time", "scored twice in the second half",
                       "lost the match on penalties", "broke the national record",
                       "was sent off after a late tackle", "reached the semi-final of the cup",
                       "trained hard before the championship", "climbed to the top of the league",
                       "saved a penalty in the last minute", "signed a new three-year contract"],
        "tails": ["", " in front of a sold-out stadium", " last night", " this season",
                  " despite an early injury"],
    },
    "food": {
        "subjects": ["The bakery", "My grandmother", "The new restaurant", "The chef", "This recipe",
                     "The street vendor", "Our kitchen", "The cafe on the corner", "The cookbook",
                     "The menu"],
        "predicates": ["serves a rich tomato soup with fresh bread", "bakes sourdough every morning",
                       "uses plenty of garlic and olive oil", "makes the best chocolate cake in town",
                       "simmers the curry for three hours", "grills fish with lemon and herbs",
                       "adds a pinch of salt to the caramel", "offers a spicy noodle dish",
                       "roasts vegetables with rosemary", "whips cream for the strawberry tart"],
        "tails": ["", " for dinner", " on Sundays", ", and it tastes delicious", " with a glass of wine"],
    },
    "technology": {
        "subjects": ["The new phone", "The software update", "The startup", "The laptop", "The database",
                     "The cloud service", "The chip maker", "The open source project", "The app",
                     "The network router"],
        "predicates": ["ships with a faster processor", "fixes a security bug in the kernel",
                       "released a compiler for its language", "doubles the battery life",
                       "crashed after the latest patch", "adds support for encrypted backups",
                       "runs machine learning models on the device", "cut its memory use in half",
                       "moved its servers to a new data center", "now syncs files over the network"],
        "tails": ["", " this week", ", engineers said", " according to the release notes",
                  " for developers"],
    },
}


def make_text() -> None:
    rnd = random.Random(7)
    rows = []
    for label, parts in TOPICS.items():
        combos = [(s, p, t) for s in parts["subjects"] for p in parts["predicates"] for t in parts["tails"]]
        for s, p, t in rnd.sample(combos, 80):
            rows.append({"text": f"{s} {p}{t}.", "label": label})
    rnd.shuffle(rows)
    with (OUT / "topics.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["text", "label"])
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    make_images(np.random.default_rng(7))
    make_text()
    print(f"wrote sample data under {OUT}")
