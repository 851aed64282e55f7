// Command localcluster starts a local control plane (the kube-apiserver and
// etcd that hack/build-controlplane.sh builds), writes an admin kubeconfig,
// and keeps it running until interrupted. `make run` uses it.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

func main() {
	kubeconfig := flag.String("write-kubeconfig", "bin/local/kubeconfig", "Where to write the admin kubeconfig.")
	assets := flag.String("assets", "bin/controlplane", "The directory holding kube-apiserver and etcd.")
	flag.Parse()
	if err := run(*kubeconfig, *assets); err != nil {
		fmt.Fprintln(os.Stderr, "localcluster:", err)
		os.Exit(1)
	}
}

func run(kubeconfig, assets string) error {
	env := &envtest.Environment{BinaryAssetsDirectory: assets}
	if _, err := env.Start(); err != nil {
		return fmt.Errorf("starting the control plane: %w", err)
	}
	defer func() { _ = env.Stop() }()

	admin, err := env.AddUser(envtest.User{Name: "admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return err
	}
	config, err := admin.KubeConfig()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(kubeconfig), 0o700); err != nil {
		return err
	}
	// Written to a temporary name and renamed, so a watcher never reads half of it.
	if err := os.WriteFile(kubeconfig+".tmp", config, 0o600); err != nil {
		return err
	}
	if err := os.Rename(kubeconfig+".tmp", kubeconfig); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "Control plane up at %s; kubeconfig in %s\n", env.Config.Host, kubeconfig)

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
	<-stop
	_ = os.Remove(kubeconfig)
	return nil
}
