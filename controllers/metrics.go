package controllers

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/aws-auth-guardian/aws-auth-guardian/internal/awsauth"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/managed"
)

// The operator's own metrics, beside controller-runtime's reconcile
// metrics. Every label has a small, fixed set of values.
var (
	awsAuthPresent = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "aws_auth_guardian_aws_auth_present",
		Help: "1 when kube-system/aws-auth exists (terminating or not), 0 when it does not, as last seen by the operator.",
	})
	recreationsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "aws_auth_guardian_recreations_total",
		Help: "aws-auth created anew, by cause: deleted (it was terminating and was replaced) or missing (it was gone: the last applied data restored, or a first render).",
	}, []string{"cause"})
	driftRestorationsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "aws_auth_guardian_drift_restorations_total",
		Help: "Writes that undid a change made to aws-auth by someone else, by cause: metadata, data, unmanaged (recreated by someone else).",
	}, []string{"cause"})
	replacesTotal = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "aws_auth_guardian_replaces_total",
		Help: "Replaces of aws-auth: its finalizer released and a new object created.",
	})
	lastReplaceWindow = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "aws_auth_guardian_last_replace_window_seconds",
		Help: "Time the last replace took from releasing the old aws-auth to creating the new one: an upper bound of the moment without aws-auth.",
	})
	blockedTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "aws_auth_guardian_blocked_applies_total",
		Help: "Renders not written to aws-auth because they would remove access, by guard.",
	}, []string{"reason"})
	mappingsGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "aws_auth_guardian_mappings",
		Help: "IAMIdentityMappings by aws-auth section and Ready status (Ready as on the mapping: with the access entry target on, every target that applies counts).",
	}, []string{"section", "ready"})
	renderedBytes = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "aws_auth_guardian_rendered_data_bytes",
		Help: "Size of the data last written to aws-auth, as the API server counts it against its 1 MiB (1048576 bytes) ConfigMap limit.",
	})
	systemMastersMappings = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "aws_auth_guardian_system_masters_mappings",
		Help: "IAMIdentityMappings live in aws-auth that grant system:masters: each makes an IAM identity cluster-admin.",
	})
	backupRejectedTotal = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "aws_auth_guardian_backup_rejected_total",
		Help: "Reads of the aws-auth-backup ConfigMap whose data did not match its hash annotation (written by someone else), and so were neither restored nor used as the guards' record.",
	})
	accessEntryDriftRestorationsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "aws_auth_guardian_access_entry_drift_restorations_total",
		Help: "Passes that undid a change made by someone else to the access entry of a mapping, by cause: missing (deleted), changed (groups, username, type, policies or tag).",
	}, []string{"cause"})
	accessEntryBlocked = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "aws_auth_guardian_access_entry_blocked",
		Help: "1 while a guard holds access entry changes back (they would lock people or nodes out), 0 otherwise.",
	})
	accessEntriesGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "aws_auth_guardian_access_entries",
		Help: "Access entries of the cluster by state, as last listed: managed (tagged as the operator's), unmanaged (someone else's, left alone); and IAMIdentityMappings a person must act on: conflict, blocked, refused (EKS refused the translation).",
	}, []string{"state"})
	authenticationMode = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "aws_auth_guardian_eks_authentication_mode",
		Help: "1 for the cluster's authentication mode as last read from EKS (CONFIG_MAP, API_AND_CONFIG_MAP, API); absent while the access entry target is off or before the first read.",
	}, []string{"mode"})
	lastApply = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "aws_auth_guardian_last_apply_timestamp_seconds",
		Help: "Unix time of the last successful write to aws-auth.",
	})
)

func init() {
	metrics.Registry.MustRegister(awsAuthPresent, recreationsTotal, driftRestorationsTotal, replacesTotal,
		lastReplaceWindow, blockedTotal, mappingsGauge, systemMastersMappings, renderedBytes, lastApply, backupRejectedTotal,
		accessEntryDriftRestorationsTotal, accessEntryBlocked, accessEntriesGauge, authenticationMode)
	// Every series of a counter of events is exported from the start, at
	// 0: Prometheus's increase() over a series that first appears at 1
	// is 0, so an alert on the first block or drift after a restart would
	// never fire.
	for _, cause := range []string{"deleted", "missing"} {
		recreationsTotal.WithLabelValues(cause)
	}
	for _, cause := range []string{managed.DriftMetadata, managed.DriftData, managed.DriftUnmanaged} {
		driftRestorationsTotal.WithLabelValues(cause)
	}
	for _, reason := range []string{awsauth.RefusedEmpty, awsauth.RefusedNodes, awsauth.RefusedTooManyRemoved, awsauth.RefusedUnrepresentable, awsauth.RefusedCRDUnusable} {
		blockedTotal.WithLabelValues(reason)
	}
	for _, cause := range []string{driftMissing, driftChanged} {
		accessEntryDriftRestorationsTotal.WithLabelValues(cause)
	}
}
