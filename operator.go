package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/klog/v2"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"

	"github.com/aws-auth-guardian/aws-auth-guardian/controllers"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/eksapi"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/managed"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/version"
)

// operator is what `manager` and `manager run` start (cli.Operator): the
// manager with the aws-auth controller and the protection report, set up
// from its flags.
type operator struct {
	opts                  ctrl.Options
	zap                   zap.Options
	metricsSecure         bool
	mode, backupNamespace string
	batchDelay            time.Duration
	maxRemovedShare       float64
	recheckInterval       time.Duration
	protectionInterval    time.Duration
	// eksClusterName turns the access entry target on; "" keeps it off.
	eksClusterName                           string
	accessEntryResync, accessEntryFullResync time.Duration
	// eksRateLimit bounds the calls to EKS and IAM together.
	eksRateLimit eksapi.RateLimit
}

func newOperator() *operator {
	return &operator{opts: ctrl.Options{
		LeaderElectionID:              "aws-auth-guardian.iam.aws-auth-guardian.dev",
		LeaderElectionReleaseOnCancel: true,
		LeaseDuration:                 new(time.Duration),
		RenewDeadline:                 new(time.Duration),
		RetryPeriod:                   new(time.Duration),
	}}
}

// BindFlags registers the operator's flags. The names are an interface:
// the Deployment, the chart and the tests pass them.
func (o *operator) BindFlags(fs *pflag.FlagSet) {
	opts := &o.opts
	fs.StringVar(&opts.Metrics.BindAddress, "metrics-bind-address", ":8443", "The address the Prometheus metrics endpoint binds to; 0 disables it.")
	fs.BoolVar(&o.metricsSecure, "metrics-secure", true, "Serve the metrics over HTTPS, only to a bearer token whose identity the API server authenticates and authorizes for get on /metrics (the ClusterRole aws-auth-guardian-metrics-reader); false serves plain HTTP to anyone, for local runs.")
	fs.StringVar(&opts.HealthProbeBindAddress, "health-probe-bind-address", ":8081", "The address the health and readiness probes bind to.")
	fs.BoolVar(&opts.LeaderElection, "leader-elect", false, "Elect a leader, so that of several replicas only one writes aws-auth.")
	fs.StringVar(&opts.LeaderElectionNamespace, "leader-election-namespace", "", "The namespace of the leader election Lease (default: the pod's namespace).")
	fs.DurationVar(opts.LeaseDuration, "leader-election-lease-duration", 15*time.Second, "How long the other replicas wait for a leader that stopped renewing its Lease (killed, say) before one takes over: the longest aws-auth goes unwatched after a leader dies.")
	fs.DurationVar(opts.RenewDeadline, "leader-election-renew-deadline", 10*time.Second, "How long the leader keeps trying to renew its Lease before it steps down; shorter than the lease duration.")
	fs.DurationVar(opts.RetryPeriod, "leader-election-retry-period", 2*time.Second, "How often replicas try to acquire or renew the Lease.")
	fs.StringVar(&o.mode, "configmap-mode", string(managed.Immutable), "How aws-auth is written: immutable (every change is a replace) or mutable (updated in place, for clusters where EKS must still write it).")
	fs.DurationVar(&o.batchDelay, "batch-delay", 200*time.Millisecond, "How long to gather mapping changes into one write of aws-auth. Healing a deleted or edited aws-auth is never delayed.")
	fs.DurationVar(&o.recheckInterval, "recheck-interval", 30*time.Second, "How often aws-auth is read even without an event, to bound healing when a watch breaks without a sign; 0 disables it.")
	fs.DurationVar(&o.protectionInterval, "protection-check-interval", 10*time.Second, "How often the operator checks that the admission policies of config/policy are installed as shipped and bound with Deny.")
	fs.Float64Var(&o.maxRemovedShare, "max-removed-share", 0.5, "The largest share (0 to 1) of the entries last applied to aws-auth that one write may remove, once there are 5 or more; a larger removal is refused until allowed by annotation.")
	fs.StringVar(&o.eksClusterName, "eks-cluster-name", "", "The EKS cluster whose access entries follow the mappings, beside aws-auth; empty leaves access entries alone and calls no AWS API.")
	fs.DurationVar(&o.accessEntryResync, "access-entry-resync", time.Minute, "How often the access entries are listed without a mapping change, which bounds how long an entry deleted out of band stays missing.")
	fs.DurationVar(&o.accessEntryFullResync, "access-entry-full-resync", 10*time.Minute, "How often the cluster's authentication mode is read again, and the time in which every access entry with its policies is read again (a share of them at each resync), which bounds how long an entry changed in place stays changed; the checks take at most a fifth of --eks-api-qps, so past 300 entries at the defaults the bound is longer (N/30 minutes).")
	fs.Float64Var(&o.eksRateLimit.QPS, "eks-api-qps", 5, "The calls per second, on average, the operator makes to EKS and IAM together, retries included. EKS throttles its API per account and region, shared with every other tool there, so the default takes a small part of it; at the default, 3,000 entries are made from nothing in about 40 minutes. The checks of entries changed in place take at most a fifth of it.")
	fs.IntVar(&o.eksRateLimit.Burst, "eks-api-burst", 10, "The calls the operator may make to EKS and IAM at once after a quiet while, above --eks-api-qps: a mapping's change (a few calls) goes out without waiting on the rate.")
	fs.StringVar(&o.backupNamespace, "backup-namespace", envOr("POD_NAMESPACE", "aws-auth-guardian-system"), "The namespace of the aws-auth-backup ConfigMap, which keeps the last applied data.")
	// zap (--zap-devel, --zap-encoder, --zap-log-level, ...) and
	// controller-runtime (--kubeconfig, read by ctrl.GetConfig) register
	// their flags on a Go flag set; pflag takes them over as they are.
	goFlags := flag.NewFlagSet("", flag.ContinueOnError)
	o.zap.BindFlags(goFlags)
	config.RegisterFlags(goFlags)
	fs.AddGoFlagSet(goFlags)
}

