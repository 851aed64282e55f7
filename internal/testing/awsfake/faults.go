package awsfake

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"time"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

// AllOperations is the operation name that makes SetFault set the fault of
// every operation that has no fault of its own.
const AllOperations = "*"

// Fault is how the fake misbehaves for an operation. The zero Fault is good
// behaviour.
type Fault struct {
	// ThrottleRate is the fraction of calls refused as throttled: EKS
	// answers ThrottlingException (429), IAM Throttling. The SDK's standard
	// retryer retries both.
	ThrottleRate float64
	// ServerErrorRate is the fraction of calls failed by the service: EKS
	// answers ServerException (500), IAM ServiceFailure (500).
	ServerErrorRate float64
	// Latency delays every answer by this long, refusals included.
	Latency time.Duration
	// Hang holds every call unanswered until the client gives up or the
	// server closes; the connection is then dropped.
	Hang bool
}

// faults holds the faults set per operation, the eventual consistency
// delay, and the seeded source the rates draw from. It has its own lock so
// that a test can change faults while calls are in flight.
type faults struct {
	mu         sync.Mutex
	byOp       map[string]Fault
	visibility time.Duration
	rng        *rand.Rand
}

func (f *faults) init(seed uint64) {
	f.byOp = map[string]Fault{}
	f.rng = rand.New(rand.NewPCG(seed, seed))
}

// SetFault sets the fault of an operation, named as the SDK names it
// ("ListAccessEntries", "GetRole"), or of AllOperations. A fault set for an
// operation replaces, for that operation, the one set for AllOperations;
// the zero Fault removes it. It panics on rates outside [0, 1] or adding up
// to more than 1, which is a mistake in the test.
func (s *Server) SetFault(operation string, f Fault) {
	if f.ThrottleRate < 0 || f.ServerErrorRate < 0 || f.ThrottleRate+f.ServerErrorRate > 1 {
		panic(fmt.Sprintf("awsfake: fault rates must be in [0, 1] and add up to at most 1, got %v and %v", f.ThrottleRate, f.ServerErrorRate))
	}
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	if f == (Fault{}) {
		delete(s.faults.byOp, operation)
		return
	}
	s.faults.byOp[operation] = f
}

// ClearFaults removes every fault and the eventual consistency delay.
func (s *Server) ClearFaults() {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	clear(s.faults.byOp)
	s.faults.visibility = 0
}

// SetVisibilityDelay makes access entries created from now on, by
// CreateAccessEntry, invisible to ListAccessEntries and DescribeAccessEntry
// for d after their creation (on the server's clock, see WithClock), as
// EKS documents: "access entry creation and updates are eventually
// consistent". A duplicate create is still refused meanwhile. Zero turns
// it off.
func (s *Server) SetVisibilityDelay(d time.Duration) {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	s.faults.visibility = d
}

func (f *faults) visibilityDelay() time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.visibility
}

// draw returns the fault in force for an operation and, when the call is
// to fail, the error to fail it with. It draws from the seeded source only
// when a rate is set, so that calls without faults leave the sequence alone.
func (f *faults) draw(op string, iam bool) (Fault, *APIError) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fault, ok := f.byOp[op]
	if !ok {
		fault = f.byOp[AllOperations]
	}
	if fault.ThrottleRate == 0 && fault.ServerErrorRate == 0 {
		return fault, nil
	}
	switch x := f.rng.Float64(); {
	case x < fault.ThrottleRate:
		if iam {
			return fault, newError(http.StatusBadRequest, "Throttling", "Rate exceeded")
		}
		return fault, newError(http.StatusTooManyRequests, "ThrottlingException", "Rate exceeded")
	case x < fault.ThrottleRate+fault.ServerErrorRate:
		if iam {
			return fault, newError(http.StatusInternalServerError, "ServiceFailure", "The request processing has failed because of an unknown error.")
		}
		return fault, newError(http.StatusInternalServerError, "ServerException", "An internal error occurred.")
	}
	return fault, nil
}

