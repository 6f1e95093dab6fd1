# CI stand-in for the official redis image (deploy/ci-images/README.md): Debian's Redis 7.0.
ARG BASE
FROM ${BASE}
RUN groupadd --system --gid 1000 redis \
 && useradd --system --uid 999 --gid 1000 --home-dir /data --shell /usr/sbin/nologin redis \
 && apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /data && chown redis:redis /data
COPY redis-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
WORKDIR /data
EXPOSE 6379
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["redis-server"]