func envOr(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}

// Validate checks the flags before anything starts, so that a bad value
// is a usage error rather than an operator that fails later.
func (o *operator) Validate() error {
	opts := &o.opts
	if o.mode != string(managed.Immutable) && o.mode != string(managed.Mutable) {
		return fmt.Errorf("--configmap-mode must be %q or %q, not %q", managed.Immutable, managed.Mutable, o.mode)
	}
	if o.maxRemovedShare < 0 || o.maxRemovedShare > 1 {
		return fmt.Errorf("--max-removed-share must be between 0 and 1, not %v", o.maxRemovedShare)
	}
	// client-go's own rule, checked here so that a bad value stops the
	// operator at once rather than when it first runs for leader.
	if !(*opts.LeaseDuration > *opts.RenewDeadline && float64(*opts.RenewDeadline) > leaderelection.JitterFactor*float64(*opts.RetryPeriod) && *opts.RetryPeriod > 0) {
		return fmt.Errorf("leader election needs --leader-election-lease-duration (%v) > --leader-election-renew-deadline (%v) > %v × --leader-election-retry-period (%v) > 0",
			*opts.LeaseDuration, *opts.RenewDeadline, leaderelection.JitterFactor, *opts.RetryPeriod)
	}
	if o.accessEntryResync <= 0 || o.accessEntryFullResync < o.accessEntryResync {
		return fmt.Errorf("--access-entry-resync (%v) must be positive and --access-entry-full-resync (%v) no shorter", o.accessEntryResync, o.accessEntryFullResync)
	}
	if !(o.eksRateLimit.QPS > 0) || o.eksRateLimit.Burst < 1 {
		return fmt.Errorf("--eks-api-qps (%v) must be positive and --eks-api-burst (%d) at least 1", o.eksRateLimit.QPS, o.eksRateLimit.Burst)
	}
	if o.protectionInterval <= 0 {
		return fmt.Errorf("--protection-check-interval must be positive, not %v", o.protectionInterval)
	}
	return nil
}

// Run runs the operator until a signal stops it, and logs why it stopped
// on an error.
func (o *operator) Run() error {
	logger := zap.New(zap.UseFlagOptions(&o.zap))
	ctrl.SetLogger(logger)
	// client-go logs through klog: its watch and leader election messages
	// belong in the same structured log.
	klog.SetLogger(logger)
	if err := o.run(); err != nil {
		ctrl.Log.WithName("setup").Error(err, "Manager stopped")
		return err
	}
	return nil
}

