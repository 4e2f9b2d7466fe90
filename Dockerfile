# syntax=docker/dockerfile:1
# The three Rust services, one image each (build with --target auth-service | todo-service | gateway).
# Stages: cargo-chef caches the dependency build in its own layer; the runtime images are
# debian-slim, non-root, with the service binary and the `healthcheck` probe only.

ARG RUST_VERSION=1.95
ARG NODE_VERSION=20

FROM rust:${RUST_VERSION}-slim-bookworm AS chef
RUN cargo install cargo-chef --locked --version 0.1.73
WORKDIR /src

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /src/recipe.json recipe.json
# Dependencies only: this layer is reused until Cargo.toml/Cargo.lock change.
RUN cargo chef cook --release --locked --recipe-path recipe.json \
    -p auth-service -p todo-service -p gateway -p healthcheck
COPY . .
RUN cargo build --release --locked -p auth-service -p todo-service -p gateway -p healthcheck

FROM node:${NODE_VERSION}-bookworm-slim AS web
WORKDIR /src/web
COPY web/package.json web/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY proto /src/proto
COPY web ./
RUN npm run build

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/app --create-home app
COPY --from=builder /src/target/release/healthcheck /usr/local/bin/healthcheck
WORKDIR /var/lib/app
USER 10001:10001
ENV LOG_FORMAT=json RUST_LOG=info

FROM runtime AS auth-service
COPY --from=builder /src/target/release/auth-service /usr/local/bin/auth-service
ENV AUTH_LISTEN=0.0.0.0:50051 METRICS_LISTEN=0.0.0.0:9051
EXPOSE 50051 9051
HEALTHCHECK --interval=5s --timeout=3s --retries=5 CMD ["healthcheck", "grpc", "127.0.0.1:50051"]
ENTRYPOINT ["auth-service"]

FROM runtime AS todo-service
COPY --from=builder /src/target/release/todo-service /usr/local/bin/todo-service
ENV TODO_LISTEN=0.0.0.0:50052 METRICS_LISTEN=0.0.0.0:9052
EXPOSE 50052 9052
HEALTHCHECK --interval=5s --timeout=3s --retries=5 CMD ["healthcheck", "grpc", "127.0.0.1:50052"]
ENTRYPOINT ["todo-service"]

FROM runtime AS gateway
COPY --from=builder /src/target/release/gateway /usr/local/bin/gateway
COPY --from=web /src/web/dist /srv/web
ENV GATEWAY_LISTEN=0.0.0.0:8080 METRICS_LISTEN=0.0.0.0:9080 WEB_DIR=/srv/web
EXPOSE 8080 9080
HEALTHCHECK --interval=5s --timeout=3s --retries=5 CMD ["healthcheck", "http", "127.0.0.1:8080/healthz"]
ENTRYPOINT ["gateway"]
