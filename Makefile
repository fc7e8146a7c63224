# Two commands for a new machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATA ?= data/synthetic

.PHONY: demo test lint lab print-lab-cmd figures benchmark site clean

$(BIN)/activate: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e ".[dev]"
	touch $(BIN)/activate

$(DATA): | $(BIN)/activate
	$(BIN)/python -m video_processing.synthetic --out $(DATA)

demo: $(BIN)/activate $(DATA)
	$(BIN)/python -m video_processing fit --config configs/synthetic.yaml --data.data_path $(DATA)

test: $(BIN)/activate
	$(BIN)/ruff check .
	$(BIN)/pytest tests/ --durations=15
	VIDEO_PROCESSING_SMOKE=1 $(BIN)/pytest --nbmake notebooks/ --durations=0

# JupyterLab on the project's environment, registered as the "video-classification" kernel.
# `make lab LAB_PORT=8890 NO_BROWSER=1` on a remote machine; LAB_ARGS passes further options to jupyter lab.
LAB_PORT ?= 8888
NO_BROWSER ?=
LAB_ARGS ?=
# Jupyter refuses to run as root (containers, cloud GPU machines) without --allow-root; a user does not need it.
KERNEL_CMD = $(BIN)/python -m ipykernel install --user --name video-classification --display-name "Python (video-classification)"
LAB_CMD = $(BIN)/jupyter lab --notebook-dir=notebooks --port=$(LAB_PORT) $(if $(filter 0,$(shell id -u)),--allow-root) $(if $(NO_BROWSER),--no-browser) $(LAB_ARGS)

lab: $(BIN)/activate
	$(BIN)/pip install -q -c constraints.txt -e ".[dev,lab]"
	$(KERNEL_CMD)
	$(LAB_CMD)

# The two commands `make lab` runs after installing, one a line: tests/test_lab.py runs exactly these.
print-lab-cmd:
	@echo '$(KERNEL_CMD)'
	@echo '$(LAB_CMD)'

# Loader clips/s: the tutorial's pipeline vs ours vs decoding alone, raw vs prepared clips (docs/benchmarks.md).
benchmark: $(BIN)/activate
	$(BIN)/python benchmarks/loader_throughput.py

# The README's figures in docs/, drawn by the notebooks' own functions.
figures: $(BIN)/activate
	$(BIN)/python -m video_processing.lessons.draw_figures --out docs

# The lessons' web site in site/: README, guides and the notebooks executed at full size (docs/build_site.py);
# an executed notebook is reused until it or the package changes. .github/workflows/pages.yml publishes it.
site: $(BIN)/activate
	$(BIN)/python docs/build_site.py

lint: $(BIN)/activate
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) lightning_logs .pytest_cache
