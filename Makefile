# leftover: developer entry points. `make test` is what CI runs (.ci/run).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
DEBIAN_TEST_PACKAGES := munge slurmctld slurmd slurm-client python3-venv libpython3.11 python3-dev procps util-linux \
    dpkg-dev debhelper build-essential fakeroot binutils lintian man-db debootstrap podman time uidmap libnss-sss \
    runc python3-fusepy strace systemd prometheus
EXAMPLE := fixtures/example-node

.PHONY: demo test unit e2e lint deps venv cluster clean deb lintian container-check bench soak reproducible test-matrix

VERSION := $(shell $(PYTHON) -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
PACKAGE ?= leftover
DEB := dist/$(PACKAGE)_$(VERSION)_amd64.deb

## demo: dry run on the bundled example node (no Slurm needed)
demo:
	chmod go-w $(EXAMPLE)/leftover.conf
	$(PYTHON) -m leftover --dry-run --no-splay --config $(EXAMPLE)/leftover.conf \
	    --proc $(EXAMPLE)/proc --passwd $(EXAMPLE)/passwd

## test: everything, unit and end-to-end (as root on a throwaway machine)
test: deps cluster lint
	$(VPY) -m pytest -ra tests

## test-matrix: the end-to-end tests again against Slurm 24.11 (Debian trixie) and
## 26.05 (sid), each in a debootstrapped chroot of Debian's own packages beside
## the host's 22.05 (tests/cluster/slurm-chroot; cached under /var/lib/leftover-matrix),
## and the node identity tests against 22.05 in a Debian 12 chroot of its own
## (the host's cluster keeps its node name)
MATRIX_VERSIONS ?= 24.11 26.05
test-matrix: deps lint
	@[ "$$(id -u)" = 0 ] || { echo "test-matrix: needs root (debootstrap, mounts, daemons)" >&2; exit 1; }
	tests/cluster/slurm-chroot build 22.05 $(MATRIX_VERSIONS)
	@echo "test-matrix: Slurm 22.05, node identity (its chroot)"
	$(VPY) -m pytest -ra tests/e2e/test_node_identity.py
	@for version in $(MATRIX_VERSIONS); do \
	    echo "test-matrix: Slurm $$version"; \
	    LEFTOVER_TEST_SLURM=$$version $(VPY) -m pytest -ra tests/e2e || exit 1; \
	done

unit: venv
	$(VPY) -m pytest -ra tests --ignore=tests/e2e --ignore=tests/package

e2e: deps cluster
	$(VPY) -m pytest -ra tests/e2e

lint: venv
	$(VPY) -m ruff check leftover tests

## deps: Debian packages for the real test cluster, and the venv
deps: venv
	@if [ "$$(id -u)" = 0 ]; then \
	    missing=$$(for p in $(DEBIAN_TEST_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	    if [ -n "$$missing" ]; then \
	        apt-get -o DPkg::Lock::Timeout=600 update -q && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends $$missing; \
	    fi; \
	else echo "deps: not root; Debian packages not checked (end-to-end tests will be skipped)"; fi

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q -e '.[dev]'
	touch $@

## cluster: start the single-node Slurm test cluster (root only), under the lock
## that lets one test session at a time use this machine (tests/e2e/cluster.py)
cluster:
	@if [ "$$(id -u)" = 0 ]; then mkdir -p /run/lock && flock -o -w 3600 /run/lock/leftover-e2e.lock tests/cluster/slurm-up; \
	else echo "cluster: not root; no test cluster started"; fi

## deb: the .deb (honours RELEASE and PACKAGE, as in scicomp-leftover's build flow).
## dpkg-buildpackage runs on a copy of the source under build/deb/, since it
## writes its results beside the source tree; the .deb is then copied to dist/.
DEB_SOURCE := build/deb/leftover
deb:
	@if [ -n "$${RELEASE:-}" ] && [ "$$RELEASE" != "$(VERSION)" ]; then \
	    echo "deb: RELEASE=$$RELEASE but pyproject.toml says $(VERSION); change the version there" >&2; exit 1; fi
	@if [ "$(PACKAGE)" = scicomp-leftover ]; then \
	    echo "deb: this package is named leftover and replaces scicomp-leftover; unset PACKAGE" >&2; exit 1; fi
	@if [ "$(PACKAGE)" != leftover ]; then \
	    echo "deb: PACKAGE=$(PACKAGE), but debian/control names the package leftover; unset PACKAGE" >&2; exit 1; fi
	@changelog=$$(dpkg-parsechangelog -SVersion); if [ "$$changelog" != "$(VERSION)" ]; then \
	    echo "deb: debian/changelog says $$changelog but pyproject.toml says $(VERSION); add a changelog entry (dch -v $(VERSION))" >&2; exit 1; fi
	rm -rf $(DEB_SOURCE) && mkdir -p $(DEB_SOURCE) dist
	tar -c --exclude-vcs --exclude=./.venv --exclude=./build --exclude=./dist --exclude='*.egg-info' \
	    --exclude=__pycache__ --exclude=.pytest_cache --exclude=.ruff_cache . | tar -x -C $(DEB_SOURCE)
	cd $(DEB_SOURCE) && LEFTOVER_BUILD_VENV=$(CURDIR)/build/venv dpkg-buildpackage -us -uc -b
	cp build/deb/$(PACKAGE)_$(VERSION)_amd64.deb $(DEB)
	@echo "deb: wrote $(DEB)"

## reproducible: build the .deb twice (two paths, times, umasks, time zones) and
## require the same bytes (CI runs it)
reproducible:
	debian/check-reproducible

## container-check: build the Dockerfile with podman on a debootstrapped Debian 12
## base (no Docker engine needed) and copy the .deb it makes to build/container/.
## CAs the site added under /usr/local/share/ca-certificates (a TLS-intercepting
## proxy's) are trusted inside the image too.
container-check:
	@mkdir -p build
	@cas=$$(ls /usr/local/share/ca-certificates/*.crt 2>/dev/null || true); \
	if [ -z "$${PIP_CA_BUNDLE:-}" ] && [ -n "$$cas" ]; then \
	    cat $$cas > build/site-ca.pem; export PIP_CA_BUNDLE=build/site-ca.pem; fi; \
	debian/container-check build/container

## bench: the cost of a run, as one table (root, for the real /proc and Slurm parts)
bench: deps cluster deb
	$(VPY) -m tests.bench.bench

## soak: the race soak against the real test cluster (LEFTOVER_SOAK_SECONDS, default 300)
soak: deps cluster
	$(VPY) -m tests.soak.soak

## lintian: build the .deb and have lintian check it (no error, no warning allowed)
lintian: deb
	lintian --fail-on error,warning --display-info $(DEB)

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache
