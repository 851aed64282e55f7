package controllers

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// reasonCRDUnusable labels the writes skipped because the CRD is missing or
// being deleted.
const reasonCRDUnusable = "CRDUnusable"

var blockedTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "aws_auth_guardian_blocked_applies_total",
	Help: "Renders not written to aws-auth because they would remove access, by guard.",
}, []string{"reason"})

func init() {
	metrics.Registry.MustRegister(blockedTotal)
}
