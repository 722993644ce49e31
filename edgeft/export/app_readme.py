"""The README of an app bundle (``edgeft package --app``): the calls from JavaScript, Kotlin and
Swift, the model's input and outputs, and what the raw model does with input it cannot take.

Only the JavaScript snippet runs here (``tests/runtime/test_node_binding.py`` runs it as written,
with onnxruntime-node); the Kotlin and Swift ones are written against those APIs' documentation
and are not run."""

from __future__ import annotations

from edgeft.manifest import Manifest

JS_IMAGE = """\
// npm install onnxruntime-node pngjs   (onnxruntime-react-native and onnxruntime-web take the same calls)
const fs = require("fs");
const ort = require("onnxruntime-node");
const { PNG } = require("pngjs");

async function classify(modelPath, labels, photoPath) {
  const png = PNG.sync.read(fs.readFileSync(photoPath)); // RGBA, 8 bits per channel
  const rgb = new Uint8Array(png.width * png.height * 3);
  for (let i = 0, j = 0; i < png.data.length; i += 4) {
    rgb[j++] = png.data[i]; rgb[j++] = png.data[i + 1]; rgb[j++] = png.data[i + 2]; // drop alpha
  }
  const session = await ort.InferenceSession.create(modelPath);
  const pixels = new ort.Tensor("uint8", rgb, [png.height, png.width, 3]); // no other preprocessing
  const out = await session.run({ pixels });
  const scores = out.top_k_scores.data, indices = out.top_k_indices.data; // indices: BigInt64Array
  return Array.from(indices, (index, i) => ({ label: labels[Number(index)], score: scores[i] }));
}

const manifest = JSON.parse(fs.readFileSync("edgeft.json", "utf8"));
classify(manifest.files.model, manifest.labels, process.argv[2] || "photo.png")
  .then((top) => console.log(JSON.stringify(top)));
"""

KOTLIN_IMAGE = """\
// build.gradle: implementation("com.microsoft.onnxruntime:onnxruntime-android:<version>")
import ai.onnxruntime.OnnxTensor
import ai.onnxruntime.OrtEnvironment
import android.graphics.Bitmap
import java.nio.ByteBuffer

val env = OrtEnvironment.getEnvironment()
val session = env.createSession(modelBytes) // {model}, read from your assets

fun classify(bitmap: Bitmap): List<Pair<Int, Float>> {{
    val argb = IntArray(bitmap.width * bitmap.height)
    bitmap.getPixels(argb, 0, bitmap.width, 0, 0, bitmap.width, bitmap.height)
    val rgb = ByteBuffer.allocateDirect(argb.size * 3)
    for (p in argb) {{ rgb.put((p shr 16).toByte()); rgb.put((p shr 8).toByte()); rgb.put(p.toByte()) }}
    rgb.rewind()
    val shape = longArrayOf(bitmap.height.toLong(), bitmap.width.toLong(), 3)
    OnnxTensor.createTensor(env, rgb, shape, ai.onnxruntime.OnnxJavaType.UINT8).use {{ pixels ->
        session.run(mapOf("pixels" to pixels)).use {{ out ->
            val scores = (out.get("top_k_scores").get().value as Array<FloatArray>)[0]
            val indices = (out.get("top_k_indices").get().value as Array<LongArray>)[0]
            return indices.mapIndexed {{ i, index -> index.toInt() to scores[i] }} // index into "labels"
        }}
    }}
}}
"""

SWIFT_IMAGE = """\
// Podfile: pod 'onnxruntime-objc'
import onnxruntime_objc

let env = try ORTEnv(loggingLevel: .warning)
let session = try ORTSession(env: env, modelPath: modelPath, sessionOptions: nil) // {model}

/// rgb: height * width * 3 bytes, row by row (from a CGContext drawn as RGBA, alpha dropped)
func classify(rgb: Data, width: Int, height: Int) throws -> [(Int, Float)] {{
    let pixels = try ORTValue(tensorData: NSMutableData(data: rgb), elementType: .uInt8,
                              shape: [NSNumber(value: height), NSNumber(value: width), 3])
    let out = try session.run(withInputs: ["pixels": pixels],
                              outputNames: ["top_k_scores", "top_k_indices"], runOptions: nil)
    let scores = try out["top_k_scores"]!.tensorData() as Data
    let indices = try out["top_k_indices"]!.tensorData() as Data
    let s = scores.withUnsafeBytes {{ Array($0.bindMemory(to: Float.self)) }}
    let i = indices.withUnsafeBytes {{ Array($0.bindMemory(to: Int64.self)) }}
    return zip(i, s).map {{ (Int($0), $1) }} // index into "labels"
}}
"""

_EXTENSIONS = """\
**This model tokenizes inside its graph with onnxruntime-extensions' `BertTokenizer` operator**
(domain `ai.onnx.contrib`). The app needs that library for its platform, registered on the
session options before the session is created:
- Android: `com.microsoft.onnxruntime:onnxruntime-extensions-android`;
  `options.registerCustomOpLibrary(OrtxPackage.getLibraryPath())`
- iOS: the CocoaPod `onnxruntime-extensions-c`; `ORTSessionOptions.registerCustomOps(functionPointer:)`
  with `RegisterCustomOps` from `onnxruntime_extensions.h`
- Python: `pip install onnxruntime-extensions`; `options.register_custom_ops_library(get_library_path())`
  (`edgeft.runtime` does this itself)
- C/C++: `RegisterCustomOpsLibrary_V2` with the extensions' shared library
- JavaScript: onnxruntime-node and onnxruntime-react-native publish no extensions package; build
  onnxruntime-extensions into a custom onnxruntime, or use the image-only path. Not tested here.
"""


