// Package deploy checks what a person installs: config/default built with
// kustomize and the Helm chart in charts/aws-auth-guardian, rendered,
// compared with the generated RBAC and the admission policies of config/,
// and applied to a real API server (envtest).
//
// It is a module of its own so that kustomize and Helm, and what they pull
// in, never enter the operator's module.
package deploy
