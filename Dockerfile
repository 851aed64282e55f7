# Build the manager binary.
FROM golang:1.26 AS builder
ARG TARGETOS
ARG TARGETARCH
WORKDIR /workspace
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
# Everything the build needs: copying folders by name breaks the day a
# folder is added; .dockerignore keeps the rest out.
COPY . .
# What `manager version` and the start-up log say: .git is not in the build
# context, so the build passes them, e.g.
#   docker build --build-arg VERSION=$(git describe --tags --always --dirty) --build-arg COMMIT=$(git rev-parse HEAD) .
# Declared here, after the module download, so that a new version does not
# download the modules again.
ARG VERSION=dev
ARG COMMIT=unknown
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} go build -trimpath \
    -ldflags="-s -w -X github.com/aws-auth-guardian/aws-auth-guardian/internal/version.version=${VERSION} -X github.com/aws-auth-guardian/aws-auth-guardian/internal/version.commit=${COMMIT}" \
    -o manager .

# A static binary on distroless, as a non-root user.
FROM gcr.io/distroless/static:nonroot
WORKDIR /
COPY --from=builder /workspace/manager .
USER 65532:65532
ENTRYPOINT ["/manager"]
