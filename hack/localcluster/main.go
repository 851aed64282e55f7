// Command localcluster starts a local control plane (the kube-apiserver and
// etcd that hack/build-controlplane.sh builds), writes an admin kubeconfig
// and one for the operator's service account, and keeps it running until
// interrupted. `make run` (hack/run-local.sh) uses it. With --eks-fake it
// also serves a fake EKS and IAM (internal/testing/awsfake) on loopback, for
// `make run EKS=fake`; `localcluster entries` lists that fake's access
// entries and deletes one out of band.
//
// envtest starts kube-apiserver and etcd in process groups of their own, so
// a signal to the process group of `make run` never reaches them: this
// command is what stops them, on SIGINT, SIGTERM or SIGHUP, and when its
// parent goes away without a word (kill -9).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// operatorUser is the identity config/rbac binds the operator's roles to and
// config/policy exempts: the operator of `make run` signs in as it, so the
// policies judge it as they judge the deployed operator.
const operatorUser = "system:serviceaccount:aws-auth-guardian-system:aws-auth-guardian-controller-manager"

func main() {
	if len(os.Args) > 1 && os.Args[1] == "entries" {
		entriesMain(os.Args[2:])
	}
	kubeconfig := flag.String("write-kubeconfig", "bin/local/kubeconfig", "Where to write the admin (system:masters) kubeconfig.")
	operatorKubeconfig := flag.String("write-operator-kubeconfig", "", "Where to write a kubeconfig that signs in as the operator's service account; none when empty.")
	assets := flag.String("assets", "bin/controlplane", "The directory holding kube-apiserver and etcd.")
	var fake fakeOptions
	flag.StringVar(&fake.state, "eks-fake", "", "Also serve a fake EKS and IAM on a free loopback port, and write where to reach it (the AWS_* environment the operator needs) to this file; none when empty.")
	flag.StringVar(&fake.cluster, "eks-fake-cluster", "local", "The name of the fake EKS cluster.")
	flag.StringVar(&fake.samples, "eks-fake-principals-from", "config/samples/iam_v1alpha1_iamidentitymapping.yaml", "The mappings whose roles and users the fake IAM holds.")
	flag.Parse()
	if err := run(*kubeconfig, *operatorKubeconfig, *assets, fake); err != nil {
		fmt.Fprintln(os.Stderr, "localcluster:", err)
		os.Exit(1)
	}
}

// fakeOptions are the flags of the fake EKS; state "" means none.
type fakeOptions struct{ state, cluster, samples string }

func run(kubeconfig, operatorKubeconfig, assets string, fake fakeOptions) (err error) {
	// Registered before the control plane starts (which takes seconds, tens
	// of them on a loaded machine): a signal during the start would
	// otherwise kill this process and leave etcd and kube-apiserver behind.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	ctx = stopWithParent(ctx)

	env := &envtest.Environment{BinaryAssetsDirectory: assets}
	// Stopped even when the start failed half-way: etcd may be running.
	defer func() {
		if stopErr := env.Stop(); stopErr != nil {
			err = errors.Join(err, fmt.Errorf("stopping the control plane: %w", stopErr))
		}
	}()
	if _, err := env.Start(); err != nil {
		return fmt.Errorf("starting the control plane: %w", err)
	}
	if ctx.Err() != nil {
		return nil
	}

	if err := writeKubeconfig(env, kubeconfig, envtest.User{Name: "admin", Groups: []string{"system:masters"}}); err != nil {
		return err
	}
	defer func() { _ = os.Remove(kubeconfig) }()
	if operatorKubeconfig != "" {
		// The groups the API server gives every service account token.
		operator := envtest.User{Name: operatorUser, Groups: []string{"system:serviceaccounts", "system:serviceaccounts:aws-auth-guardian-system"}}
		if err := writeKubeconfig(env, operatorKubeconfig, operator); err != nil {
			return err
		}
		defer func() { _ = os.Remove(operatorKubeconfig) }()
	}
	// Before the control plane is announced (hack/run-local.sh waits for
	// the kubeconfigs and this file together), and stopped with it.
	if fake.state != "" {
		f, err := startFakeEKS(fake.state, fake.cluster, fake.samples)
		if err != nil {
			return fmt.Errorf("starting the fake EKS: %w", err)
		}
		defer f.stop()
		fmt.Fprintf(os.Stderr, "Fake EKS and IAM up at %s, cluster %s; where to reach them in %s\n", f.server.URL(), fake.cluster, fake.state)
	}
	fmt.Fprintf(os.Stderr, "Control plane up at %s; kubeconfig in %s\n", env.Config.Host, kubeconfig)

	<-ctx.Done()
	fmt.Fprintln(os.Stderr, "Stopping the control plane")
	return nil
}

// writeKubeconfig writes a kubeconfig for user to path, through a temporary
// name and a rename, so that a watcher never reads half of it.
func writeKubeconfig(env *envtest.Environment, path string, user envtest.User) error {
	added, err := env.AddUser(user, nil)
	if err != nil {
		return fmt.Errorf("adding user %s: %w", user.Name, err)
	}
	config, err := added.KubeConfig()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(path+".tmp", config, 0o600); err != nil {
		return err
	}
	return os.Rename(path+".tmp", path)
}

// stopWithParent ends ctx when this process is orphaned (its parent killed
// with SIGKILL, which no trap sees): the control plane would outlive
// whatever started it.
func stopWithParent(ctx context.Context) context.Context {
	ctx, cancel := context.WithCancel(ctx)
	parent := os.Getppid()
	go func() {
		defer cancel()
		ticker := time.NewTicker(time.Second)
		defer ticker.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-ticker.C:
				if os.Getppid() != parent {
					fmt.Fprintln(os.Stderr, "localcluster: the process that started it is gone")
					return
				}
			}
		}
	}()
	return ctx
}
