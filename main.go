// Command manager runs aws-auth-guardian: it keeps kube-system/aws-auth
// equal to the render of all IAMIdentityMappings.
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	iamv1alpha1 "github.com/aws-auth-guardian/aws-auth-guardian/api/v1alpha1"
	"github.com/aws-auth-guardian/aws-auth-guardian/controllers"
)

func main() {
	var (
		metricsAddr, probeAddr, leaderElectionNamespace, mode string
		leaderElect                                           bool
		batchDelay                                            time.Duration
	)
	// --kubeconfig is registered by controller-runtime's config package.
	flag.StringVar(&metricsAddr, "metrics-bind-address", ":8080", "The address the Prometheus metrics endpoint binds to; 0 disables it.")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "The address the health and readiness probes bind to.")
	flag.BoolVar(&leaderElect, "leader-elect", false, "Elect a leader, so that of several replicas only one writes aws-auth.")
	flag.StringVar(&leaderElectionNamespace, "leader-election-namespace", "", "The namespace of the leader election Lease (default: the pod's namespace).")
	flag.StringVar(&mode, "configmap-mode", string(controllers.Immutable), "How aws-auth is written: immutable (every change is a replace) or mutable (updated in place, for clusters where EKS must still write it).")
	flag.DurationVar(&batchDelay, "batch-delay", 200*time.Millisecond, "How long to gather mapping changes into one write of aws-auth. Healing a deleted or edited aws-auth is never delayed.")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()

	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	log := ctrl.Log.WithName("setup")
	if err := run(metricsAddr, probeAddr, leaderElect, leaderElectionNamespace, controllers.ConfigMapMode(mode), batchDelay); err != nil {
		log.Error(err, "Manager stopped")
		os.Exit(1)
	}
}

func run(metricsAddr, probeAddr string, leaderElect bool, leaderElectionNamespace string, mode controllers.ConfigMapMode, batchDelay time.Duration) error {
	if mode != controllers.Immutable && mode != controllers.Mutable {
		return fmt.Errorf("--configmap-mode must be %q or %q, not %q", controllers.Immutable, controllers.Mutable, mode)
	}
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(iamv1alpha1.AddToScheme(scheme))

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
	if err := (&controllers.AWSAuthReconciler{
		Client:     mgr.GetClient(),
		APIReader:  mgr.GetAPIReader(),
		Recorder:   mgr.GetEventRecorder("aws-auth-guardian"),
		Mode:       mode,
		BatchDelay: batchDelay,
	}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the aws-auth controller: %w", err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return err
	}
	ctrl.Log.WithName("setup").Info("Starting manager", "configmapMode", mode, "leaderElection", leaderElect)
	return mgr.Start(ctrl.SetupSignalHandler())
}
