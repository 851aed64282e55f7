// Command manager runs aws-auth-guardian: it keeps kube-system/aws-auth
// equal to the render of all IAMIdentityMappings. Its subcommands import
// an existing aws-auth as mappings and render mappings offline.
package main

import (
	"embed"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"time"

	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/klog/v2"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/aws-auth-guardian/aws-auth-guardian/controllers"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/cli"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/managed"
)

// policyFiles are the admission policies as released, built in so that the
// operator can tell an installed policy from a disarmed copy of it. The
// embed lives here because go:embed cannot reach above its package.
//
//go:embed config/policy/*.yaml
var policyFiles embed.FS

func main() {
	// `manager import` and `manager render` work offline, for GitOps and CI.
	if handled, code := cli.Run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr); handled {
		os.Exit(code)
	}
	var (
		mode, backupNamespace string
		batchDelay            time.Duration
		maxRemovedShare       float64
		recheckInterval       time.Duration
		protectionInterval    time.Duration
	)
	opts := ctrl.Options{
		LeaderElectionID:              "aws-auth-guardian.iam.aws-auth-guardian.dev",
		LeaderElectionReleaseOnCancel: true,
		LeaseDuration:                 new(time.Duration),
		RenewDeadline:                 new(time.Duration),
		RetryPeriod:                   new(time.Duration),
	}
	// --kubeconfig is registered by controller-runtime's config package.
	flag.StringVar(&opts.Metrics.BindAddress, "metrics-bind-address", ":8080", "The address the Prometheus metrics endpoint binds to; 0 disables it.")
	flag.StringVar(&opts.HealthProbeBindAddress, "health-probe-bind-address", ":8081", "The address the health and readiness probes bind to.")
	flag.BoolVar(&opts.LeaderElection, "leader-elect", false, "Elect a leader, so that of several replicas only one writes aws-auth.")
	flag.StringVar(&opts.LeaderElectionNamespace, "leader-election-namespace", "", "The namespace of the leader election Lease (default: the pod's namespace).")
	flag.DurationVar(opts.LeaseDuration, "leader-election-lease-duration", 15*time.Second, "How long the other replicas wait for a leader that stopped renewing its Lease (killed, say) before one takes over: the longest aws-auth goes unwatched after a leader dies.")
	flag.DurationVar(opts.RenewDeadline, "leader-election-renew-deadline", 10*time.Second, "How long the leader keeps trying to renew its Lease before it steps down; shorter than the lease duration.")
	flag.DurationVar(opts.RetryPeriod, "leader-election-retry-period", 2*time.Second, "How often replicas try to acquire or renew the Lease.")
	flag.StringVar(&mode, "configmap-mode", string(managed.Immutable), "How aws-auth is written: immutable (every change is a replace) or mutable (updated in place, for clusters where EKS must still write it).")
	flag.DurationVar(&batchDelay, "batch-delay", 200*time.Millisecond, "How long to gather mapping changes into one write of aws-auth. Healing a deleted or edited aws-auth is never delayed.")
	flag.DurationVar(&recheckInterval, "recheck-interval", 30*time.Second, "How often aws-auth is read even without an event, to bound healing when a watch breaks without a sign; 0 disables it.")
	flag.DurationVar(&protectionInterval, "protection-check-interval", 10*time.Second, "How often the operator checks that the admission policies of config/policy are installed as shipped and bound with Deny.")
	flag.Float64Var(&maxRemovedShare, "max-removed-share", 0.5, "The largest share (0 to 1) of the entries last applied to aws-auth that one write may remove, once there are 5 or more; a larger removal is refused until allowed by annotation.")
	flag.StringVar(&backupNamespace, "backup-namespace", envOr("POD_NAMESPACE", "aws-auth-guardian-system"), "The namespace of the aws-auth-backup ConfigMap, which keeps the last applied data.")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()

	logger := zap.New(zap.UseFlagOptions(&zapOpts))
	ctrl.SetLogger(logger)
	// client-go logs through klog: its watch and leader election messages
	// belong in the same structured log.
	klog.SetLogger(logger)
	log := ctrl.Log.WithName("setup")
	reconciler := &controllers.AWSAuthReconciler{
		Mode:            managed.Mode(mode),
		BatchDelay:      batchDelay,
		MaxRemovedShare: maxRemovedShare,
		BackupNamespace: backupNamespace,
		RecheckInterval: recheckInterval,
	}
	if err := run(opts, reconciler, protectionInterval); err != nil {
		log.Error(err, "Manager stopped")
		os.Exit(1)
	}
}

func envOr(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}

func run(opts ctrl.Options, r *controllers.AWSAuthReconciler, protectionInterval time.Duration) error {
	if r.Mode != managed.Immutable && r.Mode != managed.Mutable {
		return fmt.Errorf("--configmap-mode must be %q or %q, not %q", managed.Immutable, managed.Mutable, r.Mode)
	}
	if r.MaxRemovedShare < 0 || r.MaxRemovedShare > 1 {
		return fmt.Errorf("--max-removed-share must be between 0 and 1, not %v", r.MaxRemovedShare)
	}
	// client-go's own rule, checked here so that a bad value stops the
	// operator at once rather than when it first runs for leader.
	if !(*opts.LeaseDuration > *opts.RenewDeadline && float64(*opts.RenewDeadline) > leaderelection.JitterFactor*float64(*opts.RetryPeriod) && *opts.RetryPeriod > 0) {
		return fmt.Errorf("leader election needs --leader-election-lease-duration (%v) > --leader-election-renew-deadline (%v) > %v × --leader-election-retry-period (%v) > 0",
			*opts.LeaseDuration, *opts.RenewDeadline, leaderelection.JitterFactor, *opts.RetryPeriod)
	}
	if protectionInterval <= 0 {
		return fmt.Errorf("--protection-check-interval must be positive, not %v", protectionInterval)
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
	opts.Scheme = controllers.NewScheme()
	opts.Cache = controllers.CacheOptions()
	mgr, err := ctrl.NewManager(ctrl.GetConfigOrDie(), opts)
	if err != nil {
		return fmt.Errorf("creating the manager: %w", err)
	}
	r.Client, r.APIReader, r.Cache = mgr.GetClient(), mgr.GetAPIReader(), mgr.GetCache()
	r.Recorder = mgr.GetEventRecorder("aws-auth-guardian")
	ctx := ctrl.SetupSignalHandler()
	if err := r.SetupWithManager(ctx, mgr); err != nil {
		return fmt.Errorf("setting up the aws-auth controller: %w", err)
	}
	if err := mgr.Add(&controllers.ProtectionReport{Reader: mgr.GetAPIReader(), Shipped: shipped, Interval: protectionInterval}); err != nil {
		return err
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return err
	}
	ctrl.Log.WithName("setup").Info("Starting manager", "configmapMode", r.Mode, "leaderElection", opts.LeaderElection,
		"leaseDuration", *opts.LeaseDuration, "backupNamespace", r.BackupNamespace)
	return mgr.Start(ctx)
}
