# Multi-stage build of the `assistants` binary.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN rustup target add wasm32-wasip2 && cargo build --release --bin assistants

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* && useradd --system --home /var/lib/assistants assistants \
    && mkdir -p /var/lib/assistants /var/lib/assistants-keys \
    && chown assistants /var/lib/assistants /var/lib/assistants-keys \
    && chmod 700 /var/lib/assistants-keys
COPY --from=build /src/target/release/assistants /usr/local/bin/assistants
# The code_interpreter's Python (the pinned wheel, checked against its sha256; ≈ 160 MB):
# downloaded into the image, compiled for the machine it runs on at first start (in the
# background; calls wait). Build with --build-arg CODE_INTERPRETER=false to leave it out.
ARG CODE_INTERPRETER=true
RUN if [ "$CODE_INTERPRETER" = "true" ]; then \
      assistants code-interpreter install --dir /opt/code-interpreter --no-compile \
      && chown -R assistants /opt/code-interpreter; fi
USER assistants
WORKDIR /var/lib/assistants
ENV ASSISTANTS_DATA_DIR=/var/lib/assistants ASSISTANTS_LISTEN=0.0.0.0:8000 \
    ASSISTANTS_CODE_INTERPRETER_DIR=/opt/code-interpreter
EXPOSE 8000
ENTRYPOINT ["assistants"]
CMD ["serve"]
