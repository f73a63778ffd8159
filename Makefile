# fa3d — everything starts from a plain python3 (3.10+).
#   make demo   the main job: synthetic data -> figures (and, once the models exist, the quick cascade)
#   make test   the whole test suite
#   make pretrained   retrain the shipped model (fa3d/weights/synthetic68) from synthetic faces
# Both create the environment in .venv first if it is missing or out of date.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.fa3d-installed
OUT    ?= outputs

.PHONY: env test test-fast demo notebooks assignments solutions course-runs bench kernel lock clean pretrained recipe-300w

env: $(STAMP)

# Quiet on purpose: a newcomer's first screen should be fa3d's own output. pip -qq shows errors only;
# setuptools warns on every editable build (a note for package authors, not for users), hence
# PYTHONWARNINGS=ignore there.
# The Jupyter kernel "fa3d" is this environment, so the tests never depend on a global python3 kernel.
$(STAMP): requirements-lock.txt pyproject.toml
	@echo "fa3d: setting up $(VENV) (once; a few minutes)"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -qq --upgrade pip
	@$(PY) -m pip install -qq -r requirements-lock.txt
	@PYTHONWARNINGS=ignore $(PY) -m pip install -qq --no-deps -e .
	@$(PY) -m ipykernel install --sys-prefix --name fa3d --display-name "Python (fa3d)" >/dev/null
	@touch $(STAMP)

kernel: env

test: env
	$(PY) -m pytest -q

test-fast: env
	$(PY) -m pytest -q -m "not slow"

demo: env
	@$(PY) -m fa3d demo --out $(OUT)/demo

# Execute every notebook in quick mode into $(OUT)/notebooks (+ HTML for teachers, timings.json) and
# write their outputs into the committed notebooks (what GitHub shows; each at most 1.5 MB), then the
# solution keys from those outputs (`make solutions`).
notebooks: env
	$(PY) benchmarks/run_notebooks.py --out $(OUT)/notebooks --commit
	$(PY) notebooks/make_assignments.py --solutions
	$(PY) notebooks/make_assignments.py --out notebooks/student

# The students' notebooks: the committed ones with every ### BEGIN/END SOLUTION region of the code
# exercises replaced by `raise NotImplementedError()` (nbgrader's convention), outputs cleared.
assignments: env
	$(PY) notebooks/make_assignments.py --out notebooks/student

# The teachers' solution keys, notebooks/solutions/NN_*_solutions.md: the numbers each committed, executed
# notebook printed and its code exercises with their solutions and checks' verdicts, generated; the worked
# answers to the open exercises below them, written by hand, kept. tests/test_assignments.py fails when a
# key is out of date.
solutions: env
	$(PY) notebooks/make_assignments.py --solutions

# The course's ready-made quick runs (fa3d/weights/course, shipped), which let each notebook run alone
# in seconds: notebooks 02-04 and 08 train them (TRAIN = True) into $(OUT)/course-runs, about
# 25 minutes on 2 CPU cores; then they are exported (weights only, float16 kernels, subnets
# shared with the run they started from stored once). Rerun after any change to the synthetic
# faces, the quick preset or schedule, or fa3d's version (tests/test_course.py says when).
course-runs: env
	rm -rf $(OUT)/course-runs fa3d/weights/course.new
	$(PY) benchmarks/run_notebooks.py 02 03 04 08 --train --no-html --out $(OUT)/course-runs
	$(PY) -m fa3d.course export $(OUT)/course-runs/runs --out fa3d/weights/course.new
	rm -rf fa3d/weights/course && mv fa3d/weights/course.new fa3d/weights/course

# The model shipped in fa3d/weights/synthetic68 (fa3d predict's default): synthetic faces only,
# 68 points, the quick architecture; about 75 minutes on 2 CPU cores. See its MODEL.md (and its changelog:
# the model before it is fa3d/weights/synthetic68-v1, `--run pretrained-v1`). The 2D stages see 10,000
# faces; the Z stage 1,500 of them (with the 2D stages frozen), at half the crop's side
# (--z-input-size 32: a quarter of the Z net's FLOPs, no worse in depth; docs/speed.md).
# The faces: the five default levers plus even_jaw and photo_poses, the two that helped on 300-W's real
# validation faces (benchmarks/renderer_bench.py; docs/results.md). --augment photo: each epoch also blurs,
# adds noise to or greys some crops.
PRETRAINED_LEVERS ?= background,body,glasses,occluders,camera,even_jaw,photo_poses
PRETRAINED_ARGS ?= --preset quick --scheme 68 --num-valid 200 --seed 0 --no-progress --augment photo \
	--synthetic-levers $(PRETRAINED_LEVERS)
