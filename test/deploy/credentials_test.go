package deploy

import (
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// eksOverlay is the kustomization the README ("Credentials on EKS") tells
// a person to write: config/default, one credentials component, and env
// patches that name the cluster and its region, plus, for IRSA, the role.
func eksOverlay(t *testing.T, component string, patches string) (appsv1.Deployment, corev1.ServiceAccount) {
	t.Helper()
	objs := userKustomization(t, []string{component}, patches)
	dep := typed[appsv1.Deployment](t, find(t, objs, ref{"Deployment", defaultNamespace, deploymentName}))
	sa := typed[corev1.ServiceAccount](t, find(t, objs, ref{"ServiceAccount", defaultNamespace, serviceAccountName}))
	return *dep, *sa
}

const clusterPatch = `patches:
- patch: |-
    apiVersion: apps/v1
    kind: Deployment
    metadata:
      name: aws-auth-guardian-controller-manager
      namespace: aws-auth-guardian-system
    spec:
      template:
        spec:
          containers:
          - name: manager
            env:
            - name: EKS_CLUSTER_NAME
              value: prod
            - name: AWS_REGION
              value: eu-west-1
`

const rolePatch = `- patch: |-
    apiVersion: v1
    kind: ServiceAccount
    metadata:
      name: aws-auth-guardian-controller-manager
      namespace: aws-auth-guardian-system
      annotations:
        eks.amazonaws.com/role-arn: arn:aws:iam::111122223333:role/aws-auth-guardian
`

// envOf is the container's environment, by name, of literal values.
func envOf(c corev1.Container) map[string]string {
	out := map[string]string{}
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			out[e.Name] = e.Value
		}
	}
	return out
}

func TestCredentialComponents(t *testing.T) {
	for _, tt := range []struct {
		component, patches string
		wantRole           string
	}{
		{component: "irsa", patches: clusterPatch + rolePatch, wantRole: "arn:aws:iam::111122223333:role/aws-auth-guardian"},
		// Pod Identity: the association is made on the AWS side; nothing
		// on the service account.
		{component: "pod-identity", patches: clusterPatch},
	} {
		t.Run(tt.component, func(t *testing.T) {
			g := NewWithT(t)
			dep, sa := eksOverlay(t, tt.component, tt.patches)
			c := dep.Spec.Template.Spec.Containers[0]
			// Kubernetes expands $(EKS_CLUSTER_NAME) from the env.
			g.Expect(c.Args).To(ContainElement("--eks-cluster-name=$(EKS_CLUSTER_NAME)"))
			g.Expect(envOf(c)).To(HaveKeyWithValue("EKS_CLUSTER_NAME", "prod"))
			g.Expect(envOf(c)).To(HaveKeyWithValue("AWS_REGION", "eu-west-1"))
			// The pod's namespace still comes from the downward API.
			g.Expect(c.Env).To(ContainElement(HaveField("Name", "POD_NAMESPACE")))
			if tt.wantRole == "" {
				g.Expect(sa.Annotations).NotTo(HaveKey("eks.amazonaws.com/role-arn"))
			} else {
				g.Expect(sa.Annotations).To(HaveKeyWithValue("eks.amazonaws.com/role-arn", tt.wantRole))
			}
		})
	}

	// Without the patches the placeholders stay, for a person to see.
	g := NewWithT(t)
	dep, sa := eksOverlay(t, "irsa", "")
	g.Expect(envOf(dep.Spec.Template.Spec.Containers[0])).To(HaveKeyWithValue("EKS_CLUSTER_NAME", "CLUSTER_NAME"))
	g.Expect(sa.Annotations).To(HaveKeyWithValue("eks.amazonaws.com/role-arn", "arn:aws:iam::ACCOUNT_ID:role/aws-auth-guardian"))
}
