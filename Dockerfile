# Build environment for leftover's .deb (README, "Building in a container").
#
#   docker build --build-arg UID=$(id -u) --build-arg USERNAME=$(whoami) -t leftover .
#   docker run -it --rm --mount type=bind,source=$(pwd),target=/mnt \
#       -e RELEASE=0.1.0 -e PACKAGE=leftover leftover
#
# The container runs `make deb` in /mnt (the bind-mounted checkout) as the build
# user, so build/ and dist/ come out owned by you.
#
# `--target package` instead copies the build context into the image and runs
# `make deb` there: the image builds only if the package does, and the .deb is
# left in /src/dist. debian/container-check does this with podman (no Docker
# engine needed) and copies the .deb out.
#
# Build arguments:
#   BASE           base image, default debian:bookworm. The frozen binary needs a
#                  glibc at least as new as the base's: use the oldest
#                  distribution among your nodes.
#   UID, USERNAME  the build user (default 1000, build). An account that already
#                  has this UID is reused as it is (UID=0 when you build as root).
#   PIP_CA_BUNDLE  behind a TLS-intercepting proxy: path, relative to the build
#                  context, of the proxy's CA certificate(s) in PEM. Copy the
#                  file into the checkout first, e.g.
#                    cp /etc/ssl/certs/site-proxy.pem proxy-ca.pem
#                    docker build --build-arg PIP_CA_BUNDLE=proxy-ca.pem ...
#                  It is added to the image's system trust store and pip is told
#                  (in /etc/pip.conf) to verify against that store, so PyPI keeps
#                  working with or without the proxy. Empty or unset: no change.
#                  The proxy itself goes in the predefined build args
#                  HTTPS_PROXY/HTTP_PROXY (and -e at `docker run` time).
#   RELEASE, PACKAGE, SOURCE_DATE_EPOCH
#                  --target package only: handed to `make deb` as in `docker run`.

# Declared before the first FROM so every stage can reuse the same defaults.
ARG BASE=debian:bookworm
ARG UID=1000
ARG USERNAME=build

# --- env: the tools `make deb` needs ---------------------------------------
FROM ${BASE} AS env

# debhelper, dpkg-dev: dpkg-buildpackage and dh, which `make deb` runs;
# build-essential: dpkg-buildpackage checks it as every Debian build's implicit
#   build dependency (nothing is compiled: PyInstaller's wheels ship prebuilt
#   bootloaders); python3, python3-venv: the build venv that gets PyInstaller
#   from PyPI (pinned, debian/build-requirements.txt); python3-dev: pulls in
#   libpython3.X, the shared library PyInstaller bundles (Debian's python3
#   binary is linked statically), without naming the version. These are
#   debian/control's Build-Depends.
# lintian: `make lintian`; ca-certificates: the trust store pip is pointed at
#   (PIP_CA_BUNDLE below). No fakeroot: the package builds without root
#   (Rules-Requires-Root: no).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        make build-essential debhelper dpkg-dev python3 python3-venv python3-dev lintian \
        ca-certificates \
 && rm -rf /var/lib/apt/lists/*

# Optional proxy CA. COPY needs at least one source that exists: the Dockerfile
# always does, so with PIP_CA_BUNDLE empty this copies only the Dockerfile.
# Declared after the apt layer so changing it does not redo apt. A bundle of
# several certificates is fine (update-ca-certificates' "rehash: skipping"
# warning is about the hashed directory; the bundle pip reads has them all).
ARG PIP_CA_BUNDLE=
COPY Dockerfile ${PIP_CA_BUNDLE} /tmp/pip-ca/
RUN if [ -n "$PIP_CA_BUNDLE" ]; then \
        cp "/tmp/pip-ca/$(basename "$PIP_CA_BUNDLE")" /usr/local/share/ca-certificates/leftover-pip-ca.crt \
        && update-ca-certificates \
        && printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' > /etc/pip.conf; \
    fi \
 && rm -rf /tmp/pip-ca

# The build user, so files written into the bind-mounted checkout are yours.
# (Brought into the stage only here, so another UID does not redo the layers above.)
ARG UID
ARG USERNAME
RUN getent passwd "$UID" >/dev/null \
    || useradd --create-home --user-group --shell /bin/bash --uid "$UID" "$USERNAME"
USER ${UID}
WORKDIR /mnt
CMD ["make", "deb"]

# --- package: build the .deb from the build context -----------------------
FROM env AS package
ARG UID
ARG RELEASE=
# Not empty by default: the Makefile's `PACKAGE ?= leftover` would take an empty value.
ARG PACKAGE=leftover
ARG SOURCE_DATE_EPOCH=
COPY --chown=${UID} . /src
# COPY may leave /src itself root-owned; make deb creates build/ and dist/ in it.
USER root
RUN chown "$UID" /src
USER ${UID}
WORKDIR /src
# A checkout used on the host may carry a build/venv made for another Python.
RUN rm -rf build dist && make deb

# --- default: what `docker build -t leftover .` produces --------------------
# Last, so it is the default target; builders that skip unused stages
# (BuildKit, podman) do not build `package` for it.
FROM env
