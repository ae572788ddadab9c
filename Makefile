# xsim — the two commands a user needs are `make run` and `make test`; both set up .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
ARCH     ?= arch/isaac128.yaml
WORKLOAD ?= workloads/resnet50_mta.json
OUT      ?= out

.PHONY: install run test lint fuzz bench sweep sweep-write sweep-nonideal learn-demo study study-wear clean

install: $(STAMP)

# Reinstall whenever the dependency pins or the package metadata change.
$(STAMP): setup.cfg pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev,dask,learn,onnx]'
	@# Compile numba's kernels into their on-disk cache now, so the first `make run` pays no JIT.
	$(BIN)/xsim run arch/isaac128.yaml workloads/lenet5_mta.json -o $(VENV)/warmup --functional > /dev/null
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/xsim run $(ARCH) $(WORKLOAD) -o $(OUT) --functional

# The crossbar-size sweep (64/128/256/512) of the ResNet-50 scenario; finished points are reused.
sweep: $(STAMP)
	$(BIN)/xsim sweep sweeps/crossbar_size.yaml -o $(OUT)/sweep

# The write-model sweep: cell presets x schemes x write-power budgets on the ResNet-50 scenario.
sweep-write: $(STAMP)
	$(BIN)/xsim sweep sweeps/write_model.yaml -o $(OUT)/sweep_write

# Accuracy against the cells' non-idealities: variation x fault rate x ADC bits on LeNet-5.
sweep-nonideal: $(STAMP)
	$(BIN)/xsim sweep sweeps/nonideal.yaml -o $(OUT)/sweep_nonideal

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check xsim kernels tests bench arch

# The type-aware fuzzer of arch, workload, learning-spec and .npz inputs at 1,000 cases; prints
# its tally (cases, clean, rejected, crashes, hangs) and fails on any crash or hang.
FUZZ_CASES ?= 1000
FUZZ_SEED  ?= 0
fuzz: $(STAMP)
	$(BIN)/python tests/fuzz.py --cases $(FUZZ_CASES) --seed $(FUZZ_SEED)

bench: $(STAMP)
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

# Learn XMA2's masks on scikit-learn's digits, measure the frontier, export a workload for xsim run.
learn-demo: $(STAMP)
	$(BIN)/xsim learn $(ARCH) workloads/learn_digits.json -o $(OUT)/learn

# The XMA2 study: 3 seeds, 10 strategies, a validation search, costs from the simulator;
# tables and plots into results/study (committed), exported scenarios into $(OUT)/study_exports;
# seed 0's XMA2 scenario at the main budget becomes the bundled workloads/learned_cnn_mta.json.
study: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/xsim study $(ARCH) workloads/study_glyphs.json -o results/study \
		--exports $(OUT)/study_exports --verbose --command "make study"
	$(BIN)/python -m xsim.learn.bundle $(OUT)/study_exports/seed0/xma2_0.1 workloads/learned_cnn_mta.json \
		workloads/study_glyphs.json

# Wear-aware tier 1 at several wear weights (0: plain XMA2), at the learning rates make study chose.
study-wear: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/xsim study $(ARCH) workloads/study_glyphs.json --wear-sweep 0,1,3,10,100 \
		--from-study results/study/study.json -o results/study/wear_sweep \
		--exports $(OUT)/study_exports_wear --verbose --command "make study-wear"

# Removes build outputs only: the virtual environment, caches and run outputs. Never inputs.
clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache .hypothesis $(OUT)
	find xsim kernels tests bench -name __pycache__ -type d -prune -exec rm -rf {} +
