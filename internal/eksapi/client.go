// Package eksapi is the one place the operator talks to EKS and IAM: a thin
// layer over the AWS SDK for Go v2 that turns each call the operator needs
// into one method with plain Go types, rate limits and retries every call,
// counts the calls, and classifies the errors. It holds no business logic.
package eksapi

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/eks"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// maxAttempts is the retryer's attempts per call, the first included. The
// SDK's default of 3 gives up too early when EKS throttles a burst of
// writes (a resync after an outage); every attempt still waits on the rate
// limiter and on the caller's context.
//
// The standard retryer's retry quota stays: once an outage has used it up,
// calls fail at once instead of piling retries onto the API, and the
// controllers' requeue backoff takes over.
const maxAttempts = 8

// Options configures a Client.
type Options struct {
	// ClusterName is the EKS cluster whose access entries the client drives.
	ClusterName string
	// RateLimit bounds the attempts made to EKS and IAM together, retries
	// included. It is required: a QPS above 0 and a burst of at least 1.
	RateLimit RateLimit
	// Registerer is where the client's metrics are registered; nil is
	// controller-runtime's registry, which the operator's /metrics serves.
	Registerer prometheus.Registerer

	// LoadOptions are applied after the SDK's defaults. The operator sets
	// none; tests use them to point a client at the fake with its own
	// region, credentials and endpoint, since the AWS_* environment
	// variables are process-wide and would stop tests from running in
	// parallel. Exported for the tests of other packages (the envtest
	// suite), which build the client the operator builds.
	LoadOptions []func(*config.LoadOptions) error
	// AttemptTimeout bounds each attempt of a call, from connecting to the
	// end of the answer; zero is DefaultAttemptTimeout. Without a bound, one
	// call EKS never answers would hold the access entry reconciler, and
	// with it every resync, until the operator restarts.
	AttemptTimeout time.Duration
	// MaxBackoff caps the retryer's backoff between attempts; zero (what
	// the operator sets) is the SDK's default, 20s. Tests shorten it so
	// that retries take milliseconds.
	MaxBackoff time.Duration
}

// DefaultAttemptTimeout is how long one attempt of a call may take: EKS
// answers in well under a second, and a resync comes every minute.
const DefaultAttemptTimeout = 30 * time.Second

// RateLimit is a token bucket: QPS calls per second on average, Burst at
// once.
type RateLimit struct {
	QPS   float64
	Burst int
}

// Client calls EKS and IAM for one cluster. It is safe for concurrent use.
type Client struct {
	cluster string
	eks     *eks.Client
	iam     *iam.Client
	roles   roleCache
}

// New loads the AWS configuration the SDK's default way: the region from
// AWS_REGION, credentials from IRSA, EKS Pod Identity or the environment,
// and endpoints from AWS_ENDPOINT_URL_EKS and AWS_ENDPOINT_URL_IAM when
// set. It adds the SDK's standard retryer, a rate limiter and metrics to
// every call.
func New(ctx context.Context, o Options) (*Client, error) {
	if o.ClusterName == "" {
		return nil, errors.New("eksapi: a cluster name is required")
	}
	if o.RateLimit.QPS <= 0 || o.RateLimit.Burst < 1 {
		return nil, fmt.Errorf("eksapi: the rate limit needs a positive QPS and a burst of at least 1, got %+v", o.RateLimit)
	}
	if o.Registerer == nil {
		o.Registerer = metrics.Registry
	}
	m, err := registerMetrics(o.Registerer)
	if err != nil {
		return nil, err
	}

	loadOptions := append([]func(*config.LoadOptions) error{
		config.WithHTTPClient(awshttp.NewBuildableClient().WithTimeout(cmp.Or(o.AttemptTimeout, DefaultAttemptTimeout))),
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(so *retry.StandardOptions) {
				so.MaxAttempts = maxAttempts
				if o.MaxBackoff > 0 {
					so.MaxBackoff = o.MaxBackoff
				}
			})
		}),
	}, o.LoadOptions...)
	cfg, err := config.LoadDefaultConfig(ctx, loadOptions...)
	if err != nil {
		return nil, fmt.Errorf("eksapi: loading the AWS configuration: %w", err)
	}
	limiter := rate.NewLimiter(rate.Limit(o.RateLimit.QPS), o.RateLimit.Burst)
	cfg.APIOptions = append(cfg.APIOptions, perAttempt(limiter, m))

	return &Client{
		cluster: o.ClusterName,
		eks:     eks.NewFromConfig(cfg),
		iam:     iam.NewFromConfig(cfg),
		roles:   roleCache{now: time.Now, items: map[string]cachedRole{}},
	}, nil
}

// roleCache remembers GetRole's answers: a role's ARN does not change while
// the role exists, and a mapping naming a role that does not exist would
// otherwise ask IAM again on every reconcile.
type roleCache struct {
	now   func() time.Time
	mu    sync.Mutex
	items map[string]cachedRole
}

// How long GetRole's answers are kept. A found role is kept long, bounded
// so that a role deleted and recreated under the same name (same ARN, new
// ID) or a typo fixed in IAM is seen within minutes; a missing one briefly,
// so that creating the role takes effect soon.
const (
	roleTTL    = 10 * time.Minute
	missingTTL = time.Minute
)

type cachedRole struct {
	arn     string
	err     error
	expires time.Time
}

func (c *roleCache) get(name string) (cachedRole, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.items[name]
	if !ok || !c.now().Before(r.expires) {
		return cachedRole{}, false
	}
	return r, true
}

// put stores an answer and drops the expired ones, so that the cache holds
// only names asked about within the last TTL.
func (c *roleCache) put(name string, r cachedRole, ttl time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	for k, v := range c.items {
		if !now.Before(v.expires) {
			delete(c.items, k)
		}
	}
	r.expires = now.Add(ttl)
	c.items[name] = r
}
