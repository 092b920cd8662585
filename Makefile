# `make demo` and `make test` work on a fresh machine with Python 3.11: they create .venv and install first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
DEV_STAMP := $(VENV)/.installed-dev-stamp
DEMO_DIR ?= demo_run
EXTRAS_STAMP := $(VENV)/.installed-extras-stamp

# make export / translate / app use the demo run's model by default; override any of these on the command line.
MODEL_SAVE_DIR ?= $(DEMO_DIR)/models
EXPORT_DIR ?= $(DEMO_DIR)/export
EXPORT_FLAGS ?= --include_classifier --include_faces --overwrite
PHOTO ?=
OUT ?= $(DEMO_DIR)/translated
SET ?= Blond_Hair=1
TRANSLATE_FLAGS ?= --source auto --set $(SET) --align_faces --fallback_center_crop --overwrite
APP_FLAGS ?=

.PHONY: demo test lint venv clean-demo export translate app

# pip installs with --no-compile: it compiles every installed file one at a time (40% of the install: 73 s against
# 43 s for requirements.txt and the test tools with the extras). Python then writes the .pyc of what is imported, when it
# is first imported: about 10 s for TensorFlow, torch and Gradio, against 25 s for compiling all of .venv on both cores,
# most of which nothing imports. Where PYTHONDONTWRITEBYTECODE is set Python never writes them, and every process
# (each pytest worker and subprocess, train.py, the app) compiled those packages again: importing them took 14 s, not
# 7 s. So the commands here run without it.
unexport PYTHONDONTWRITEBYTECODE
$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --no-compile -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

# Test tools (playwright drives the system's Chromium: apt-get install chromium), the optional torch extra (CPU
# build) for importing official checkpoints, the faces extra (mtcnn) and the app extra (gradio).
$(DEV_STAMP): $(STAMP) requirements-dev.txt requirements-convert.txt requirements-faces.txt requirements-app.txt
	PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 $(PY) -m pip install --quiet --no-compile -r requirements-dev.txt \
	  -r requirements-convert.txt -r requirements-faces.txt -r requirements-app.txt
	touch $(DEV_STAMP)

venv: $(STAMP)

# The faces extra (mtcnn) and the app extra (Gradio), with the package still editable: what export, translate and app
# need beyond requirements.txt.
$(EXTRAS_STAMP): $(STAMP) requirements-faces.txt requirements-app.txt
	$(PY) -m pip install --quiet --no-compile -e ".[faces,app]"
	touch $(EXTRAS_STAMP)

NEED_MODEL = @test -f "$(MODEL_SAVE_DIR)/config.json" || { echo "no trained model in $(MODEL_SAVE_DIR) \
  (no config.json): run make demo first, or pass MODEL_SAVE_DIR=DIR (a train.py --model_save_dir)" >&2; exit 2; }

# A TF Serving export of the latest checkpoint, with D's classifier and the edit_photo graph.
export: $(EXTRAS_STAMP)
	$(NEED_MODEL)
	$(PY) export.py --model_save_dir $(MODEL_SAVE_DIR) --export_dir $(EXPORT_DIR) $(EXPORT_FLAGS)

# make translate PHOTO=photo.jpg (files or folders): every face aligned, translated to SET and pasted back, into OUT.
translate: $(EXTRAS_STAMP)
	$(NEED_MODEL)
	@test -n "$(PHOTO)" || { echo "make translate needs PHOTO=path (photos and/or folders of photos)" >&2; exit 2; }
	$(PY) -m stargan_tf.translate --model_save_dir $(MODEL_SAVE_DIR) --input $(PHOTO) --output $(OUT) \
	  $(TRANSLATE_FLAGS)

# The web page on http://127.0.0.1:7860 (APP_FLAGS="--port N" for another port); Ctrl-C stops it.
app: $(EXTRAS_STAMP)
	$(NEED_MODEL)
	$(PY) -m stargan_tf.app --model_save_dir $(MODEL_SAVE_DIR) $(APP_FLAGS)

# Trains the paper's StarGAN (32x32, smaller widths) on the embedded synthetic CelebA-layout dataset, sized to finish
# in minutes on an ordinary CPU; the longer run of earlier versions: make demo DEMO_ITERS=4000 DEMO_WIDTH=32 DEMO_BATCH=16.
# Each run starts over: the previous demo run's checkpoints, samples and logs are removed (the data is kept).
DEMO_ITERS ?= 2000
DEMO_WIDTH ?= 16
DEMO_BATCH ?= 8
demo: $(STAMP)
	rm -rf $(DEMO_DIR)/models $(DEMO_DIR)/samples $(DEMO_DIR)/logs $(DEMO_DIR)/results
	$(PY) train.py --dataset Demo --demo_dir $(DEMO_DIR)/data --image_size 32 \
	  --g_conv_dim $(DEMO_WIDTH) --d_conv_dim $(DEMO_WIDTH) --g_repeat_num 4 --d_repeat_num 5 \
	  --batch_size $(DEMO_BATCH) --num_iters $(DEMO_ITERS) --num_iters_decay $$(( $(DEMO_ITERS) / 2 )) \
	  --lr_update_step 100 --log_step 100 --sample_step 500 --model_save_step 1000 --eval_step 1000 --seed 0 \
	  --log_dir $(DEMO_DIR)/logs --model_save_dir $(DEMO_DIR)/models \
	  --sample_dir $(DEMO_DIR)/samples --result_dir $(DEMO_DIR)/results

lint: $(DEV_STAMP)
	$(PY) -m ruff check .

# Two pytest workers (pytest-xdist), one test file at a time each, so a file's shared fixtures are made once: the
# tests spend much of their time tracing models in one Python thread, which a second worker overlaps. The files go
# out slowest first (tests/conftest.py's SLOWEST_FIRST), so neither worker is left alone with a long one at the end.
test: $(DEV_STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder

clean-demo:
	rm -rf $(DEMO_DIR)
