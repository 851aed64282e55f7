package iam

import (
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// trustPolicy is the part of a role's trust policy these tests read.
type trustPolicy struct {
	Statement []struct {
		Effect    string
		Principal map[string]string
		Action    stringList
		Condition map[string]map[string]string
	}
}

func readTrust(t *testing.T, name string) trustPolicy {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "config", "iam", name))
	if err != nil {
		t.Fatal(err)
	}
	var p trustPolicy
	if err := json.Unmarshal(data, &p); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if len(p.Statement) != 1 || p.Statement[0].Effect != "Allow" {
		t.Fatalf("%s: want one Allow statement, got %+v", name, p.Statement)
	}
	return p
}

// serviceAccount is the operator's service account as config/rbac makes
// it: the identity both trust policies must name, and nothing wider.
func serviceAccount(t *testing.T) corev1.ServiceAccount {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "config", "rbac", "service_account.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var sa corev1.ServiceAccount
	if err := yaml.UnmarshalStrict(data, &sa); err != nil || sa.Name == "" || sa.Namespace == "" {
		t.Fatalf("config/rbac/service_account.yaml: %v (%s/%s)", err, sa.Namespace, sa.Name)
	}
	return sa
}

// IRSA: the cluster's OIDC provider may assume the role for the
// operator's service account alone ("Assign IAM roles to Kubernetes
// service accounts": a sub condition system:serviceaccount:<ns>:<name>,
// and aud sts.amazonaws.com).
func TestIRSATrustNamesTheOperatorsServiceAccount(t *testing.T) {
	sa := serviceAccount(t)
	s := readTrust(t, "trust-irsa.json").Statement[0]
	if got := s.Principal["Federated"]; got != "arn:aws:iam::ACCOUNT_ID:oidc-provider/OIDC_PROVIDER" {
		t.Errorf("principal %q, want the cluster's OIDC provider", got)
	}
	if !slices.Equal(s.Action, stringList{"sts:AssumeRoleWithWebIdentity"}) {
		t.Errorf("actions %v, want sts:AssumeRoleWithWebIdentity only", s.Action)
	}
	want := map[string]string{
		"OIDC_PROVIDER:sub": "system:serviceaccount:" + sa.Namespace + ":" + sa.Name,
		"OIDC_PROVIDER:aud": "sts.amazonaws.com",
	}
	if got := s.Condition["StringEquals"]; len(s.Condition) != 1 || !maps.Equal(got, want) {
		t.Errorf("condition %v, want exactly StringEquals %v", s.Condition, want)
	}
}

// EKS Pod Identity: the service pods.eks.amazonaws.com assumes the role
// and tags the session ("Create IAM role with trust policy required by EKS
// Pod Identity"); the session tags it sets (cluster ARN, namespace,
// service account) limit the role to the operator's service account of
// one cluster.
func TestPodIdentityTrustNamesTheOperatorsServiceAccount(t *testing.T) {
	sa := serviceAccount(t)
	s := readTrust(t, "trust-pod-identity.json").Statement[0]
	if got := s.Principal["Service"]; got != "pods.eks.amazonaws.com" {
		t.Errorf("principal %q, want the service pods.eks.amazonaws.com", got)
	}
	if got := slices.Sorted(slices.Values(s.Action)); !slices.Equal(got, []string{"sts:AssumeRole", "sts:TagSession"}) {
		t.Errorf("actions %v, want sts:AssumeRole and sts:TagSession", got)
	}
	want := map[string]string{
		"aws:RequestTag/eks-cluster-arn":            clusterARN,
		"aws:RequestTag/kubernetes-namespace":       sa.Namespace,
		"aws:RequestTag/kubernetes-service-account": sa.Name,
	}
	if got := s.Condition["StringEquals"]; len(s.Condition) != 1 || !maps.Equal(got, want) {
		t.Errorf("condition %v, want exactly StringEquals %v", s.Condition, want)
	}
}
