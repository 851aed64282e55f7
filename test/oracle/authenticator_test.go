package oracle

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/sirupsen/logrus"
	authenticationv1beta1 "k8s.io/api/authentication/v1beta1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/aws-iam-authenticator/pkg/config"
	"sigs.k8s.io/aws-iam-authenticator/pkg/mapper"
	"sigs.k8s.io/aws-iam-authenticator/pkg/server"
	"sigs.k8s.io/aws-iam-authenticator/pkg/token"
)

// This file runs the authenticator's own webhook server in-process: the
// TokenReview handler built by server.New, its token verifier, the
// EKSConfigMap mapper EKS uses (fed over a watch, as from the API server)
// and its template expansion. Only the network is faked: STS
// GetCallerIdentity is answered in-process (fakeSTS, installed as
// http.DefaultTransport, which the verifier's client uses), the aws-auth
// watch and EC2 DescribeInstances by loopback servers, and everything
// else is refused.

const (
	clusterID = "oracle-cluster"
	// The probe role lets the harness see which aws-auth the mapper holds;
	// its account appears in no test's data (newAuthenticator checks).
	probeAccount = "000000000000"
	probeRole    = "arn:aws:iam::" + probeAccount + ":role/oracle-harness-probe"
	// What the fake EC2 answers for every instance: the attacker picks
	// the instance ID in the session name, EC2 picks the name.
	ec2PrivateDNSName = "ip-10-0-0-7.ec2.internal"
)

// stsSessionName is what STS accepts as RoleSessionName (AssumeRole API
// reference: length 2-64, pattern [\w+=,.@-]*).
var stsSessionName = regexp.MustCompile(`^[\w+=,.@-]{2,64}$`)

// callerIdentity is what STS answers for one set of credentials.
type callerIdentity struct {
	Account, Arn, UserID string
}

// fakeSTS answers GetCallerIdentity for the credentials the harness
// handed out and refuses every other request, so that nothing the
// authenticator does through http.DefaultTransport leaves the process.
type fakeSTS struct {
	// loopback carries requests to the harness's own servers: client-go
	// also uses http.DefaultTransport for a plain-HTTP API server.
	loopback http.RoundTripper
	mu       sync.Mutex
	byKeyID  map[string]callerIdentity
	refused  []string
}

var stsHost = regexp.MustCompile(`^sts(\.[a-z0-9-]+)?\.amazonaws\.com$`)

func (f *fakeSTS) RoundTrip(r *http.Request) (*http.Response, error) {
	if ip := net.ParseIP(r.URL.Hostname()); ip != nil && ip.IsLoopback() {
		return f.loopback.RoundTrip(r)
	}
	q := r.URL.Query()
	keyID, _, _ := strings.Cut(q.Get("X-Amz-Credential"), "/")
	f.mu.Lock()
	id, known := f.byKeyID[keyID]
	f.mu.Unlock()
	switch {
	case r.URL.Scheme != "https" || !stsHost.MatchString(r.URL.Host):
		return f.refuse(r)
	case r.Method != http.MethodGet || q.Get("Action") != "GetCallerIdentity" || q.Get("X-Amz-Signature") == "":
		return f.refuse(r)
	case r.Header.Get("x-k8s-aws-id") != clusterID:
		return f.refuse(r)
	case !known:
		// As STS answers a signature made with credentials it does not know.
		return stsResponse(r, http.StatusForbidden, `{"Error":{"Code":"InvalidClientTokenId","Message":"The security token included in the request is invalid.","Type":"Sender"}}`), nil
	}
	var body struct {
		GetCallerIdentityResponse struct {
			GetCallerIdentityResult callerIdentity
		}
	}
	body.GetCallerIdentityResponse.GetCallerIdentityResult = id
	b, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	return stsResponse(r, http.StatusOK, string(b)), nil
}

func (f *fakeSTS) refuse(r *http.Request) (*http.Response, error) {
	f.mu.Lock()
	f.refused = append(f.refused, r.Method+" "+r.URL.Redacted())
	f.mu.Unlock()
	return nil, fmt.Errorf("oracle harness: no network for %s %s", r.Method, r.URL.Host)
}

func (f *fakeSTS) refusedRequests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.refused...)
}

