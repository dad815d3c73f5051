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
#
# Pinned, so that a build is the build that was checked (check.sh fails on a
# FROM without a digest or a package without a version):
#  - the base image by digest, the tag beside it for readers. The digest is
#    the multi-platform index of debian:12-slim built 2026-08-24 (bookworm
#    at @1787529600), as published by the Docker official images in
#    github.com/docker-library/repo-info, repos/debian/remote/12-slim.md
#    (commit cae117d8c88cf4f36d2e284cb10fc1a8851f18bc). To move it: take the
#    new index digest from that file (or `docker buildx imagetools inspect
#    debian:12-slim`) and change both FROM lines together;
#  - the packages we name, at Debian 12's versions of 2026-11-30
#    (`apt-cache policy NAME` on bookworm, -updates and -security). Their
#    dependencies come at whatever version those pins require. A security
#    update replaces a version in the archive: then apt-get says "Version
#    ... was not found", and the pin is moved to `apt-cache policy`'s
#    Candidate (snapshot.debian.org keeps the old one for a rebuild).

# --- build: compiler, pkg-config and the -dev packages ----------------------
FROM debian:12-slim@sha256:88200866dfff7ea7f5cbcb6ec7c8a701889efe6fe859fe64d6990e4b07ea4171 AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        build-essential=12.9 \
        pkg-config=1.8.1-1 \
        libcurl4-openssl-dev=7.88.1-10+deb12u15 \
        libcjson-dev=1.7.15-1+deb12u4 \
        libyaml-dev=0.2.5-1 \
        libwebsockets-dev=4.1.6-3 \
        uthash-dev=2.3.0-1+b1 \
        zlib1g-dev=1:1.2.13.dfsg-1 \
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
FROM debian:12-slim@sha256:88200866dfff7ea7f5cbcb6ec7c8a701889efe6fe859fe64d6990e4b07ea4171
LABEL org.opencontainers.image.title="kvrecover-controller" \
      org.opencontainers.image.description="Recovers failed KubeVirt VMs from the most similar member of a spec pool"
# The run-time halves of the build stage's -dev packages; ca-certificates for
# API servers whose CA is a public one (in-cluster, the service account's CA
# is used). No compiler, no package lists.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        ca-certificates=20250419~deb12u2 \
        libcurl4=7.88.1-10+deb12u15 \
        libcjson1=1.7.15-1+deb12u4 \
        libyaml-0-2=0.2.5-1 \
        libwebsockets17=4.1.6-3 \
        zlib1g=1:1.2.13.dfsg-1 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 65532 kvrecover \
 && useradd --system --uid 65532 --gid 65532 --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin kvrecover
COPY --from=build /src/bin/kvrecover-controller /src/bin/kvrecover /usr/local/bin/
USER 65532:65532
# Dashboard, /metrics, /healthz and /readyz (--http-addr).
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/kvrecover-controller"]
