# Entry points. `make demo` and `make test` do all set-up themselves (Debian packages, both
# environments) and are idempotent. Environments live in a cache keyed by the hash of their
# requirement files, so every checkout with the same lock reuses them.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

CACHE ?= $(or $(SOILCARBON_CACHE),$(or $(XDG_CACHE_HOME),$(HOME)/.cache)/soilcarbon)
CORE_ENV := $(CACHE)/envs/core-$(shell cat requirements/core.in requirements/core.lock | sha256sum | cut -c1-12)
QGIS_ENV := $(CACHE)/envs/qgis-$(shell cat requirements/qgis.in | sha256sum | cut -c1-12)
CORE_PY := $(CORE_ENV)/bin/python
QGIS_PY := $(QGIS_ENV)/bin/python
# The checkout's own sources always win over whatever another checkout installed into a shared env.
CORE_RUN := PYTHONPATH=$(CURDIR):$(CURDIR)/training $(CORE_PY)
QGIS_RUN := PYTHONPATH=$(CURDIR) QT_QPA_PLATFORM=offscreen SOILCARBON_CORE_PYTHON=$(CORE_PY) $(QGIS_PY)
OUT ?= $(CURDIR)/out

.PHONY: help setup system core-command demo screenshot test test-core test-plugin bench bench-sptgnn bench-imagery ghg-model campaign-report campaign-confirm campaign-third lint package lock clean

help:
	@echo "make demo     set up, train an SpTGNN ensemble on the demo SOC points, map SOC with uncertainty"
	@echo "make screenshot  QGIS (under Xvfb) showing the demo prediction styled by the plugin: docs/images/qgis_demo.png"
	@echo "make test     set up, then run the core and the plugin test suites"
	@echo "make setup    Debian packages + core env + QGIS env (idempotent)"
	@echo "make bench    benchmarks (sampling, graph, ensemble, training step, imagery, 1M/10M-cell maps), figures in training/reports/"
	@echo "make campaign-report  campaign planner vs random vs cLHS on Africa (held-out region, retrained)"
	@echo "make campaign-confirm the same once on a second held-out region (Southern Africa), settings fixed"
	@echo "make campaign-third   hybrid campaigns join the choice; evaluated once on a third region (Ethiopia); regions pooled"
	@echo "make bench-sptgnn  SpTGNN vs XGBoost / RF / kriging + ablations (about an hour)"
	@echo "make bench-imagery mean vs attention pooling, fine-tuning modes of the imagery stream"
	@echo "make ghg-model simulate 100,000 site-years, calibrate, pre-train and evaluate KG-FGNN, write the shipped GHG model (about 25 min)"
	@echo "make lint     ruff"
	@echo "make package  the plugin zip in dist/"
	@echo "core env: $(CORE_ENV)"
	@echo "QGIS env: $(QGIS_ENV)"

system:
	@bash scripts/setup-system.sh

$(CORE_ENV)/.ready: requirements/core.in requirements/core.lock | system
	@bash scripts/setup-env.sh core $(CORE_ENV)

$(QGIS_ENV)/.ready: requirements/qgis.in | system
	@bash scripts/setup-env.sh qgis $(QGIS_ENV)

# Every set-up points the core env's `soilcarbon` command at this checkout (an editable install,
# about a second) and records the core interpreter where the plugin looks when nothing is configured.
core-command: $(CORE_ENV)/.ready
	@log=$$(mktemp); $(CORE_PY) -m pip install --isolated --quiet --no-deps --no-build-isolation -e $(CURDIR) \
	  >$$log 2>&1 || { cat $$log; rm -f $$log; exit 1; }; rm -f $$log
	@echo "$(CORE_PY)" > $(CACHE)/core-python.tmp && mv $(CACHE)/core-python.tmp $(CACHE)/core-python

setup: system $(CORE_ENV)/.ready $(QGIS_ENV)/.ready core-command

# The demo: train a 5-member SpTGNN ensemble on the 118 La Libertad SOC stocks (terrain covariates,
# Landsat bands and 320 m DEM chips as the imagery stream: TerraMind embeddings when its weights are in
# ~/.cache/soilcarbon/terramind, chip statistics otherwise), then predict with uncertainty at the points
# and on the 30 m grid.
LL := data/la_libertad
DEMO_TERRAIN := --raster $(LL)/SRTMGL1_SRTMGL1.2.sdat=elevation \
  $(foreach g,slope twi vbf cprof devmean openn openp vdepth,--raster $(LL)/SRTMGL1_SRTMGL1.2_$(g).sdat=$(g))
DEMO_LANDSAT = $(foreach b,RED NIR SW1 SW2,--$(1) $(LL)/GlobalForestChange2000-2014_first_$(b)L00.tif=landsat_$(b))
DEMO_CHIPS := --dem $(LL)/SRTMGL1_SRTMGL1.2.sdat
DEMO_MODEL := $(OUT)/demo_model.zip

demo: setup
	@mkdir -p $(OUT)
	$(CORE_RUN) -m soilcarbon_core train $(LL)/COSha30.csv --crs EPSG:32618 --target COSha30 --unit t/ha \
	  $(DEMO_TERRAIN) $(call DEMO_LANDSAT,imagery) $(DEMO_CHIPS) --chip-size 32 --elevation elevation \
	  --slope slope --members 5 --device auto -o $(DEMO_MODEL)
	$(CORE_RUN) -m soilcarbon_core predict $(DEMO_MODEL) $(LL)/COSha30.csv --crs EPSG:32618 \
	  $(DEMO_TERRAIN) $(call DEMO_LANDSAT,raster) $(DEMO_CHIPS) -o $(OUT)/demo_soc_points.gpkg
	$(CORE_RUN) -m soilcarbon_core predict $(DEMO_MODEL) --grid $(LL)/SRTMGL1_SRTMGL1.2.sdat \
	  $(DEMO_TERRAIN) $(call DEMO_LANDSAT,raster) $(DEMO_CHIPS) -o $(OUT)/demo_soc_map.tif \
	  --plot $(OUT)/demo_soc_map.png

