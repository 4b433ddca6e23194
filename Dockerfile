# syntax=docker/dockerfile:1
#
# coffer's container image: two static binaries (CGO off, version stamped)
# on distroless/static, which adds CA certificates, tzdata and a nonroot user
# and nothing else: no shell, no package manager. coffer is the node's
# (the DaemonSet, the default command); coffer-controller the sync
# controller's (the chart's sync Deployment runs it as its command), which
# links client-go's election and event recorder the node's leaves out.
#
#   docker build --build-arg VERSION=v0.1.0 -t ghcr.io/coffer-csi/coffer:0.1.0 .
#   docker buildx build --platform linux/amd64,linux/arm64 --build-arg VERSION=v0.1.0 ...
#
# The image runs as uid 65532 by default (coffer validate / mount need
# nothing more). The Helm chart runs the provider as uid 0 with every
# capability dropped and a read-only root filesystem: the driver's provider
# directory on the host is root's, and the socket must be created in it (see
# docs/install.md, "Why root"). tests/deploy builds the binary exactly as the
# build stage below does and runs it (make deploy-test).

ARG GO_VERSION=1.26

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
ARG TARGETOS
ARG TARGETARCH
ARG VERSION=dev
WORKDIR /src
# Modules first: a change to the sources does not download them again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath -tags grpcnotrace -ldflags "-s -w -X github.com/coffer-csi/coffer/internal/version.Version=${VERSION}" \
      -o bin/ ./cmd/coffer ./cmd/coffer-controller

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /src/bin/coffer /usr/local/bin/coffer
COPY --from=build /src/bin/coffer-controller /usr/local/bin/coffer-controller
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/coffer"]
CMD ["serve"]