func stsResponse(r *http.Request, code int, body string) *http.Response {
	return &http.Response{
		StatusCode: code,
		Status:     http.StatusText(code),
		Proto:      "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{"Content-Type": {"application/json"}},
		Body:          io.NopCloser(strings.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       r,
	}
}

// denials records why the authenticator denied a review: it writes only
// "authenticated: false" to the API server and logs the reason, with the
// request's RemoteAddr as "client", which the harness makes unique.
type denials struct {
	mu       sync.Mutex
	byClient map[string]string
}

func (d *denials) Levels() []logrus.Level {
	return []logrus.Level{logrus.WarnLevel, logrus.ErrorLevel}
}

func (d *denials) Fire(e *logrus.Entry) error {
	client, _ := e.Data["client"].(string)
	if client == "" {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.byClient[client] = fmt.Sprintf("%s: %v", e.Message, e.Data[logrus.ErrorKey])
	return nil
}

func (d *denials) take(client string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	reason := d.byClient[client]
	delete(d.byClient, client)
	return reason
}

var (
	theSTS     = &fakeSTS{byKeyID: map[string]callerIdentity{}, loopback: loopbackTransport()}
	theDenials = &denials{byClient: map[string]string{}}
	serial     atomic.Int64
)

// awsAuthWatch plays the API server for the mapper's watch on
// kube-system/aws-auth: it streams the events the harness sends.
type awsAuthWatch struct {
	events chan corev1.ConfigMap
	done   chan struct{}
}

func (a *awsAuthWatch) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/api/v1/namespaces/kube-system/configmaps" || r.URL.Query().Get("watch") != "true" {
		http.Error(w, "the harness serves only the aws-auth watch", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	w.(http.Flusher).Flush()
	enc := json.NewEncoder(w)
	kind := string(watch.Added)
	for {
		select {
		case cm := <-a.events:
			raw, err := json.Marshal(cm)
			if err != nil {
				return
			}
			if err := enc.Encode(metav1.WatchEvent{Type: kind, Object: runtime.RawExtension{Raw: raw}}); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			kind = string(watch.Modified)
		case <-a.done:
			return
		case <-r.Context().Done():
			return
		}
	}
}

// authenticator is one running webhook with one aws-auth loaded.
type authenticator struct {
	handler http.Handler
}

// newAuthenticator starts the authenticator's webhook server reading data
// as kube-system/aws-auth and returns once the mapper serves it.
func newAuthenticator(t *testing.T, data map[string]string) *authenticator {
	t.Helper()
	for k, v := range data {
		if strings.Contains(v, probeAccount) {
			t.Fatalf("the data's %s names the harness's probe account %s", k, probeAccount)
		}
	}
	feed := &awsAuthWatch{events: make(chan corev1.ConfigMap), done: make(chan struct{})}
	api := httptest.NewServer(feed)
	ctx, cancel := context.WithCancel(context.Background())
	dir := t.TempDir()
	srv := server.New(ctx, config.Config{
		PartitionID:            "aws",
		ClusterID:              clusterID,
		Address:                "127.0.0.1", // New opens a TLS listener; loopback, any port
		Hostname:               "127.0.0.1",
		StateDir:               dir,
		GenerateKubeconfigPath: filepath.Join(dir, "kubeconfig.yaml"),
		Master:                 api.URL,
		BackendMode:            []string{mapper.ModeEKSConfigMap},
		// The defaults of aws-iam-authenticator server.
		EC2DescribeInstancesQps:   15,
		EC2DescribeInstancesBurst: 5,
	})
	t.Cleanup(func() {
		srv.Close()
		cancel()
		close(feed.done)
		api.Close()
	})
	a := &authenticator{handler: internalHandler(t, srv)}

	// Load a probe-only aws-auth, then the real one: once the probe is no
	// longer served the mapper holds data (saveMap replaces the store).
	send := func(d map[string]string) {
		select {
		case feed.events <- corev1.ConfigMap{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
			ObjectMeta: metav1.ObjectMeta{Name: "aws-auth", Namespace: "kube-system"},
			Data:       d,
		}:
		case <-time.After(10 * time.Second):
			t.Fatal("the authenticator's mapper did not watch aws-auth within 10s")
		}
	}
	send(map[string]string{"mapRoles": "- rolearn: " + probeRole + "\n  username: probe\n"})
	a.waitProbe(t, true)
	send(data)
	a.waitProbe(t, false)
	return a
}

func (a *authenticator) waitProbe(t *testing.T, served bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, _, err := a.identity(t, probeRole, "probe-session")
		if (err == nil) == served {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the authenticator did not load aws-auth within 10s (probe served=%v wanted, last error: %v)", !served, err)
		}
		time.Sleep(2 * time.Millisecond) // polling the mapper's goroutine, nothing to wait on
	}
}

// internalHandler is the handler server.New built (routes /authenticate,
// /metrics, /healthz). Server.Run would serve it, but Run also opens a
// health port on all interfaces; the harness calls the handler directly.
func internalHandler(t *testing.T, srv *server.Server) http.Handler {
	t.Helper()
	f := reflect.ValueOf(srv).Elem().FieldByName("internalHandler")
	if !f.IsValid() {
		t.Fatal("server.Server has no field internalHandler: aws-iam-authenticator changed, update the harness")
	}
	h, ok := reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem().Interface().(http.Handler)
	if !ok || h == nil {
		t.Fatalf("server.Server.internalHandler is a %s, not a running http.Handler", f.Type())
	}
	return h
}

// identity assumes roleARN with the session name session, as an attacker
// would, and returns what the authenticator tells the API server about the
// token: the username and groups, or why it denied it.
func (a *authenticator) identity(t *testing.T, roleARN, session string) (string, []string, error) {
	t.Helper()
	tok, err := assumeRole(roleARN, session)
	if err != nil {
		return "", nil, err
	}
	review, err := json.Marshal(authenticationv1beta1.TokenReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "authentication.k8s.io/v1beta1", Kind: "TokenReview"},
		Spec:     authenticationv1beta1.TokenReviewSpec{Token: tok},
	})
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPost, "https://127.0.0.1/authenticate", strings.NewReader(string(review)))
	req.RemoteAddr = fmt.Sprintf("oracle-%d", serial.Add(1))
	rec := httptest.NewRecorder()
	a.handler.ServeHTTP(rec, req)

	var got authenticationv1beta1.TokenReview
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatalf("the authenticator answered %d with no TokenReview: %v\n%s", rec.Code, err, rec.Body)
	}
	reason := theDenials.take(req.RemoteAddr)
	if !got.Status.Authenticated {
		return "", nil, fmt.Errorf("denied (%d): %s", rec.Code, reason)
	}
	if rec.Code != http.StatusOK {
		t.Fatalf("the authenticator authenticated with status %d", rec.Code)
	}
	return got.Status.User.Username, got.Status.User.Groups, nil
}