pretrained: env
	$(PY) -m fa3d train $(PRETRAINED_ARGS) --stages detection,regression,joint --num-train 10000 \
		--out $(OUT)/pretrained-2d --overwrite
	$(PY) -m fa3d train $(PRETRAINED_ARGS) --stages z --num-train 1500 --z-input-size 32 \
		--init-from $(OUT)/pretrained-2d --out $(OUT)/pretrained-run --overwrite
	$(PY) -m fa3d.app.release $(OUT)/pretrained-run --overwrite

# The real-data recipe (docs/training.md, "Real faces: the 300-W recipe"): the first shipped model
# (pretrained-v1, which the recipe was measured from) fine-tuned at the medium preset on 300-W's faces
# (W300=DIR: your download, prepared by data_scripts/prepare_ibug_300w.py) mixed with synthetic faces,
# then scored on the validation part of 300-W's photos. Research terms: the runs
# record them and can never be exported as a shipped model. About 5.5 hours on 2 CPU cores. Run again after
# an interruption, it resumes each step from its checkpoint (a finished step returns at once).
W300 ?= data/300w
RECIPE_ARGS ?= --preset medium --scheme 68 --num-valid 150 --seed 0 --no-progress
resume_if_there = $$(test -f $(1)/checkpoint.pt && echo --resume)
# The first four steps train the regression net without the detection features, as the measured recipe did;
# the fifth adds them (a 1x1 convolution that starts at zero) and trains the joint stage once more; the sixth
# trains it again with fewer synthetic faces (150 to 1,444 real ones).
NO_FEATURES = --regression-features none
recipe-300w: env
	$(PY) -m fa3d train $(RECIPE_ARGS) $(NO_FEATURES) --data synthetic:1500+300w:$(W300) --init-from pretrained-v1 \
		--stages detection,regression,joint --augment photo --out $(OUT)/300w-medium-1 $(call resume_if_there,$(OUT)/300w-medium-1)
	$(PY) -m fa3d train $(RECIPE_ARGS) $(NO_FEATURES) --data synthetic:500+300w:$(W300) --init-from $(OUT)/300w-medium-1 \
		--stages joint --augment paper --epochs-scale 3 --out $(OUT)/300w-medium-2 $(call resume_if_there,$(OUT)/300w-medium-2)
	$(PY) -m fa3d train $(RECIPE_ARGS) $(NO_FEATURES) --data synthetic:500+300w:$(W300) --init-from $(OUT)/300w-medium-2 \
		--stages joint --augment paper --epochs-scale 8 --out $(OUT)/300w-medium-3 $(call resume_if_there,$(OUT)/300w-medium-3)
	$(PY) -m fa3d train $(RECIPE_ARGS) $(NO_FEATURES) --data synthetic:500+300w:$(W300) --init-from $(OUT)/300w-medium-3 \
		--stages joint --augment paper --epochs-scale 8 --out $(OUT)/300w-medium-4 $(call resume_if_there,$(OUT)/300w-medium-4)
	$(PY) -m fa3d train $(RECIPE_ARGS) --data synthetic:500+300w:$(W300) --init-from $(OUT)/300w-medium-4 \
		--stages joint --augment paper --epochs-scale 8 --out $(OUT)/300w-medium-5 $(call resume_if_there,$(OUT)/300w-medium-5)
	$(PY) -m fa3d train $(RECIPE_ARGS) --data synthetic:150+300w:$(W300) --init-from $(OUT)/300w-medium-5 \
		--stages joint --augment paper --epochs-scale 6 --out $(OUT)/300w-medium-6 $(call resume_if_there,$(OUT)/300w-medium-6)
	$(PY) -m fa3d train $(RECIPE_ARGS) --data synthetic:150+300w:$(W300) --init-from $(OUT)/300w-medium-6 \
		--stages joint --augment paper --epochs-scale 6 --out $(OUT)/300w-medium $(call resume_if_there,$(OUT)/300w-medium)
	$(PY) -m fa3d evaluate --run $(OUT)/300w-medium --data 300w:$(W300) --split validation --flip \
		--out $(OUT)/300w-medium/validation

bench: env
	$(PY) benchmarks/synthetic_speed.py

# Refresh the pinned versions from the current environment.
lock: env
	{ head -3 requirements-lock.txt; $(PY) -m pip freeze --exclude-editable | grep -vi '^fa3d'; } > requirements-lock.txt.new
	mv requirements-lock.txt.new requirements-lock.txt

clean:
	rm -rf $(OUT) .pytest_cache
