// Package awsfake is an in-process fake of the parts of the Amazon EKS and
// IAM APIs that drive EKS access entries. It speaks the services' wire
// protocols (EKS: REST-JSON, IAM: the query protocol with XML answers), so
// tests exercise the real AWS SDK for Go v2 clients pointed at it with
// BaseEndpoint or AWS_ENDPOINT_URL_EKS and AWS_ENDPOINT_URL_IAM, not a Go
// interface standing in for them.
//
// One Server answers both services on one loopback address: IAM requests
// are the form-encoded POSTs to "/", everything else is routed as EKS. It
// enforces the rules EKS documents for access entries with the error codes
// the SDK maps to typed errors, can misbehave on purpose (see Fault),
// counts calls (see Calls) and those in flight (see InFlight), and lets a
// test seed, inspect and change its state directly in Go.
//
// Signatures are not verified, but a request without an Authorization
// header is refused, as AWS refuses it.
package awsfake

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Defaults of a new Server.
const (
	DefaultAccountID = "111122223333"
	DefaultRegion    = "us-west-2"
	// DefaultMaxAccessEntries is the "Access entries per cluster" quota, 3,000
	// and not adjustable
	// (https://docs.aws.amazon.com/general/latest/gr/eks.html#limits_eks).
	DefaultMaxAccessEntries = 3000
)

// Option configures a Server.
type Option func(*config)

type config struct {
	accountID  string
	region     string
	maxEntries int
	seed       uint64
	now        func() time.Time
	addr       string
}

// WithAccountID sets the account the fake's clusters and IAM belong to.
func WithAccountID(id string) Option { return func(c *config) { c.accountID = id } }

// WithRegion sets the region in the ARNs the fake makes.
func WithRegion(region string) Option { return func(c *config) { c.region = region } }

// WithMaxAccessEntries lowers (or raises) the per-cluster quota, so that a
// test can reach it without creating 3,000 entries.
func WithMaxAccessEntries(n int) Option { return func(c *config) { c.maxEntries = n } }

// WithSeed seeds the random draws of the fault injection, so that the same
// sequence of calls meets the same faults. The default seed is 1: runs are
// reproducible unless a test picks another seed.
func WithSeed(seed uint64) Option { return func(c *config) { c.seed = seed } }

// WithClock replaces the clock behind timestamps and the eventual
// consistency delay, so that a test can step time instead of sleeping.
// Injected latency still runs on the real clock.
func WithClock(now func() time.Time) Option { return func(c *config) { c.now = now } }

// Clock is a clock a test steps by hand, for WithClock (and any other
// code that takes a func() time.Time). It starts at a fixed time.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock is a Clock at 2026-01-02 03:04:05 UTC.
func NewClock() *Clock { return &Clock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

// Now is the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock on by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// WithAddress makes the server listen on a fixed loopback address, such as
// "127.0.0.1:4566", instead of a free port. New panics if the host is not a
// loopback address: the fake accepts any credentials.
func WithAddress(addr string) Option { return func(c *config) { c.addr = addr } }

// Server is the fake. Its methods are safe for concurrent use.
type Server struct {
	cfg config
	srv *http.Server
	url string
	// done is closed by Close, releasing requests held by a hang fault.
	done      chan struct{}
	closeOnce sync.Once

	mu         sync.Mutex
	clusters   map[string]*cluster
	principals map[string]principal

	faults faults
	calls  counter

	// observers are called under mu after every call that may have
	// changed a cluster (see Observe).
	observers map[string]func([]AccessEntry)
}

// New starts a fake on a free port of 127.0.0.1. Like httptest.NewServer it
// panics if it cannot listen; stop it with Close.
func New(opts ...Option) *Server {
	cfg := config{
		accountID:  DefaultAccountID,
		region:     DefaultRegion,
		maxEntries: DefaultMaxAccessEntries,
		seed:       1,
		now:        time.Now,
		addr:       "127.0.0.1:0",
	}
	for _, o := range opts {
		o(&cfg)
	}
	host, _, err := net.SplitHostPort(cfg.addr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		panic("awsfake: refusing to listen on non-loopback address " + cfg.addr)
	}
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		panic("awsfake: " + err.Error())
	}
	s := &Server{
		cfg:        cfg,
		url:        "http://" + ln.Addr().String(),
		done:       make(chan struct{}),
		clusters:   map[string]*cluster{},
		principals: map[string]principal{},
	}
	s.faults.init(cfg.seed)
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	return s
}

// URL is the base URL to hand to the SDK clients, for both EKS and IAM.
func (s *Server) URL() string { return s.url }

// Close releases requests held by a hang fault and stops the server,
// waiting at most a few seconds for requests in flight.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		close(s.done)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.srv.Shutdown(ctx); err != nil {
			_ = s.srv.Close()
		}
	})
}

// operation is one API operation: its name, which the counters and faults
// use, its protocol, and its handler, which runs under the state lock.
type operation struct {
	name  string
	iam   bool
	serve func(*request) (any, *APIError)
}