// assumeRole hands out fresh credentials for roleARN and session, teaches
// the fake STS who they belong to, and makes a token with the
// authenticator's own generator (a presigned GetCallerIdentity URL).
func assumeRole(roleARN, session string) (string, error) {
	if !stsSessionName.MatchString(session) {
		return "", fmt.Errorf("STS refuses RoleSessionName %q: it must match [\\w+=,.@-]* and be 2 to 64 characters", session)
	}
	prefix, name, ok := strings.Cut(roleARN, ":role/")
	account := strings.TrimPrefix(prefix, "arn:aws:iam::")
	if !ok || account == prefix {
		return "", fmt.Errorf("not a role ARN in the aws partition: %q", roleARN)
	}
	name = name[strings.LastIndex(name, "/")+1:] // the assumed-role ARN drops the path
	n := serial.Add(1)
	keyID := fmt.Sprintf("ASIAORACLE%010d", n)
	theSTS.mu.Lock()
	theSTS.byKeyID[keyID] = callerIdentity{
		Account: account,
		Arn:     "arn:aws:sts::" + account + ":assumed-role/" + name + "/" + session,
		UserID:  fmt.Sprintf("AROAORACLE%011d", n) + ":" + session,
	}
	theSTS.mu.Unlock()

	gen, err := token.NewGenerator(false, false)
	if err != nil {
		return "", err
	}
	client := sts.New(sts.Options{
		Region:      "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider(keyID, "oracle-secret", "oracle-session-token"),
		HTTPClient:  refuseAll{},
	})
	tok, err := gen.GetWithSTS(clusterID, client)
	if err != nil {
		return "", err
	}
	return tok.Token, nil
}

// refuseAll is the STS client's HTTP client: presigning needs none, and
// nothing may be sent.
type refuseAll struct{}

func (refuseAll) Do(r *http.Request) (*http.Response, error) {
	return nil, fmt.Errorf("oracle harness: the token generator tried to send %s", r.URL.Host)
}

func loopbackTransport() http.RoundTripper {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	return t
}

// fakeEC2 answers DescribeInstances with ec2PrivateDNSName for every
// instance asked about.
func fakeEC2() *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil || r.Form.Get("Action") != "DescribeInstances" {
			http.Error(w, "<Response><Errors><Error><Code>InvalidAction</Code></Error></Errors></Response>", http.StatusBadRequest)
			return
		}
		var items strings.Builder
		for k, v := range r.Form {
			if strings.HasPrefix(k, "InstanceId.") {
				fmt.Fprintf(&items, "<item><instanceId>%s</instanceId><privateDnsName>%s</privateDnsName></item>", xmlText(v[0]), ec2PrivateDNSName)
			}
		}
		w.Header().Set("Content-Type", "text/xml")
		fmt.Fprintf(w, `<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>oracle</requestId><reservationSet><item><reservationId>r-1</reservationId><instancesSet>%s</instancesSet></item></reservationSet></DescribeInstancesResponse>`, items.String())
	}))
}

func xmlText(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}
