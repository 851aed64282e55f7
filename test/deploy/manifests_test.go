package deploy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// ref names one object as a person would: its kind, namespace and name.
type ref struct{ Kind, Namespace, Name string }

func (r ref) String() string {
	if r.Namespace == "" {
		return r.Kind + " " + r.Name
	}
	return r.Kind + " " + r.Namespace + "/" + r.Name
}

func refOf(u *unstructured.Unstructured) ref {
	return ref{u.GetKind(), u.GetNamespace(), u.GetName()}
}

func refsOf(objs []*unstructured.Unstructured) []ref {
	out := make([]ref, 0, len(objs))
	for _, o := range objs {
		out = append(out, refOf(o))
	}
	return out
}

// decodeManifests reads a stream of YAML documents, as kustomize and Helm
// print them, skipping empty ones.
func decodeManifests(t *testing.T, data []byte) []*unstructured.Unstructured {
	t.Helper()
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var objs []*unstructured.Unstructured
	for {
		var m map[string]any
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			return objs
		}
		if err != nil {
			t.Fatalf("decoding manifests: %v", err)
		}
		if len(m) == 0 {
			continue
		}
		u := &unstructured.Unstructured{Object: m}
		if u.GetKind() == "" || u.GetAPIVersion() == "" || u.GetName() == "" {
			t.Fatalf("a manifest without apiVersion, kind or name: %v", m)
		}
		objs = append(objs, u)
	}
}

// find returns the object r names, or fails the test.
func find(t *testing.T, objs []*unstructured.Unstructured, r ref) *unstructured.Unstructured {
	t.Helper()
	for _, o := range objs {
		if refOf(o) == r {
			return o
		}
	}
	t.Fatalf("%s is missing; there are: %v", r, refsOf(objs))
	return nil
}

// typed converts u into a typed object, failing on a field the type does
// not have (a typo would otherwise vanish here and at the API server).
func typed[T any](t *testing.T, u *unstructured.Unstructured) *T {
	t.Helper()
	out := new(T)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, out, true); err != nil {
		t.Fatalf("%s: %v", refOf(u), err)
	}
	return out
}

// withoutMetadata is an object's content apart from its metadata, which
// installers decorate (labels, annotations).
func withoutMetadata(u *unstructured.Unstructured) map[string]any {
	out := u.DeepCopy().Object
	delete(out, "metadata")
	return out
}

// apply applies objs to the API server with server-side apply, as
// `kubectl apply --server-side` does: Namespaces first, then CRDs (waiting
// until they are served), then the rest. Every object must be accepted
// without a warning.
func apply(t *testing.T, owner string, objs []*unstructured.Unstructured) {
	t.Helper()
	rank := func(u *unstructured.Unstructured) int {
		switch u.GetKind() {
		case "Namespace":
			return 0
		case "CustomResourceDefinition":
			return 1
		}
		return 2
	}
	sorted := slices.Clone(objs)
	slices.SortStableFunc(sorted, func(a, b *unstructured.Unstructured) int { return rank(a) - rank(b) })
	for _, o := range sorted {
		if err := applyOne(owner, o); err != nil {
			t.Fatal(err)
		}
		if o.GetKind() == "CustomResourceDefinition" {
			waitEstablished(t, o.GetName())
		}
	}
}

func applyOne(owner string, o *unstructured.Unstructured) error {
	var w warnings
	ctx := withWarnings(context.Background(), &w)
	err := k.Apply(ctx, client.ApplyConfigurationFromUnstructured(o.DeepCopy()), client.FieldOwner(owner), client.ForceOwnership)
	if err != nil {
		return fmt.Errorf("applying %s: %w", refOf(o), err)
	}
	if ws := w.get(); len(ws) > 0 {
		return fmt.Errorf("applying %s: the API server warned: %s", refOf(o), strings.Join(ws, "; "))
	}
	return nil
}

// applyCustomResources applies objects of a kind a CRD just added: the
// client's REST mapper learns the kind on its next discovery.
func applyCustomResources(t *testing.T, owner string, objs []*unstructured.Unstructured) {
	t.Helper()
	g := NewWithT(t)
	for _, o := range objs {
		g.Eventually(func() error {
			err := applyOne(owner, o)
			if meta.IsNoMatchError(err) {
				return err
			}
			if err != nil {
				return StopTrying(err.Error())
			}
			return nil
		}).WithTimeout(timeout).WithPolling(interval).Should(Succeed(), "applying %s", refOf(o))
	}
}

func waitEstablished(t *testing.T, name string) {
	t.Helper()
	NewWithT(t).Eventually(func(g Gomega) {
		crd := &apiextensionsv1.CustomResourceDefinition{}
		g.Expect(k.Get(context.Background(), client.ObjectKey{Name: name}, crd)).To(Succeed())
		established := false
		for _, c := range crd.Status.Conditions {
			if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
				established = true
			}
		}
		g.Expect(established).To(BeTrue(), "CRD %s is not Established: %+v", name, crd.Status.Conditions)
	}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
}
