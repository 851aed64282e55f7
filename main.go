// Command manager runs aws-auth-guardian: it keeps kube-system/aws-auth
// equal to the render of all IAMIdentityMappings. Its subcommands import
// an existing aws-auth as mappings and render mappings offline.
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"k8s.io/klog/v2"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/aws-auth-guardian/aws-auth-guardian/controllers"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/cli"
)

func main() {
	// `manager import` and `manager render` work offline, for GitOps and CI.
	if handled, code := cli.Run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr); handled {
		os.Exit(code)
	}
	var (
		metricsAddr, probeAddr, leaderElectionNamespace, mode, backupNamespace string
		leaderElect                                                            bool
		batchDelay                                                             time.Duration
		maxRemovedShare                                                        float64
		recheckInterval                                                        time.Duration
	)
	// --kubeconfig is registered by controller-runtime's config package.
	flag.StringVar(&metricsAddr, "metrics-bind-address", ":8080", "The address the Prometheus metrics endpoint binds to; 0 disables it.")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "The address the health and readiness probes bind to.")
	flag.BoolVar(&leaderElect, "leader-elect", false, "Elect a leader, so that of several replicas only one writes aws-auth.")
	flag.StringVar(&leaderElectionNamespace, "leader-election-namespace", "", "The namespace of the leader election Lease (default: the pod's namespace).")
	flag.StringVar(&mode, "configmap-mode", string(controllers.Immutable), "How aws-auth is written: immutable (every change is a replace) or mutable (updated in place, for clusters where EKS must still write it).")
	flag.DurationVar(&batchDelay, "batch-delay", 200*time.Millisecond, "How long to gather mapping changes into one write of aws-auth. Healing a deleted or edited aws-auth is never delayed.")
	flag.DurationVar(&recheckInterval, "recheck-interval", 30*time.Second, "How often aws-auth is read even without an event, to bound healing when a watch breaks without a sign; 0 disables it.")
	flag.Float64Var(&maxRemovedShare, "max-removed-share", 0.5, "The largest share (0 to 1) of aws-auth's entries one write may remove, once it has 5 or more; a larger removal is refused until allowed by annotation.")
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
		Mode:            controllers.ConfigMapMode(mode),
		BatchDelay:      batchDelay,
		MaxRemovedShare: maxRemovedShare,
		BackupNamespace: backupNamespace,
		RecheckInterval: recheckInterval,
	}
	if err := run(metricsAddr, probeAddr, leaderElect, leaderElectionNamespace, reconciler); err != nil {
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

func run(metricsAddr, probeAddr string, leaderElect bool, leaderElectionNamespace string, r *controllers.AWSAuthReconciler) error {
	if r.Mode != controllers.Immutable && r.Mode != controllers.Mutable {
		return fmt.Errorf("--configmap-mode must be %q or %q, not %q", controllers.Immutable, controllers.Mutable, r.Mode)
	}
	if r.MaxRemovedShare < 0 || r.MaxRemovedShare > 1 {
		return fmt.Errorf("--max-removed-share must be between 0 and 1, not %v", r.MaxRemovedShare)
	}
	scheme := controllers.NewScheme()

	mgr, err := ctrl.NewManager(ctrl.GetConfigOrDie(), ctrl.Options{
		Scheme:                        scheme,
		Cache:                         controllers.CacheOptions(),
		Metrics:                       metricsserver.Options{BindAddress: metricsAddr},
		HealthProbeBindAddress:        probeAddr,
		LeaderElection:                leaderElect,
		LeaderElectionID:              "aws-auth-guardian.iam.aws-auth-guardian.dev",
		LeaderElectionNamespace:       leaderElectionNamespace,
		LeaderElectionReleaseOnCancel: true,
	})
	if err != nil {
		return fmt.Errorf("creating the manager: %w", err)
	}
	r.Client, r.APIReader, r.Cache = mgr.GetClient(), mgr.GetAPIReader(), mgr.GetCache()
	r.Recorder = mgr.GetEventRecorder("aws-auth-guardian")
	if err := r.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the aws-auth controller: %w", err)
	}
	if err := mgr.Add(controllers.ProtectionReport{Reader: mgr.GetAPIReader()}); err != nil {
		return err
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return err
	}
	ctrl.Log.WithName("setup").Info("Starting manager", "configmapMode", r.Mode, "leaderElection", leaderElect, "backupNamespace", r.BackupNamespace)
	return mgr.Start(ctrl.SetupSignalHandler())
}
