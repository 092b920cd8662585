"""The README's REST bodies and reply decoders, run against an export through TF Serving's REST rules."""

import base64
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from stargan_tf import serving
from stargan_tf.config import DEFAULT_ATTRS
from stargan_tf.models import build_generator

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = open(os.path.join(ROOT, "README.md")).read()


def readme_example(name):
    """(body-building Python source, reply-decoding Python source) of the README's example `name`."""
    block = README.split(f"<!-- rest-example: {name} -->", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    builder = re.search(r"python - <<'EOF' > body.json\n(.*?)\nEOF\n", block, re.S).group(1)
    decoder = re.search(r'python -c "(.*)"\s*$', block.strip()).group(1)
    assert "curl -s -d @body.json http://localhost:8501/v1/models/stargan:predict > reply.json" in block
    return builder, decoder


def to_tensor(value, spec, name):
    """One JSON input value -> tensor of the signature's dtype, as TF Serving converts it."""
    if spec.dtype == tf.string:
        def unwrap(v):
            if isinstance(v, list):
                return [unwrap(x) for x in v]
            assert isinstance(v, dict) and set(v) == {"b64"}, f"{name}: string inputs are sent as {{'b64': ...}}"
            return base64.b64decode(v["b64"])
        tensor = tf.constant(unwrap(value), tf.string)
    else:
        array = np.asarray(value)
        assert array.dtype.kind in "fiu", f"{name}: expected numbers, got {array.dtype}"
        tensor = tf.constant(array, spec.dtype)
    assert spec.shape.is_compatible_with(tensor.shape), f"{name}: shape {tensor.shape} vs signature {spec.shape}"
    return tensor


def to_json(name, tensor):
    values = tensor.numpy()
    if tensor.dtype == tf.string:
        assert name.endswith("_bytes")
        return [{"b64": base64.b64encode(v).decode()} for v in values]
    return values.tolist()


def rest_predict(loaded, body):
    """TF Serving's REST `predict`: row (`instances`) or columnar (`inputs`) format."""
    fn = loaded.signatures[body["signature_name"]]
    specs = fn.structured_input_signature[1]
    if "instances" in body:
        columns = {k: [inst[k] for inst in body["instances"]] for k in body["instances"][0]}
    else:
        columns = body["inputs"]
    assert set(columns) == set(specs), f"inputs {sorted(columns)} vs signature {sorted(specs)}"
    outputs = fn(**{k: to_tensor(v, specs[k], k) for k, v in columns.items()})
    encoded = {k: to_json(k, v) for k, v in outputs.items()}
    single = list(encoded.values())[0] if len(encoded) == 1 else None
    if "instances" in body:
        return {"predictions": single if single is not None else
                [dict(zip(encoded, row, strict=True)) for row in zip(*encoded.values(), strict=True)]}
    return {"outputs": single if single is not None else encoded}


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """An export with the README's size and labels (128x128, the five default attributes), small widths."""
    path = str(tmp_path_factory.mktemp("readme") / "1")
    generator = build_generator(128, 5, conv_dim=8, repeat_num=1)
    serving.save(serving.GeneratorServer(generator, list(DEFAULT_ATTRS), 128), path)
    return tf.saved_model.load(path)


def run_example(name, loaded, tmp_path):
    builder, decoder = readme_example(name)
    body = subprocess.run([sys.executable, "-"], input=builder, capture_output=True, text=True, cwd=tmp_path,
                          check=True).stdout
    (tmp_path / "reply.json").write_text(json.dumps(rest_predict(loaded, json.loads(body))))
    subprocess.run([sys.executable, "-c", decoder], cwd=tmp_path, check=True)
    return Image.open(tmp_path / "blond.png")


def test_translate_bytes_example(loaded, tmp_path):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (218, 178, 3), dtype=np.uint8)).save(tmp_path / "photo.jpg")
    image = run_example("translate_bytes", loaded, tmp_path)
    assert image.format == "PNG" and image.size == (128, 128)


def test_edit_photo_example(tmp_path):
    """The edit_photo body and reply, against an export with mtcnn's weights: the whole photo comes back."""
    pytest.importorskip("mtcnn")
    from skimage import data as skdata

    from stargan_tf.face_graph import FaceDetector

    path = str(tmp_path / "export" / "1")
    server = serving.GeneratorServer(build_generator(128, 5, conv_dim=8, repeat_num=1), list(DEFAULT_ATTRS), 128,
                                     detector=FaceDetector.from_mtcnn(), max_faces=2)
    serving.save(server, path)
    Image.fromarray(skdata.astronaut()).save(tmp_path / "photo.jpg")
    image = run_example("edit_photo", tf.saved_model.load(path), tmp_path)
    assert image.format == "PNG" and image.size == (512, 512)


def test_serving_default_example(loaded, tmp_path):
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)).save(tmp_path / "face128.png")
    image = run_example("serving_default", loaded, tmp_path)
    assert image.size == (128, 128)


def test_readme_label_order_matches_metadata(loaded):
    names = [n.decode() for n in loaded.signatures["metadata"]()["attribute_names"].numpy()]
    assert "(the label follows `attribute_names`: " + ", ".join(names[:3]) in README.replace("\n", " ")


def package_imports(module):
    """The stargan_tf modules `module` imports (anywhere in it, lazy imports included)."""
    import ast

    tree = ast.parse(open(os.path.join(ROOT, "stargan_tf", f"{module}.py")).read())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("stargan_tf"):
            found |= {a.name for a in node.names} if node.module == "stargan_tf" else {node.module.split(".")[1]}
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("stargan_tf.")}
    return found - {module}


def test_layout_lists_every_module_in_import_order():
    modules = {f[:-3] for f in os.listdir(os.path.join(ROOT, "stargan_tf")) if f.endswith(".py")} - {"__init__"}
    section = README.split("## Layout\n", 1)[1].split("\n## ", 1)[0]
    order = list(dict.fromkeys(name for name in re.findall(r"`(\w+)`", section) if name in modules))
    assert set(order) == modules, sorted(modules - set(order))
    for position, module in enumerate(order):
        later = (package_imports(module) & modules) - set(order[:position])
        assert not later, f"{module} imports {sorted(later)}, which the README's Layout names after it"
