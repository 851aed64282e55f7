package integration

import (
	"context"
	"fmt"
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

const operatorServiceAccount = "aws-auth-guardian-controller-manager"

// TestOperatorNamespaceComponent: whoever may edit the operator's namespace
// could act as its service account, which may rewrite aws-auth. With
// config/components/protect-operator-namespace, the paths to that identity
// are left to the controllers that need them.
func TestOperatorNamespaceComponent(t *testing.T) {
	resetCluster(t)
	applyConfig(t, "config/rbac")
	applyConfig(t, "config/components/protect-operator-namespace")
	ctx := context.Background()
	g := NewWithT(t)

	other := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: operatorNamespace, Name: "other"}}
	create(t, other)
	t.Cleanup(func() { _ = k.Delete(ctx, other) })
	// mallory may do anything in the namespace, as the built-in edit role
	// allows (and more).
	everything := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Namespace: operatorNamespace, Name: "everything"},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{"", "apps"}, Resources: []string{"*"}, Verbs: []string{"*"}},
		},
	}
	create(t, everything)
	t.Cleanup(func() { _ = k.Delete(ctx, everything) })
	for i, user := range []string{"mallory", "system:serviceaccount:kube-system:replicaset-controller", "system:serviceaccount:kube-system:deployment-controller", "system:node:n1"} {
		binding := &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Namespace: operatorNamespace, Name: fmt.Sprintf("everything-%d", i)},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: everything.Name},
			Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: user}},
		}
		create(t, binding)
		t.Cleanup(func() { _ = k.Delete(ctx, binding) })
	}
	mallory, malloryConfig := userClient(t, "mallory")
	replicaSetController, _ := userClient(t, "system:serviceaccount:kube-system:replicaset-controller", "system:serviceaccounts")
	deploymentController, _ := userClient(t, "system:serviceaccount:kube-system:deployment-controller", "system:serviceaccounts")
	_, kubeletConfig := userClient(t, "system:node:n1", "system:nodes")
	breakGlass, breakGlassConfig := userClient(t, "bob", breakGlassGroup)
	bindClusterRole(t, "bob", "cluster-admin")

	pod := func(serviceAccount string) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: operatorNamespace, Name: "p-" + serviceAccount},
			Spec: corev1.PodSpec{
				ServiceAccountName: serviceAccount,
				Containers:         []corev1.Container{{Name: "c", Image: "attacker.example/shell"}},
			},
		}
	}
	template := func(serviceAccount string) corev1.PodTemplateSpec {
		p := pod(serviceAccount)
		return corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "x"}}, Spec: p.Spec}
	}
	selector := &metav1.LabelSelector{MatchLabels: map[string]string{"app": "x"}}
	deployment := func(serviceAccount string) *appsv1.Deployment {
		return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: operatorNamespace, Name: "d-" + serviceAccount},
			Spec: appsv1.DeploymentSpec{Selector: selector, Template: template(serviceAccount)}}
	}
	replicaSet := func(serviceAccount string) *appsv1.ReplicaSet {
		return &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Namespace: operatorNamespace, Name: "rs-" + serviceAccount},
			Spec: appsv1.ReplicaSetSpec{Selector: selector, Template: template(serviceAccount)}}
	}
	tokenFor := func(as *rest.Config, serviceAccount string) error {
		_, err := kubernetes.NewForConfigOrDie(as).CoreV1().ServiceAccounts(operatorNamespace).CreateToken(ctx, serviceAccount,
			&authenticationv1.TokenRequest{}, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return err
	}

	// The policy loads asynchronously: wait until it answers.
	g.Eventually(func() error {
		return mallory.Create(ctx, pod(operatorServiceAccount), client.DryRunAll)
	}).WithTimeout(timeout).WithPolling(interval).Should(MatchError(ContainSubstring("aws-auth-guardian-protect-operator-namespace")))

	t.Run("an editor cannot become the operator", func(t *testing.T) {
		g := NewWithT(t)
		expectForbidden(g, mallory.Create(ctx, pod(operatorServiceAccount), client.DryRunAll), "Only the ReplicaSet controller may run a pod as aws-auth-guardian-system/aws-auth-guardian-controller-manager")
		expectForbidden(g, mallory.Create(ctx, replicaSet(operatorServiceAccount), client.DryRunAll), "Only the Deployment controller may write a ReplicaSet")
		expectForbidden(g, mallory.Create(ctx, deployment(operatorServiceAccount), client.DryRunAll), "writing it needs the verb escalate")
		expectForbidden(g, tokenFor(malloryConfig, operatorServiceAccount), "Only a kubelet may request a token")
		secret := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: operatorNamespace, Name: "stolen", Annotations: map[string]string{"kubernetes.io/service-account.name": operatorServiceAccount}},
			Type:       corev1.SecretTypeServiceAccountToken,
		}
		expectForbidden(g, mallory.Create(ctx, secret, client.DryRunAll), "would hold a lasting token")
		err := kubernetes.NewForConfigOrDie(malloryConfig).CoreV1().RESTClient().Post().Namespace(operatorNamespace).
			Resource("pods").Name("aws-auth-guardian-controller-manager-abc").SubResource("exec").
			Param("command", "sh").Param("stdout", "true").Do(ctx).Error()
		expectForbidden(g, err, "pods/exec is not allowed in aws-auth-guardian-system")
	})
	t.Run("the controllers that need it can", func(t *testing.T) {
		g := NewWithT(t)
		g.Expect(replicaSetController.Create(ctx, pod(operatorServiceAccount), client.DryRunAll)).To(Succeed())
		g.Expect(deploymentController.Create(ctx, replicaSet(operatorServiceAccount), client.DryRunAll)).To(Succeed())
		g.Expect(tokenFor(kubeletConfig, operatorServiceAccount)).To(Succeed())
	})
	t.Run("a cluster admin deploys it, break-glass does anything", func(t *testing.T) {
		g := NewWithT(t)
		g.Expect(breakGlass.Create(ctx, deployment(operatorServiceAccount), client.DryRunAll)).To(Succeed())
		g.Expect(k.Create(ctx, deployment(operatorServiceAccount), client.DryRunAll)).To(Succeed())
		g.Expect(breakGlass.Create(ctx, pod(operatorServiceAccount), client.DryRunAll)).To(Succeed())
		g.Expect(tokenFor(breakGlassConfig, operatorServiceAccount)).To(Succeed())
	})
	t.Run("other workloads in the namespace are not affected", func(t *testing.T) {
		g := NewWithT(t)
		g.Expect(mallory.Create(ctx, pod("other"), client.DryRunAll)).To(Succeed())
		g.Expect(mallory.Create(ctx, deployment("other"), client.DryRunAll)).To(Succeed())
		g.Expect(mallory.Create(ctx, replicaSet("other"), client.DryRunAll)).To(Succeed())
		g.Expect(tokenFor(malloryConfig, "other")).To(Succeed())
	})
}