def _image_section(m: Manifest) -> str:
    pre, app = m.preprocessing, m.app
    return f"""## Input
`pixels`: **uint8**, shape `[height, width, 3]`, RGB, rows top to bottom (HWC), any height and width:
what the platform's decoder gives, with EXIF orientation applied and the alpha channel dropped. One
image per call. No other preprocessing: inside the graph, in standard ONNX operators (opset 18),
the shorter side is resized to {pre['resize']} px ({pre['interpolation']}, with Pillow's antialiasing,
`Resize` {app.get('resize', {})}), the center {pre['size']}x{pre['size']} is cropped, `(x - {pre['mean']}) / {pre['std']}`
is applied per channel and the layout becomes NCHW float32.

Measured against edgeft's Python runtime (Pillow) on the golden images: max abs logit difference
{app['parity']['max_abs_diff']:.3g} (tolerance {app['parity']['atol']:.3g}), top-1 agreement
{app['parity']['top1_agreement']:.0%}. The resize differs from Pillow's by at most 1 level in
a small fraction of pixels (rounding; `benchmarks/app_model.py` measures it on real photos).

What the raw model does with input it cannot take (the Python runtime refuses each with a clear
message before it reaches the model):
- 4 channels (RGBA) or 1 (grayscale `[h, w, 1]`): onnxruntime refuses the call: "Got invalid
  dimensions for input: pixels". A 2-D grayscale array: "Invalid rank for input: pixels".
- float pixels: "Unexpected input data type ... expected: (tensor(uint8))".
- a zero-sized image: the `Resize` node fails ("Input dim is zero but required output dim is non-zero").
- an extreme aspect ratio (say 1x5000) is resized as asked: the shorter side to {pre['resize']} px
  makes a very large intermediate image. Check the aspect ratio in the app if such input can occur.
"""


def _text_section(m: Manifest) -> str:
    pre = m.preprocessing
    return f"""## Input
`text`: **string**, shape `[1]`, UTF-8: one text per call. Inside the graph it is lower-cased
(accents stripped), split into WordPiece tokens with the bundle's vocabulary and truncated at
{pre['max_length']} tokens, as `tokenizer.json` does in edgeft's Python runtime.

{_EXTENSIONS}
Measured against edgeft's Python runtime (Hugging Face tokenizers) on the golden texts: max abs
logit difference {m.app['parity']['max_abs_diff']:.3g} (tolerance {m.app['parity']['atol']:.3g}).
Known differences of the extensions' tokenizer: special-token text written in the input (`[CLS]`)
is split as words instead of being read as that token, and some non-Latin capitals (Greek, the
Turkish dotted I) are not lower-cased as Python does, so they may become `[UNK]`.
"""


def app_readme(m: Manifest) -> str:
    """The package README of an app bundle."""
    image = m.task == "image-classification"
    model, k = m.model_file, m.app["top_k"]
    labels = ", ".join(m.labels[:20]) + (f", ... ({len(m.labels)} in all)" if len(m.labels) > 20 else "")
    ort = model.endswith(".ort")
    ops = ("`required_operators.config` lists every operator the model uses, the preprocessing's "
           "included (`Resize`, `Slice`, `Cast`, `Transpose`, `Softmax`, `TopK`...): pass it to "
           "`build.sh --minimal_build --include_ops_by_config required_operators.config` for a reduced ORT "
           "Mobile build." if ort else "Package with `--format ort` for ORT Mobile and its "
           "`required_operators.config`.")
    calls = (f"""## JavaScript (onnxruntime-node; run by edgeft's tests on a real photo)
```js
{JS_IMAGE}```

## Kotlin (Android, `ai.onnxruntime`; not run by edgeft's tests)
```kotlin
{KOTLIN_IMAGE.format(model=model)}```

## Swift (iOS, `onnxruntime-objc`; not run by edgeft's tests)
```swift
{SWIFT_IMAGE.format(model=model)}```
""" if image else "")
    return f"""# {m.source.get('backbone', {}).get('name', 'model')}: {m.task}, app model

`{model}` ({m.quantization.get('name', m.quantization['mode'])}) takes what an app has and returns
the answer: no preprocessing to re-implement. Labels (index = class id) are in `edgeft.json`:
{labels}.

{_image_section(m) if image else _text_section(m)}
## Outputs
- `logits`: float32 `[1, {len(m.labels)}]`
- `probabilities`: float32 `[1, {len(m.labels)}]`, the softmax of the logits
- `top_k_scores`: float32 `[1, {k}]`, the {k} highest probabilities, highest first
- `top_k_indices`: int64 `[1, {k}]`, their class ids: `labels[index]` in `edgeft.json`

{ops}

{calls}
## From Python
```python
from edgeft.runtime import EdgeModel

model = EdgeModel.load(".")  # checks the manifest, the model's sha256 and its inputs
print(model.predict([{'"photo.jpg"' if image else '"text to classify"'}], top_k=3))
```
`edgeft verify .` on the target device runs the golden inputs in `golden.npz` (what an app passes)
and compares with the Python runtime's outputs stored there, within the tolerance above.
"""