# A screenshot of the QGIS desktop (under Xvfb, in a throw-away profile with the plugin staged) showing the
# demo's points, mean map and legend as the plugin styles them.
screenshot:
	@test -f $(OUT)/demo_soc_map.tif || { echo "$(OUT)/demo_soc_map.tif is missing: run make demo first"; exit 1; }
	SOILCARBON_CORE_PYTHON=$(CORE_PY) /usr/bin/python3 scripts/qgis_screenshot.py --points $(OUT)/demo_soc_points.gpkg \
	  --map $(OUT)/demo_soc_map.tif --model $(DEMO_MODEL) --out docs/images/qgis_demo.png

test: setup test-core test-plugin

test-core: setup
	$(CORE_RUN) -m pytest tests/core tests/training

test-plugin: setup
	$(QGIS_RUN) -m pytest tests/plugin

# Benchmarks pin one thread (these 2-core machines run multi-threaded libraries erratically).
bench: setup
	OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 GDAL_NUM_THREADS=1 \
	  $(CORE_RUN) training/benchmarks/sampling.py --out training/reports/bench_sampling.md
	$(CORE_RUN) training/benchmarks/graph.py --threads 2 --out training/reports/bench_graph.md
	OMP_NUM_THREADS=2 $(CORE_RUN) training/benchmarks/ensemble.py --threads 2 --repeats 5 --out training/reports/bench_ensemble.md
	$(CORE_RUN) training/benchmarks/query_path.py --out training/reports/bench_query_path.md
	OMP_NUM_THREADS=2 $(CORE_RUN) training/benchmarks/training_step.py --threads 2 --out training/reports/bench_training_step.md
	OMP_NUM_THREADS=2 $(CORE_RUN) training/benchmarks/imagery.py --threads 2 --out training/reports/bench_imagery.md
	$(CORE_RUN) training/benchmarks/map_windows.py --rounds 3 --out training/reports/bench_map_windows.md
	$(CORE_RUN) training/benchmarks/maps.py --threads 2 --repeats 3,1 --out training/reports/bench_maps.md

# Simulate, calibrate, pre-train and fine-tune KG-FGNN, write the shipped GHG model (about 10 minutes).
ghg-model: setup
	OMP_NUM_THREADS=2 $(CORE_RUN) training/benchmarks/ghg.py --threads 2

# Field-campaign planning on Africa: planner vs random vs cLHS, retrained, held-out region error (about 18 min).
campaign-report: setup
	OMP_NUM_THREADS=1 $(CORE_RUN) training/benchmarks/campaign.py --tune --in-rounds --seeds 32 --dev-seeds 3 --feature-ranges 0.5 --spatial-ranges-km 0 --noise-ratios 0.05 --variance-powers 1,3 --threads 1 --out training/reports/campaign_africa.md

# The same experiment once on a second held-out region, the planner's settings fixed beforehand (about 9 min).
campaign-confirm: setup
	OMP_NUM_THREADS=1 $(CORE_RUN) training/benchmarks/campaign.py --region southern-africa --in-rounds --seeds 32 --threads 1 --out training/reports/campaign_southern_africa.md

# The hybrid campaigns (the planner's first round, then random or cLHS) join the development choice, which
# is then evaluated once on a third held-out region, Ethiopia and the Horn (about 17 min); then the three
# held-out regions pooled (seconds, from the reports' JSON).
campaign-third: setup
	OMP_NUM_THREADS=1 $(CORE_RUN) training/benchmarks/campaign.py --region ethiopia --tune --in-rounds --hybrid --seeds 32 --dev-seeds 3 --feature-ranges 0.5 --spatial-ranges-km 0 --noise-ratios 0.05 --variance-powers 1,3 --threads 1 --out training/reports/campaign_ethiopia.md
	$(CORE_RUN) training/benchmarks/campaign.py --pool training/reports/campaign_africa.json training/reports/campaign_southern_africa.json training/reports/campaign_ethiopia.json --out training/reports/campaign_pooled.md

# Mean vs attention pooling and the fine-tuning modes of the imagery stream (about 2 minutes on 2 cores).
bench-imagery: setup
	OMP_NUM_THREADS=2 $(CORE_RUN) training/benchmarks/imagery_pooling.py --out training/reports/bench_imagery_pooling.md

# SpTGNN against XGBoost, random forest and kriging, plus ablations (about an hour on 2 cores).
bench-sptgnn: setup
	OMP_NUM_THREADS=2 $(CORE_RUN) training/benchmarks/sptgnn.py --threads 2 --out training/reports/bench_sptgnn.md

lint: setup
	$(CORE_PY) -m ruff check .
	$(CORE_PY) -m ruff format --check .

package:
	/usr/bin/python3 scripts/stage_plugin.py --zip dist/

# Regenerate the lock from core.in in a scratch env (then commit requirements/core.lock).
lock: system
	rm -rf $(CACHE)/envs/lock && /usr/bin/python3 -m venv $(CACHE)/envs/lock
	$(CACHE)/envs/lock/bin/python -m pip install --isolated --quiet -r requirements/core.in
	{ head -n 2 requirements/core.lock; $(CACHE)/envs/lock/bin/python -m pip freeze --all | grep -v -E '^(pip|wheel)=='; } > requirements/core.lock.new
	mv requirements/core.lock.new requirements/core.lock

clean:
	rm -rf $(OUT) dist build .pytest_cache .qgis-settings