// request is what a handler gets: the HTTP request, the path labels of its
// route, and its body, read once by the router.
type request struct {
	req    *http.Request
	labels map[string]string
	body   []byte
}

func (r *request) label(name string) string { return r.labels[name] }

// ServeHTTP answers one EKS or IAM request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	op, req, routeErr := s.route(r)
	reply := replier{w: w, iam: op.iam, action: op.name, requestID: newID()}
	if r.Header.Get("Authorization") == "" {
		refusal := missingAuth(op.iam)
		s.calls.add(op.name, refusal.Code)
		reply.error(refusal)
		return
	}
	if routeErr != nil {
		s.calls.add(op.name, routeErr.Code)
		reply.error(routeErr)
		return
	}
	// From here on the call may be held by a fault: InFlight shows it.
	s.calls.begin(op.name)
	defer s.calls.end(op.name)

	f, injected := s.faults.draw(op.name, op.iam)
	if f.Hang || f.Latency > 0 {
		if !s.wait(r.Context(), f) {
			s.calls.add(op.name, OutcomeNoResponse)
			// Drop the connection rather than return: a handler that
			// returns without writing sends an empty 200, which the SDK
			// would take for a success.
			panic(http.ErrAbortHandler)
		}
	}
	if injected != nil {
		s.calls.add(op.name, injected.Code)
		reply.error(injected)
		return
	}

	out, apiErr := s.serve(op, req)
	if apiErr != nil {
		s.calls.add(op.name, apiErr.Code)
		reply.error(apiErr)
		return
	}
	s.calls.add(op.name, OutcomeOK)
	reply.ok(out)
}

// serve runs a handler under the state lock, so that each operation sees
// and leaves a consistent state.
func (s *Server) serve(op operation, req *request) (any, *APIError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out, err := op.serve(req)
	if err == nil && writes(op.name) {
		s.notify()
	}
	return out, err
}

// writes says whether an operation may change the state: every one but
// the reads, which are named Describe*, List* and Get*.
func writes(op string) bool {
	for _, read := range []string{"Describe", "List", "Get"} {
		if strings.HasPrefix(op, read) {
			return false
		}
	}
	return true
}

// Observe calls check with the access entries of a cluster, as Snapshot
// returns them, after every API call that succeeded and may have changed
// them, while the state is still locked: check sees every state the API
// went through, in order, which a poll of Snapshot can miss. It is called
// once at once with the current entries. check must return quickly and
// must not call the Server. The seeding methods (SeedEntry, DeleteEntry,
// ModifyEntry) do not call it. A nil check stops observing the cluster.
func (s *Server) Observe(clusterName string, check func([]AccessEntry)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.cluster(clusterName); err != nil {
		return err
	}
	if check == nil {
		delete(s.observers, clusterName)
		return nil
	}
	if s.observers == nil {
		s.observers = map[string]func([]AccessEntry){}
	}
	s.observers[clusterName] = check
	check(s.snapshot(s.clusters[clusterName]))
	return nil
}

// notify calls the observers; mu is held.
func (s *Server) notify() {
	for name, check := range s.observers {
		if c, ok := s.clusters[name]; ok {
			check(s.snapshot(c))
		}
	}
}

// wait holds a request for the fault's latency, or until the client gives
// up or the server closes when the fault hangs. It reports whether the
// request should still be answered.
func (s *Server) wait(ctx context.Context, f Fault) bool {
	var timeout <-chan time.Time
	if !f.Hang {
		t := time.NewTimer(f.Latency)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-timeout:
		return true
	case <-ctx.Done():
	case <-s.done:
	}
	return false
}

// missingAuth is the answer AWS gives an unsigned request.
func missingAuth(iam bool) *APIError {
	if iam {
		return newError(http.StatusForbidden, "MissingAuthenticationToken", "Request is missing Authentication Token")
	}
	return newError(http.StatusForbidden, "MissingAuthenticationTokenException", "Missing Authentication Token")
}

// route finds the operation of a request. IAM requests are told apart by
// their form-encoded POST to "/"; an unknown route still yields an
// operation, named "Unknown", so that it is counted and answered in the
// right protocol.
func (s *Server) route(r *http.Request) (operation, *request, *APIError) {
	body, err := readBody(r)
	if err != nil {
		return operation{name: "Unknown"}, nil, invalidParameter("reading the request body: %v", err)
	}
	req := &request{req: r, body: body}
	if r.URL.Path == "/" && r.Method == http.MethodPost &&
		strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		return s.routeIAM(req)
	}
	return s.routeEKS(req)
}

// newID returns a random identifier in the UUID layout AWS uses for request
// IDs and the suffix of access entry ARNs. It draws from crypto/rand, not
// the seeded source, so that IDs do not shift the fault sequence.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// readBody reads the whole body, bounded: the fake's requests are small.
func readBody(r *http.Request) ([]byte, error) {
	return io.ReadAll(io.LimitReader(r.Body, 1<<20))
}
