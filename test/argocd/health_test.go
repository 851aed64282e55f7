package argocd

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	lua "github.com/yuin/gopher-lua"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/yaml"

	iamv1alpha1 "github.com/aws-auth-guardian/aws-auth-guardian/api/v1alpha1"
)

// healthKey is the argocd-cm key Argo CD looks the script up by:
// resource.customizations.health.<group>_<kind>.
const healthKey = "resource.customizations.health.iam.aws-auth-guardian.dev_IAMIdentityMapping"

var configDir = filepath.Join("..", "..", "config", "argocd")

func readConfig(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(configDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// health is what the script returned, as Argo CD reads it.
type health struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

// runHealth runs script the way Argo CD's util/lua does for a script from
// argocd-cm: a fresh state without the standard libraries (only package,
// base and table are opened; Argo CD adds a reduced os library this
// script does not use), a one-second budget, obj as a global, and the
// table left on top of the stack as the result.
func runHealth(t *testing.T, script string, obj map[string]any) health {
	t.Helper()
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
	} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(lib.open), NRet: 0, Protect: true}, lua.LString(lib.name)); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("obj", toLua(t, l, obj))
	if err := l.DoString(script); err != nil {
		t.Fatalf("running the health check: %v", err)
	}
	result, ok := l.Get(-1).(*lua.LTable)
	if !ok {
		t.Fatalf("the health check returned %s, not a table", l.Get(-1).Type())
	}
	var h health
	for field, into := range map[string]*string{"status": &h.Status, "message": &h.Message} {
		v := result.RawGetString(field)
		s, ok := v.(lua.LString)
		if !ok {
			t.Fatalf("hs.%s is %s %q, not a string", field, v.Type(), v.String())
		}
		*into = string(s)
	}
	switch h.Status {
	case "Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown":
	default:
		t.Fatalf("hs.status %q is no Argo CD health status (Argo CD would show Unknown)", h.Status)
	}
	if h.Message == "" {
		t.Errorf("hs.message is empty for status %s", h.Status)
	}
	return h
}

// toLua converts a decoded Kubernetes object into Lua values as Argo CD's
// decodeValue does, including its quirk of turning a json.Number into a
// string. Any other Go type is a mistake in a fixture, not nil.
func toLua(t *testing.T, l *lua.LState, value any) lua.LValue {
	t.Helper()
	switch v := value.(type) {
	case nil:
		return lua.LNil
	case bool:
		return lua.LBool(v)
	case string:
		return lua.LString(v)
	case json.Number:
		return lua.LString(v)
	case int:
		return lua.LNumber(v)
	case int32:
		return lua.LNumber(v)
	case int64:
		return lua.LNumber(v)
	case float64:
		return lua.LNumber(v)
	case []any:
		list := l.CreateTable(len(v), 0)
		for _, item := range v {
			list.Append(toLua(t, l, item))
		}
		return list
	case map[string]any:
		table := l.CreateTable(0, len(v))
		for key, item := range v {
			table.RawSetH(lua.LString(key), toLua(t, l, item))
		}
		return table
	default:
		t.Fatalf("fixture value %#v of type %T: Argo CD never passes one", value, value)
		return lua.LNil
	}
}

// Hand-written fixtures: unstructured objects as the API server returns
// them.

func object(generation int64, status map[string]any) map[string]any {
	obj := map[string]any{
		"apiVersion": "iam.aws-auth-guardian.dev/v1alpha1",
		"kind":       "IAMIdentityMapping",
		"metadata": map[string]any{
			"name":              "platform-admins",
			"generation":        generation,
			"creationTimestamp": "2026-01-02T03:04:05Z",
		},
		"spec": map[string]any{
			"arn":      "arn:aws:iam::111122223333:role/platform-admins",
			"username": "admin:{{SessionName}}",
			"groups":   []any{"platform:admins"},
		},
	}
	if status != nil {
		obj["status"] = status
	}
	return obj
}

func observed(generation int64, conditions ...any) map[string]any {
	return map[string]any{
		"observedGeneration": generation,
		"conditions":         conditions,
	}
}

