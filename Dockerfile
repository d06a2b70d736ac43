# syntax=docker/dockerfile:1
# ferrolb's image: one static binary, /ferrolb, on a minimal base.
#
#   docker build -t ferrolb:0.1.0 .
#
# The same image runs `ferrolb controller` and `ferrolb speaker` (the Helm chart passes
# the subcommand as the container's args).

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS build
# musl-tools: a C compiler for musl (ring builds a little C and assembly).
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The target of the build machine's architecture (a multi-platform build runs this
# stage once per platform): x86_64-unknown-linux-musl or aarch64-unknown-linux-musl.
# musl binaries are statically linked.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    set -eux; \
    target="$(uname -m)-unknown-linux-musl"; \
    rustup target add "$target"; \
    CARGO_PROFILE_RELEASE_STRIP=true cargo build --release --locked -p ferrolb --bin ferrolb --target "$target"; \
    cp "target/$target/release/ferrolb" /ferrolb; \
    /ferrolb --version

# distroless/static: CA certificates, /etc/passwd with the nonroot user, no shell.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /ferrolb /ferrolb
# nonroot. The speaker's pod runs it as root with only NET_RAW and NET_ADMIN (see the
# chart): Kubernetes gives added capabilities to root only.
USER 65532:65532
ENTRYPOINT ["/ferrolb"]
