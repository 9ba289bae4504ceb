# syntax=docker/dockerfile:1
#
# computebot: a static, non-root image.
#
#   docker build --build-arg VERSION="$(git describe --tags --always --dirty)" -t computebot .
#   docker run -e SLACK_BOT_TOKEN -e SLACK_APP_TOKEN -e AWS_REGION \
#     -v computebot-data:/data -v "$PWD/config.yaml:/etc/computebot/config.yaml:ro" computebot
#
# The store (store.path, default computebot.db) is relative to the working
# directory /data: keep /data on a volume so requests survive a restart.
#
# It needs BuildKit (RUN --mount caches, $BUILDPLATFORM): the default builder
# of Docker Engine 23 and later, and of `docker buildx build`; on older
# engines, DOCKER_BUILDKIT=1 docker build ….

# ---- build ----------------------------------------------------------------
FROM --platform=$BUILDPLATFORM golang:1.26 AS build
ARG TARGETOS
ARG TARGETARCH
# What `computebot version` says: .git is not in the build context (see
# .dockerignore), so the build cannot stamp the commit itself.
ARG VERSION=unknown
WORKDIR /src

# Dependencies first, so that a source change does not download them again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download

COPY . .
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} \
    go build -tags nodemo -trimpath -ldflags="-s -w -X main.version=${VERSION}" -o /out/computebot ./cmd/computebot

# An empty /data owned by the runtime user: a named volume mounted there
# starts with this ownership, so the non-root bot can create its store.
RUN mkdir -p /out/data

# ---- run ------------------------------------------------------------------
# distroless static: CA certificates and tzdata, no shell, user nonroot (65532).
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/computebot /computebot
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
WORKDIR /data
VOLUME /data
# /healthz, /readyz and /metrics on all interfaces inside the container.
ENV COMPUTEBOT_LISTEN=:9090
EXPOSE 9090
# No shell or curl in distroless: the binary checks its own /healthz.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s CMD ["/computebot", "health"]
ENTRYPOINT ["/computebot"]
CMD ["--config", "/etc/computebot/config.yaml"]
