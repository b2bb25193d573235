# syntax=docker/dockerfile:1
# mirrorgate in a container.
#   docker build -t mirrorgate .
#   docker run -d --name mirrorgate -p 8080:8080 \
#     -v /srv/mirrorgate/mirrorgate.toml:/etc/mirrorgate/mirrorgate.toml:ro \
#     -v mirrorgate-state:/var/lib/mirrorgate mirrorgate
#   docker kill --signal HUP mirrorgate     # reload the config
# The config's store.path should be under /var/lib/mirrorgate (the volume),
# or left unset: it then defaults to $STATE_DIRECTORY/mirrorgate.db.

FROM rust:1-bookworm AS build
WORKDIR /src
# Everything Cargo.toml names must be here (the bench target too):
# tests/operations.rs stages exactly these COPY lines and builds them.
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY benches benches
COPY config config
COPY docs docs
RUN cargo build --release --locked \
 && strip target/release/mirrorgate \
 && mkdir -p /out/var/lib/mirrorgate

# distroless/cc: glibc and libgcc only; no shell, no package manager, no curl.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/mirrorgate /usr/bin/mirrorgate
COPY config/mirrorgate.toml /etc/mirrorgate/mirrorgate.toml
COPY --from=build --chown=65532:65532 /out/var/lib/mirrorgate /var/lib/mirrorgate
ENV MIRRORGATE_CONFIG=/etc/mirrorgate/mirrorgate.toml \
    STATE_DIRECTORY=/var/lib/mirrorgate
VOLUME ["/var/lib/mirrorgate"]
EXPOSE 8080
USER 65532:65532
# Exec form: the binary is PID 1 and handles SIGTERM itself (finish probes, flush, exit 0).
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
  CMD ["/usr/bin/mirrorgate", "healthcheck", "--url", "http://127.0.0.1:8080/healthz"]
ENTRYPOINT ["/usr/bin/mirrorgate"]
CMD ["run", "--listen", "0.0.0.0:8080"]
