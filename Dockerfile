# Ivory: build with the Rust toolchain, run from a small Debian image as a non-root user.
#   docker build -t ivory .
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p ivory

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/ivory ivory \
 && mkdir -p /var/lib/ivory && chown ivory:ivory /var/lib/ivory
COPY --from=build /src/target/release/ivory /usr/local/bin/ivory
COPY deploy/ivory-entrypoint.sh /usr/local/bin/ivory-entrypoint.sh
USER 10001:10001
# The data directory: sled, the Raft log, layout.json, joined.json. Mount a volume here.
VOLUME /var/lib/ivory
ENV IVORY_DATA=/var/lib/ivory IVORY_LISTEN=0.0.0.0:7001
EXPOSE 7001
ENTRYPOINT ["/usr/local/bin/ivory-entrypoint.sh"]
