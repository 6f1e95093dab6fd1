# CI stand-in for the official python image (deploy/ci-images/README.md): Debian's Python 3.11.
ARG BASE
FROM ${BASE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      python3 python3-pip python-is-python3 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 # The official image's Python is not Debian's: pip installs system-wide without a marker.
 && rm -f /usr/lib/python3*/EXTERNALLY-MANAGED
CMD ["python3"]