func condition(conditionType, conditionStatus, reason, message string) map[string]any {
	return map[string]any{
		"type":               conditionType,
		"status":             conditionStatus,
		"reason":             reason,
		"message":            message,
		"observedGeneration": int64(1),
		"lastTransitionTime": "2026-01-02T03:04:06Z",
	}
}

// notReady is what the operator writes for a mapping that cannot be
// applied: Ready=False and Stalled=True with the same reason and message.
func notReady(generation int64, reason, message string) map[string]any {
	return observed(generation,
		condition(iamv1alpha1.ConditionReady, "False", reason, message),
		condition(iamv1alpha1.ConditionStalled, "True", reason, message))
}

func deleting(obj map[string]any) map[string]any {
	md := obj["metadata"].(map[string]any)
	md["deletionTimestamp"] = "2026-01-02T03:05:00Z"
	md["finalizers"] = []any{iamv1alpha1.ProtectionFinalizer}
	return obj
}

// Fixtures built from the API types, so that a renamed field or condition
// type in api/v1alpha1 breaks this test instead of the health check in a
// cluster.

func typed(t *testing.T, generation, observedGeneration int64, conditions ...metav1.Condition) map[string]any {
	t.Helper()
	m := &iamv1alpha1.IAMIdentityMapping{
		TypeMeta: metav1.TypeMeta{APIVersion: iamv1alpha1.GroupVersion.String(), Kind: "IAMIdentityMapping"},
		ObjectMeta: metav1.ObjectMeta{
			Name:              "platform-admins",
			Generation:        generation,
			CreationTimestamp: metav1.NewTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)),
		},
		Spec: iamv1alpha1.IAMIdentityMappingSpec{
			ARN:      "arn:aws:iam::111122223333:role/team/platform-admins",
			Username: "admin:{{SessionName}}",
			Groups:   []iamv1alpha1.IdentityName{"platform:admins"},
		},
		Status: iamv1alpha1.IAMIdentityMappingStatus{
			ObservedGeneration: observedGeneration,
			CanonicalARN:       "arn:aws:iam::111122223333:role/platform-admins",
			Section:            "mapRoles",
		},
	}
	for _, c := range conditions {
		c.ObservedGeneration = observedGeneration
		meta.SetStatusCondition(&m.Status.Conditions, c)
	}
	u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(m)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestHealthCheck(t *testing.T) {
	t.Parallel()
	script := string(readConfig(t, "health.lua"))
	const conflictMessage = "IAMIdentityMapping zeta is older and maps the same identity (arn:aws:iam::111122223333:role/shared); this mapping is not rendered until that one is deleted or changed"

	for _, tc := range []struct {
		name        string
		obj         func(t *testing.T) map[string]any
		wantStatus  string
		wantMessage string
		// wantKstatus is what kstatus (kubectl wait, Flux, cli-utils)
		// computes for the same object; empty when kstatus cannot read it.
		// Where the two differ, the case says why.
		wantKstatus status.Status
	}{{
		// kstatus says Current for an object with neither
		// observedGeneration nor conditions: it cannot tell a resource
		// without status from one not yet observed. Argo CD can, since
		// this script knows the operator writes one.
		name:        "fresh object without status",
		obj:         func(*testing.T) map[string]any { return object(1, nil) },
		wantStatus:  "Progressing",
		wantMessage: "Waiting for the operator to observe generation 1",
		wantKstatus: status.CurrentStatus,
	}, {
		name: "status about an older spec",
		obj: func(*testing.T) map[string]any {
			return object(3, observed(2, condition("Ready", "True", "Applied", "The entry is in kube-system/aws-auth mapRoles")))
		},
		wantStatus:  "Progressing",
		wantMessage: "Waiting for the operator to observe generation 3",
		wantKstatus: status.InProgressStatus,
	}, {
		// Argo CD passes a json.Number as a string; the script compares
		// numbers, not strings ("10" < "9").
		name: "generations as json.Number",
		obj: func(*testing.T) map[string]any {
			obj := object(0, observed(0))
			obj["metadata"].(map[string]any)["generation"] = json.Number("10")
			obj["status"].(map[string]any)["observedGeneration"] = json.Number("9")
			return obj
		},
		wantStatus:  "Progressing",
		wantMessage: "Waiting for the operator to observe generation 10",
	}, {
		name: "Ready True, Applied",
		obj: func(*testing.T) map[string]any {
			return object(1, observed(1, condition("Ready", "True", "Applied", "The entry is in kube-system/aws-auth mapRoles")))
		},
		wantStatus:  "Healthy",
		wantMessage: "The entry is in kube-system/aws-auth mapRoles",
		wantKstatus: status.CurrentStatus,
	}, {
		name: "Ready False, Invalid, Stalled",
		obj: func(*testing.T) map[string]any {
			return object(2, notReady(2, "Invalid", "username: the only templates are {{AccountID}}, {{SessionName}}"))
		},
		wantStatus:  "Degraded",
		wantMessage: "Invalid: username: the only templates are",
		wantKstatus: status.FailedStatus,
	}, {
		name:        "Conflict",
		obj:         func(*testing.T) map[string]any { return object(1, notReady(1, "Conflict", conflictMessage)) },
		wantStatus:  "Degraded",
		wantMessage: "Conflict: IAMIdentityMapping zeta is older",
		wantKstatus: status.FailedStatus,
	}, {
		name: "Blocked",
		obj: func(*testing.T) map[string]any {
			return object(1, notReady(1, "Blocked", "aws-auth was left as it is: the render drops every entry that maps system:nodes"))
		},
		wantStatus:  "Degraded",
		wantMessage: "Blocked: aws-auth was left as it is",
		wantKstatus: status.FailedStatus,
	}, {
		name: "RenderFailed",
		obj: func(*testing.T) map[string]any {
			return object(1, notReady(1, "RenderFailed", "aws-auth was left as it is: the render is 1100000 bytes, over the 1048576 bytes a ConfigMap holds"))
		},
		wantStatus:  "Degraded",
		wantMessage: "RenderFailed: aws-auth was left as it is",
		wantKstatus: status.FailedStatus,
	}, {
		name: "TooLarge, without Stalled",
		obj: func(*testing.T) map[string]any {
			return object(1, observed(1, condition("Ready", "False", "TooLarge", "The entry is 4321 bytes and does not fit")))
		},
		wantStatus:  "Degraded",
		wantMessage: "TooLarge: The entry is 4321 bytes",
		wantKstatus: status.InProgressStatus,
	}, {
		// kstatus reads Ready=False without Stalled as "still working";
		// these reasons never resolve by waiting, so Argo CD says so.
		name: "Ready False, Conflict, without Stalled",
		obj: func(*testing.T) map[string]any {
			return object(1, observed(1, condition("Ready", "False", "Conflict", conflictMessage)))
		},
		wantStatus:  "Degraded",
		wantMessage: "Conflict: IAMIdentityMapping zeta is older",
		wantKstatus: status.InProgressStatus,
	}, {
		name: "Ready False with a reason this check does not know",
		obj: func(*testing.T) map[string]any {
			return object(1, observed(1, condition("Ready", "False", "Replacing", "aws-auth is being replaced")))
		},
		wantStatus:  "Progressing",
		wantMessage: "Replacing: aws-auth is being replaced",
		wantKstatus: status.InProgressStatus,
	}, {
		name: "Reconciling True",
		obj: func(*testing.T) map[string]any {
			return object(1, observed(1,
				condition("Reconciling", "True", "Progressing", "Replacing aws-auth"),
				condition("Ready", "Unknown", "Progressing", "Replacing aws-auth")))
		},
		wantStatus:  "Progressing",
		wantMessage: "Replacing aws-auth",
		wantKstatus: status.InProgressStatus,
	}, {
		// Work in flight wins over a Ready left from before, as in kstatus.
		name: "Reconciling True while Ready True",
		obj: func(*testing.T) map[string]any {
			return object(1, observed(1,
				condition("Ready", "True", "Applied", "The entry is in kube-system/aws-auth mapRoles"),
				condition("Reconciling", "True", "Progressing", "Replacing aws-auth")))
		},
		wantStatus:  "Progressing",
		wantMessage: "Replacing aws-auth",
		wantKstatus: status.InProgressStatus,
	}, {
		name: "Ready Unknown",
		obj: func(*testing.T) map[string]any {
			return object(1, observed(1, condition("Ready", "Unknown", "Pending", "Waiting for the cache to sync")))
		},
		wantStatus:  "Progressing",
		wantMessage: "Waiting for the cache to sync",
		wantKstatus: status.InProgressStatus,
	}, {
		// kstatus falls back to Current without a Ready condition.
		name:        "observed, but no Ready condition",
		obj:         func(*testing.T) map[string]any { return object(1, observed(1)) },
		wantStatus:  "Progressing",
		wantMessage: "Waiting for the operator to apply the mapping",
		wantKstatus: status.CurrentStatus,
	}, {
		name: "being deleted",
		obj: func(*testing.T) map[string]any {
			return deleting(object(1, observed(1, condition("Ready", "True", "Applied", "The entry is in kube-system/aws-auth mapRoles"))))
		},
		wantStatus:  "Progressing",
		wantMessage: "Waiting for the operator to remove the entry",
		wantKstatus: status.TerminatingStatus,
	}, {
		name: "deletion held by a guard",
		obj: func(*testing.T) map[string]any {
			return deleting(object(1, notReady(1, "Blocked", "The deletion is held, aws-auth was left as it is: it would drop every system:nodes entry")))
		},
		wantStatus:  "Degraded",
		wantMessage: "Blocked: The deletion is held",
		wantKstatus: status.TerminatingStatus,
	}, {
		name: "from the API types: Applied",
		obj: func(t *testing.T) map[string]any {
			return typed(t, 2, 2, metav1.Condition{
				Type: iamv1alpha1.ConditionReady, Status: metav1.ConditionTrue,
				Reason: iamv1alpha1.ReasonApplied, Message: "The entry is in kube-system/aws-auth mapRoles",
			})
		},
		wantStatus:  "Healthy",
		wantMessage: "Applied: The entry is in kube-system/aws-auth mapRoles",
		wantKstatus: status.CurrentStatus,
	}, {
		name: "from the API types: Conflict, Stalled",
		obj: func(t *testing.T) map[string]any {
			return typed(t, 1, 1,
				metav1.Condition{Type: iamv1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: iamv1alpha1.ReasonConflict, Message: conflictMessage},
				metav1.Condition{Type: iamv1alpha1.ConditionStalled, Status: metav1.ConditionTrue, Reason: iamv1alpha1.ReasonConflict, Message: conflictMessage})
		},
		wantStatus:  "Degraded",
		wantMessage: "Conflict: IAMIdentityMapping zeta is older",
		wantKstatus: status.FailedStatus,
	}, {
		name: "from the API types: Blocked without Stalled",
		obj: func(t *testing.T) map[string]any {
			return typed(t, 1, 1, metav1.Condition{
				Type: iamv1alpha1.ConditionReady, Status: metav1.ConditionFalse,
				Reason: iamv1alpha1.ReasonBlocked, Message: "aws-auth was left as it is",
			})
		},
		wantStatus:  "Degraded",
		wantMessage: "Blocked: aws-auth was left as it is",
		wantKstatus: status.InProgressStatus,
	}, {
		// observedGeneration is omitempty: 0 is never written, so it is
		// missing. kstatus skips its generation check when the field is
		// missing and reads Ready instead.
		name: "from the API types: never observed",
		obj: func(t *testing.T) map[string]any {
			return typed(t, 1, 0, metav1.Condition{
				Type: iamv1alpha1.ConditionReady, Status: metav1.ConditionTrue,
				Reason: iamv1alpha1.ReasonApplied, Message: "The entry is in kube-system/aws-auth mapRoles",
			})
		},
		wantStatus:  "Progressing",
		wantMessage: "Waiting for the operator to observe generation 1",
		wantKstatus: status.CurrentStatus,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			obj := tc.obj(t)
			got := runHealth(t, script, obj)
			if got.Status != tc.wantStatus || !strings.Contains(got.Message, tc.wantMessage) {
				t.Errorf("health = %s %q, want %s with a message containing %q", got.Status, got.Message, tc.wantStatus, tc.wantMessage)
			}
			if tc.wantKstatus == "" {
				return
			}
			res, err := status.Compute(&unstructured.Unstructured{Object: obj})
			if err != nil {
				t.Fatalf("kstatus: %v", err)
			}
			if res.Status != tc.wantKstatus {
				t.Errorf("kstatus = %s (%s), want %s", res.Status, res.Message, tc.wantKstatus)
			}
		})
	}
}

