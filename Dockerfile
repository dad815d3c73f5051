# kvrecover-controller image: Debian 12 slim, built in one stage and run from
# another that holds only the shared libraries the binaries link against.
#
#   docker build -t kvrecover/kvrecover-controller:0.1.0 .
#
# There is no Docker engine where this project is developed: tests/docker/
# check.sh runs these same steps in clean debootstrap roots instead (see
# README, "The container image"). Keep the instructions within what that
# script understands: FROM [AS], ARG/ENV k=v, WORKDIR, COPY [--from=],
# RUN (shell form), USER, EXPOSE, LABEL, ENTRYPOINT (exec form).

# --- build: compiler, pkg-config and the -dev packages ----------------------
FROM debian:12-slim AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        build-essential \
        pkg-config \
        libcurl4-openssl-dev \
        libcjson-dev \
        libyaml-dev \
        libwebsockets-dev \
        uthash-dev \
        zlib1g-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Only what `make` needs for the two binaries (.dockerignore keeps the rest,
# notably .cache/ with the test control plane, out of the build context):
# the Makefile, the config.mk it includes, and the sources.
COPY Makefile config.mk ./
COPY controller/ controller/
RUN make -j"$(nproc)" bin/kvrecover-controller bin/kvrecover \
 && strip --strip-unneeded bin/kvrecover-controller bin/kvrecover

# --- runtime: shared libraries, CA certificates, a non-root user ------------
FROM debian:12-slim
LABEL org.opencontainers.image.title="kvrecover-controller" \
      org.opencontainers.image.description="Recovers failed KubeVirt VMs from the most similar member of a spec pool"
# The run-time halves of the build stage's -dev packages; ca-certificates for
# API servers whose CA is a public one (in-cluster, the service account's CA
# is used). No compiler, no package lists.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        ca-certificates \
        libcurl4 \
        libcjson1 \
        libyaml-0-2 \
        libwebsockets17 \
        zlib1g \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 65532 kvrecover \
 && useradd --system --uid 65532 --gid 65532 --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin kvrecover
COPY --from=build /src/bin/kvrecover-controller /src/bin/kvrecover /usr/local/bin/
USER 65532:65532
# Dashboard, /metrics, /healthz and /readyz (--http-addr).
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/kvrecover-controller"]
