// Runs an edgeft app model from Node.js (onnxruntime-node) on a PNG photo's raw RGB bytes: no
// preprocessing here, the graph does it. Prints the model's outputs as JSON.
//   node run_app.js MODEL(.onnx|.ort) PHOTO.png
const crypto = require("crypto");
const fs = require("fs");
const ort = require("onnxruntime-node");
const { PNG } = require("pngjs");

async function main([model, photo]) {
  const png = PNG.sync.read(fs.readFileSync(photo)); // RGBA, 8 bits per channel
  const rgb = new Uint8Array(png.width * png.height * 3);
  for (let i = 0, j = 0; i < png.data.length; i += 4) {
    rgb[j++] = png.data[i]; rgb[j++] = png.data[i + 1]; rgb[j++] = png.data[i + 2];
  }
  const session = await ort.InferenceSession.create(model);
  const out = await session.run({ pixels: new ort.Tensor("uint8", rgb, [png.height, png.width, 3]) });
  const values = (name) => Array.from(out[name].data, Number);
  return {
    width: png.width, height: png.height,
    rgb_sha256: crypto.createHash("sha256").update(rgb).digest("hex"),
    onnxruntime: require("onnxruntime-node/package.json").version,
    logits: values("logits"), probabilities: values("probabilities"),
    top_k_scores: values("top_k_scores"), top_k_indices: values("top_k_indices"),
  };
}

main(process.argv.slice(2))
  .then((result) => console.log(JSON.stringify(result)))
  .catch((error) => { console.error(`error: ${error.message}`); process.exit(1); });
