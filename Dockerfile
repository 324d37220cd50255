# Multi-stage build of the `assistants` binary.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN rustup target add wasm32-wasip2 && cargo build --release --bin assistants

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* && useradd --system --home /var/lib/assistants assistants \
    && mkdir -p /var/lib/assistants && chown assistants /var/lib/assistants
COPY --from=build /src/target/release/assistants /usr/local/bin/assistants
USER assistants
WORKDIR /var/lib/assistants
ENV ASSISTANTS_DATA_DIR=/var/lib/assistants ASSISTANTS_LISTEN=0.0.0.0:8000
EXPOSE 8000
ENTRYPOINT ["assistants"]
CMD ["serve"]
