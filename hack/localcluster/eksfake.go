package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	iamv1alpha1 "github.com/aws-auth-guardian/aws-auth-guardian/api/v1alpha1"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/testing/awsfake"
)

// creatorRole is who "created" the fake cluster. EKS gives the creator an
// access entry of its own, untagged, with AmazonEKSClusterAdminPolicy on
// the whole cluster; the fake has one too, so that `make run EKS=fake`
// shows the operator leaving an entry that is not its own alone.
const creatorRole = "arn:aws:iam::" + awsfake.DefaultAccountID + ":role/cluster-creator"

// Dummy credentials for the fake, which checks that requests are signed
// but not by whom. They are AWS's documented example keys, so that they
// can never be someone's real ones.
const (
	dummyAccessKeyID     = "AKIAIOSFODNN7EXAMPLE"
	dummySecretAccessKey = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
)

// The keys of the state file besides the AWS SDK's own variables.
const stateClusterKey = "EKS_CLUSTER_NAME"

// fakeEKS is the fake EKS and IAM of `make run EKS=fake`: internal/testing/
// awsfake on a free loopback port, with one cluster in API_AND_CONFIG_MAP
// mode, the IAM roles and users the mappings of samples name, and the
// creator's entry. Where to reach it is written to state as KEY=VALUE
// lines, the environment the operator (and the AWS CLI) needs, so that
// hack/run-local.sh passes it on and `localcluster entries` reads it.
type fakeEKS struct {
	server *awsfake.Server
	state  string
}

func startFakeEKS(state, clusterName, samples string) (*fakeEKS, error) {
	principals, err := samplePrincipals(samples)
	if err != nil {
		return nil, err
	}
	s := awsfake.New()
	f := &fakeEKS{server: s, state: state}
	if err := f.seed(clusterName, principals); err != nil {
		s.Close()
		return nil, err
	}
	env := []string{
		"AWS_REGION=" + awsfake.DefaultRegion,
		"AWS_ENDPOINT_URL_EKS=" + s.URL(),
		"AWS_ENDPOINT_URL_IAM=" + s.URL(),
		"AWS_ACCESS_KEY_ID=" + dummyAccessKeyID,
		"AWS_SECRET_ACCESS_KEY=" + dummySecretAccessKey,
		stateClusterKey + "=" + clusterName,
	}
	if err := writeFile(state, []byte(strings.Join(env, "\n")+"\n")); err != nil {
		s.Close()
		return nil, err
	}
	return f, nil
}

func (f *fakeEKS) seed(clusterName string, principals []string) error {
	if _, err := f.server.SeedCluster(awsfake.Cluster{Name: clusterName, AuthenticationMode: awsfake.ModeAPIAndConfigMap}); err != nil {
		return fmt.Errorf("seeding the fake cluster: %w", err)
	}
	if err := f.server.SeedPrincipals(append(principals, creatorRole)...); err != nil {
		return fmt.Errorf("seeding the fake IAM: %w", err)
	}
	_, err := f.server.SeedEntry(clusterName, awsfake.AccessEntry{
		PrincipalARN: creatorRole,
		Policies: []awsfake.AssociatedPolicy{{
			PolicyARN: awsfake.PolicyARN("AmazonEKSClusterAdminPolicy"),
			Scope:     awsfake.AccessScope{Type: awsfake.ScopeCluster},
		}},
	})
	if err != nil {
		return fmt.Errorf("seeding the creator's access entry: %w", err)
	}
	return nil
}

// stop closes the fake and removes the state file, so that nothing points
// at a port that is gone.
func (f *fakeEKS) stop() {
	f.server.Close()
	_ = os.Remove(f.state)
}

// samplePrincipals are the role and user ARNs the mappings in file name,
// read rather than listed here so that the fake's IAM knows whatever
// config/samples holds: a mapping of a principal IAM does not have would
// show PrincipalNotFound (or be refused by CreateAccessEntry), not what
// `make run` means to show.
func samplePrincipals(file string) ([]string, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	decoder := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var arns []string
	for {
		var m iamv1alpha1.IAMIdentityMapping
		err := decoder.Decode(&m)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", file, err)
		}
		// An accountID mapping names no principal.
		if m.Spec.ARN != "" {
			arns = append(arns, m.Spec.ARN)
		}
	}
	if len(arns) == 0 {
		return nil, fmt.Errorf("%s names no role or user", file)
	}
	return arns, nil
}

// readState reads the KEY=VALUE lines startFakeEKS wrote.
func readState(file string) (map[string]string, error) {
	f, err := os.Open(file)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("no fake EKS is running (%s is missing): start one with `make run EKS=fake`", file)
		}
		return nil, err
	}
	defer func() { _ = f.Close() }()
	state := map[string]string{}
	lines := bufio.NewScanner(f)
	for lines.Scan() {
		if k, v, ok := strings.Cut(lines.Text(), "="); ok {
			state[k] = v
		}
	}
	if err := lines.Err(); err != nil {
		return nil, err
	}
	for _, k := range []string{"AWS_REGION", "AWS_ENDPOINT_URL_EKS", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", stateClusterKey} {
		if state[k] == "" {
			return nil, fmt.Errorf("%s has no %s", file, k)
		}
	}
	return state, nil
}

// writeFile writes data to path through a temporary name and a rename, so
// that a watcher never reads half of it.
func writeFile(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(path+".tmp", data, 0o600); err != nil {
		return err
	}
	return os.Rename(path+".tmp", path)
}