// Outcomes a call is counted under besides the error codes.
const (
	OutcomeOK = "OK"
	// OutcomeNoResponse counts calls a Hang or Latency fault held until the
	// client gave up or the server closed.
	OutcomeNoResponse = "NoResponse"
)

// CallCounts counts calls by operation and outcome: OutcomeOK, the error
// code the fake answered with ("ThrottlingException", "NoSuchEntity"), or
// OutcomeNoResponse.
type CallCounts map[string]map[string]int

// Total is the number of calls of an operation, whatever their outcome.
func (c CallCounts) Total(operation string) int {
	n := 0
	for _, k := range c[operation] {
		n += k
	}
	return n
}

// Since is the calls of c that were not yet in before, an earlier Calls:
// what happened between the two.
func (c CallCounts) Since(before CallCounts) CallCounts {
	out := CallCounts{}
	for op, byOutcome := range c {
		for outcome, n := range byOutcome {
			if d := n - before[op][outcome]; d > 0 {
				if out[op] == nil {
					out[op] = map[string]int{}
				}
				out[op][outcome] = d
			}
		}
	}
	return out
}

// Operations lists the operations called at least once, sorted.
func (c CallCounts) Operations() []string {
	return slices.Sorted(maps.Keys(c))
}

type counter struct {
	mu    sync.Mutex
	calls CallCounts
	// inFlight counts, by operation, the calls begun and not ended.
	inFlight map[string]int
}

func (c *counter) begin(op string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.inFlight == nil {
		c.inFlight = map[string]int{}
	}
	c.inFlight[op]++
}

func (c *counter) end(op string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.inFlight[op]--; c.inFlight[op] == 0 {
		delete(c.inFlight, op)
	}
}

func (c *counter) add(op, outcome string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.calls == nil {
		c.calls = CallCounts{}
	}
	if c.calls[op] == nil {
		c.calls[op] = map[string]int{}
	}
	c.calls[op][outcome]++
}

// Calls returns a copy of the call counters.
func (s *Server) Calls() CallCounts {
	s.calls.mu.Lock()
	defer s.calls.mu.Unlock()
	out := CallCounts{}
	for op, byOutcome := range s.calls.calls {
		out[op] = maps.Clone(byOutcome)
	}
	return out
}

// InFlight counts, by operation, the calls the fake is handling now: above
// all those a Hang or Latency fault holds. Calls counts a call only once it
// has ended, so this is how a test knows that a client is blocked inside a
// call, not merely about to make one. Operations with none are left out.
func (s *Server) InFlight() map[string]int {
	s.calls.mu.Lock()
	defer s.calls.mu.Unlock()
	return maps.Clone(s.calls.inFlight)
}

// ResetCalls zeroes the call counters, so that a test can count only the
// calls of the phase it looks at.
func (s *Server) ResetCalls() {
	s.calls.mu.Lock()
	defer s.calls.mu.Unlock()
	s.calls.calls = nil
}

// SDKConfig points an SDK client made with config.LoadDefaultConfig and
// these options at s, with static credentials.
func (s *Server) SDKConfig() []func(*awsconfig.LoadOptions) error {
	return []func(*awsconfig.LoadOptions) error{
		awsconfig.WithRegion(DefaultRegion),
		awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", "")),
		awsconfig.WithBaseEndpoint(s.URL()),
	}
}

// SDKEnvironment is the environment that points an SDK client made from
// the standard chain alone (as the operator and the CLI make theirs) at s,
// with static credentials and no shared config: noFile must be a path
// that does not exist.
func (s *Server) SDKEnvironment(noFile string) map[string]string {
	return map[string]string{
		"AWS_REGION":                  DefaultRegion,
		"AWS_ACCESS_KEY_ID":           "AKIDEXAMPLE",
		"AWS_SECRET_ACCESS_KEY":       "secret",
		"AWS_ENDPOINT_URL_EKS":        s.URL(),
		"AWS_ENDPOINT_URL_IAM":        s.URL(),
		"AWS_CONFIG_FILE":             noFile,
		"AWS_SHARED_CREDENTIALS_FILE": noFile,
		"AWS_PROFILE":                 "",
		"AWS_ENDPOINT_URL":            "",
	}
}