// TestArgoCDConfigMapPatchEmbedsHealthLua keeps the copy in the argocd-cm
// patch byte for byte equal to health.lua, the file the tests run.
func TestArgoCDConfigMapPatchEmbedsHealthLua(t *testing.T) {
	t.Parallel()
	var cm corev1.ConfigMap
	if err := yaml.UnmarshalStrict(readConfig(t, "argocd-cm-patch.yaml"), &cm); err != nil {
		t.Fatal(err)
	}
	if cm.APIVersion != "v1" || cm.Kind != "ConfigMap" || cm.Namespace != "argocd" || cm.Name != "argocd-cm" {
		t.Errorf("the patch is for %s %s %s/%s, want v1 ConfigMap argocd/argocd-cm", cm.APIVersion, cm.Kind, cm.Namespace, cm.Name)
	}
	if len(cm.Data) != 1 {
		t.Errorf("the patch sets %d keys, want only %s", len(cm.Data), healthKey)
	}
	embedded, ok := cm.Data[healthKey]
	if !ok {
		t.Fatalf("the patch has no key %s", healthKey)
	}
	if want := string(readConfig(t, "health.lua")); embedded != want {
		t.Errorf("the Lua in argocd-cm-patch.yaml differs from health.lua; re-embed it (indent every line of health.lua by four spaces under %s)", healthKey)
	}
}

