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


def markdown_lines():
    """The README's lines outside fenced code blocks (a `# comment` in a bash block is no heading)."""
    fenced = False
    for line in README.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced:
            yield line


def github_anchor(heading):
    """The anchor GitHub gives a heading: lower case, punctuation (backticks, colons, brackets...) dropped, spaces to
    hyphens; a repeated anchor gets -1, -2, ... (added by `heading_anchors`)."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def heading_anchors():
    """{anchor: heading text} of every heading, numbered as GitHub numbers repeats."""
    anchors, seen = {}, {}
    for line in markdown_lines():
        match = re.match(r"(#{1,6}) (.+)$", line)
        if match:
            base = github_anchor(match.group(2))
            anchor = base if base not in seen else f"{base}-{seen[base]}"
            seen[base] = seen.get(base, 0) + 1
            anchors[anchor] = match.group(2)
    return anchors


def test_github_anchor_rules():
    assert github_anchor("Measuring quality: the evaluation command and `--eval_step`") == \
        "measuring-quality-the-evaluation-command-and---eval_step"
    assert github_anchor("Use it from Keras: fit()") == "use-it-from-keras-fit"
    assert github_anchor("Results on real data (Fashion-MNIST)") == "results-on-real-data-fashion-mnist"


def test_contents_lists_every_section_in_order():
    sections = [line[3:] for line in markdown_lines() if line.startswith("## ") and line != "## Contents"]
    contents = README.split("## Contents\n", 1)[1].split("\n## ", 1)[0]
    entries = re.findall(r"^- \[(.+)\]\(#([^)]+)\)$", contents, re.M)
    assert [text for text, _ in entries] == sections, "the Contents list must name every ## section, in order"
    for text, anchor in entries:
        assert anchor == github_anchor(text), f"Contents: [{text}] links to #{anchor}, not #{github_anchor(text)}"


def test_every_link_within_the_readme_resolves():
    anchors = heading_anchors()
    links = re.findall(r"\]\(#([^)\s]+)\)", "\n".join(markdown_lines()))
    assert links, "expected links to sections"
    broken = sorted(set(links) - set(anchors))
    assert not broken, f"links to no heading: {broken}"


def makefile_defaults():
    """{NAME: value} of the Makefile's `NAME ?= value` lines, $(DEMO_DIR) expanded."""
    text = open(os.path.join(ROOT, "Makefile")).read()
    values = dict(re.findall(r"^(\w+) \?=[ \t]*(.*)$", text, re.M))
    return {k: v.replace("$(DEMO_DIR)", values["DEMO_DIR"]).strip() for k, v in values.items()}


def test_make_variables_table_matches_the_makefile():
    """The README's table of make export/translate/app variables gives each Makefile default."""
    section = README.split("## After the demo: export, translate and the app\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(\w+)` \| ([^|]*) \|", section, re.M)
    defaults = makefile_defaults()
    assert {"MODEL_SAVE_DIR", "EXPORT_DIR", "PHOTO", "OUT", "TRANSLATE_FLAGS", "APP_FLAGS"} <= {n for n, _ in rows}
    for name, cell in rows:
        documented = re.match(r"`([^`]*)`", cell.strip())
        assert defaults[name] == (documented.group(1) if documented else ""), f"{name}: README says {cell.strip()!r}"


def make_dry_run(*args):
    """The command lines `make -n ARGS` would run, continuation lines joined."""
    out = subprocess.run(["make", "-n", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return out.replace("\\\n", " ").splitlines()


def test_make_export_translate_app_pass_options_their_commands_accept():
    """make export / translate / app run the CLIs on the demo's checkpoints with options each parser accepts, and
    install the extras editable first."""
    import shlex

    from stargan_tf import app, export, translate

    lines = make_dry_run("export", "translate", "app", "PHOTO=photo.jpg")
    parsers = {"export.py": export.parse_args, "stargan_tf.translate": translate.parse_args,
               "stargan_tf.app": app.parse_args}
    parsed = {}
    for line in lines:
        words = shlex.split(line)
        for name, parse in parsers.items():
            if name in words:
                parsed[name] = parse(words[words.index(name) + 1:])
    assert set(parsed) == set(parsers), lines
    assert {args.model_save_dir for args in parsed.values()} == {"demo_run/models"}
    assert parsed["export.py"].export_dir == "demo_run/export" and parsed["export.py"].include_faces
    assert parsed["stargan_tf.translate"].input == ["photo.jpg"] and parsed["stargan_tf.translate"].align_faces
    makefile = open(os.path.join(ROOT, "Makefile")).read()
    assert 'pip install --quiet --no-compile -e ".[faces,app]"' in makefile
    for target in ("export", "translate", "app"):
        assert re.search(rf"^{target}: \$\(EXTRAS_STAMP\)$", makefile, re.M), target


def test_make_targets_name_what_is_missing(tmp_path):
    """Without a trained model, or make translate without PHOTO: a message saying what to pass, before any Python."""
    (tmp_path / "stamp").touch()
    run = lambda *args: subprocess.run(["make", *args, f"EXTRAS_STAMP={tmp_path / 'stamp'}", "PY=false"],  # noqa: E731
                                       cwd=ROOT, capture_output=True, text=True)
    result = run("export", f"MODEL_SAVE_DIR={tmp_path / 'none'}")
    assert result.returncode == 2 and "run make demo first, or pass MODEL_SAVE_DIR=" in result.stderr, result.stderr
    (tmp_path / "config.json").write_text("{}")
    result = run("translate", f"MODEL_SAVE_DIR={tmp_path}")
    assert result.returncode == 2 and "make translate needs PHOTO=" in result.stderr, result.stderr
