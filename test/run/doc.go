// Package run tests hack/run-local.sh, the script behind `make run`: it
// brings up a local control plane and the operator (with EKS=fake, a fake
// EKS and IAM too, holding the samples' access entries), and a signal to
// it must stop every process it started and free every port they held.
package run