// TestArgoCDApplicationSyncsOnlyMappings checks the example Application:
// automated sync with prune of the mappings directory, and nothing that
// would delete the mappings, or aws-auth, with the Application.
func TestArgoCDApplicationSyncsOnlyMappings(t *testing.T) {
	t.Parallel()
	var app struct {
		APIVersion string            `json:"apiVersion"`
		Kind       string            `json:"kind"`
		Metadata   metav1.ObjectMeta `json:"metadata"`
		Spec       struct {
			Project string `json:"project"`
			Source  struct {
				RepoURL        string `json:"repoURL"`
				TargetRevision string `json:"targetRevision"`
				Path           string `json:"path"`
			} `json:"source"`
			Destination struct {
				Server    string `json:"server"`
				Namespace string `json:"namespace"`
			} `json:"destination"`
			SyncPolicy struct {
				Automated struct {
					Prune    bool `json:"prune"`
					SelfHeal bool `json:"selfHeal"`
				} `json:"automated"`
				SyncOptions []string `json:"syncOptions"`
			} `json:"syncPolicy"`
		} `json:"spec"`
	}
	data := readConfig(t, "application.yaml")
	if err := yaml.UnmarshalStrict(data, &app); err != nil {
		t.Fatal(err)
	}
	if app.APIVersion != "argoproj.io/v1alpha1" || app.Kind != "Application" || app.Metadata.Namespace != "argocd" {
		t.Errorf("got %s %s in namespace %q, want an argoproj.io/v1alpha1 Application in argocd", app.APIVersion, app.Kind, app.Metadata.Namespace)
	}
	if app.Spec.Source.Path != "mappings" || app.Spec.Source.RepoURL == "" {
		t.Errorf("source %+v, want path mappings in a repository", app.Spec.Source)
	}
	if !app.Spec.SyncPolicy.Automated.Prune {
		t.Error("automated sync does not prune: a mapping removed from Git would stay in aws-auth")
	}
	if len(app.Metadata.Finalizers) != 0 {
		t.Errorf("finalizers %v: deleting the Application must not delete the mappings", app.Metadata.Finalizers)
	}
	for _, option := range app.Spec.SyncPolicy.SyncOptions {
		if strings.HasPrefix(option, "Replace=") || strings.HasPrefix(option, "Force=") || strings.HasPrefix(option, "PruneLast=") {
			t.Errorf("sync option %s: see the comments in application.yaml", option)
		}
	}
	// The comment is the point of the example: keep the why.
	for _, why := range []string{"aws-auth", "argoproj/argo-cd#5394", "Replace=true", "Force=true", "IgnoreExtraneous"} {
		if !strings.Contains(string(data), why) {
			t.Errorf("application.yaml no longer explains %q", why)
		}
	}
}