func (o *operator) run() error {
	opts := o.opts
	r := &controllers.AWSAuthReconciler{
		Mode:            managed.Mode(o.mode),
		BatchDelay:      o.batchDelay,
		MaxRemovedShare: o.maxRemovedShare,
		BackupNamespace: o.backupNamespace,
		RecheckInterval: o.recheckInterval,
	}
	policyDir, err := fs.Sub(policyFiles, "config/policy")
	if err != nil {
		return err
	}
	// The policies name the operator's namespace, which is the backup's.
	shipped, err := controllers.ParseShippedPolicies(policyDir, r.BackupNamespace)
	if err != nil {
		return fmt.Errorf("reading the built-in admission policies: %w", err)
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("finding the cluster: %w", err)
	}
	opts.Scheme = controllers.NewScheme()
	opts.Cache = controllers.CacheOptions()
	if o.metricsSecure {
		secureMetrics(&opts)
	}
	mgr, err := ctrl.NewManager(cfg, opts)
	if err != nil {
		return fmt.Errorf("creating the manager: %w", err)
	}
	r.Client, r.APIReader, r.Cache = mgr.GetClient(), mgr.GetAPIReader(), mgr.GetCache()
	r.Recorder = mgr.GetEventRecorder("aws-auth-guardian")
	ctx := ctrl.SetupSignalHandler()
	// Made before the aws-auth controller, whose status controller shows
	// its outcome too; set up after it.
	if r.AccessEntries, err = o.accessEntries(ctx, mgr, r); err != nil {
		return err
	}
	if err := r.SetupWithManager(ctx, mgr); err != nil {
		return fmt.Errorf("setting up the aws-auth controller: %w", err)
	}
	if r.AccessEntries != nil {
		if err := r.AccessEntries.SetupWithManager(ctx, mgr); err != nil {
			return fmt.Errorf("setting up the access entry controller: %w", err)
		}
	}
	if err := mgr.Add(&controllers.ProtectionReport{Reader: mgr.GetAPIReader(), Shipped: shipped, Interval: o.protectionInterval}); err != nil {
		return err
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return err
	}
	v := version.Get()
	ctrl.Log.WithName("setup").Info("Starting manager", "version", v.Version, "commit", v.Commit, "buildDate", v.BuildDate,
		"configmapMode", r.Mode, "eksClusterName", o.eksClusterName, "leaderElection", opts.LeaderElection, "leaseDuration", *opts.LeaseDuration, "backupNamespace", r.BackupNamespace)
	return mgr.Start(ctx)
}

// The metrics filter asks the API server who a scraper is and whether it
// may read /metrics.
// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create

// secureMetrics serves the metrics over HTTPS to authorized scrapers only:
// each request's bearer token goes to the API server in a TokenReview, and
// its identity in a SubjectAccessReview for get on the path /metrics. The
// certificate is the one in the metrics server's CertDir, else
// self-signed, made at start.
func secureMetrics(opts *ctrl.Options) {
	opts.Metrics.SecureServing = true
	opts.Metrics.FilterProvider = filters.WithAuthenticationAndAuthorization
	// HTTP/1.1 only: HTTP/2's stream reset and continuation floods
	// (CVE-2023-44487, CVE-2023-39325) reach a server before any token is
	// checked; a scrape gains nothing from HTTP/2.
	opts.Metrics.TLSOpts = append(opts.Metrics.TLSOpts, func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} })
}

// accessEntries is the access entry controller when a cluster is named,
// else nil. Without one no AWS client is made at all: the operator is the
// aws-auth operator it always was, needing no AWS credentials.
func (o *operator) accessEntries(ctx context.Context, mgr ctrl.Manager, r *controllers.AWSAuthReconciler) (*controllers.AccessEntryReconciler, error) {
	if o.eksClusterName == "" {
		return nil, nil
	}
	eks, err := eksapi.New(ctx, eksapi.Options{ClusterName: o.eksClusterName, RateLimit: o.eksRateLimit})
	if err != nil {
		return nil, err
	}
	return &controllers.AccessEntryReconciler{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Cache: mgr.GetCache(), EKS: eks,
		Resync: o.accessEntryResync, FullResync: o.accessEntryFullResync, MaxRemovedShare: r.MaxRemovedShare,
		APIRate: o.eksRateLimit.QPS,
	}, nil
}
