package main

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The operator's Prometheus metrics, scraped from its endpoint: what the
// bench counts, and how it knows the operator is at rest.

// series is one scraped sample: its name, labels and value.
type series struct {
	name   string
	labels map[string]string
	value  float64
}

// scrape reads the operator's Prometheus text endpoint.
func (op *operator) scrape() ([]series, error) {
	resp, err := httpClient.Get(op.metricsURL)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", op.metricsURL, resp.Status)
	}
	var out []series
	s := bufio.NewScanner(resp.Body)
	s.Buffer(make([]byte, 1<<20), 1<<20)
	for s.Scan() {
		line := s.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		sample, ok := parseSample(line)
		if ok {
			out = append(out, sample)
		}
	}
	return out, s.Err()
}

// parseSample reads `name{a="b",c="d"} value` (no timestamps: the
// operator's registry writes none).
func parseSample(line string) (series, bool) {
	sp := series{labels: map[string]string{}}
	rest := line
	if i := strings.IndexAny(line, "{ "); i > 0 {
		sp.name, rest = line[:i], line[i:]
	} else {
		return sp, false
	}
	if rest[0] == '{' {
		rest = rest[1:]
		for len(rest) > 0 && rest[0] != '}' {
			eq := strings.IndexByte(rest, '=')
			if eq < 0 || len(rest) < eq+2 || rest[eq+1] != '"' {
				return sp, false
			}
			key := rest[:eq]
			rest = rest[eq+2:]
			var val strings.Builder
			for len(rest) > 0 && rest[0] != '"' {
				if rest[0] == '\\' && len(rest) > 1 {
					rest = rest[1:]
				}
				val.WriteByte(rest[0])
				rest = rest[1:]
			}
			if len(rest) == 0 {
				return sp, false
			}
			sp.labels[key] = val.String()
			rest = strings.TrimPrefix(rest[1:], ",")
		}
		rest = strings.TrimPrefix(rest, "}")
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
	if err != nil {
		return sp, false
	}
	sp.value = v
	return sp, true
}

// sum adds the samples of a metric whose labels pass keep (nil: all).
func sum(samples []series, name string, keep func(map[string]string) bool) float64 {
	total := 0.0
	for _, s := range samples {
		if s.name == name && (keep == nil || keep(s.labels)) {
			total += s.value
		}
	}
	return total
}

// replaces reads aws_auth_guardian_replaces_total.
func (b *bench) replaces() (float64, error) {
	samples, err := b.op.scrape()
	if err != nil {
		return math.NaN(), err
	}
	return sum(samples, "aws_auth_guardian_replaces_total", nil), nil
}

// waitQuiet waits until the operator's API request counter has not moved
// for quiet: it is at rest, done with status writes that a previous step
// caused (its one worker would otherwise still be busy when the next
// measurement starts).
func (b *bench) waitQuiet(ctx context.Context, quiet, timeout time.Duration) error {
	quietSince, last := time.Now(), -1.0
	err := pollUntil(ctx, timeout, func() bool {
		samples, err := b.op.scrape()
		if err != nil {
			return false
		}
		if n := sum(samples, "rest_client_requests_total", nil); n != last {
			quietSince, last = time.Now(), n
		}
		time.Sleep(100 * time.Millisecond)
		return time.Since(quietSince) >= quiet
	})
	if err != nil {
		return fmt.Errorf("the operator did not come to rest: %w", err)
	}
	return nil
}

// waitIdle waits until the operator's aws-auth controller has no worker
// busy and nothing queued, so that a measurement starts from rest and
// does not wait for the tail of the previous one (a reconcile may go on
// after aws-auth is right, with status and CPU work that makes no request).
func (b *bench) waitIdle(ctx context.Context, timeout time.Duration) error {
	controller := func(l map[string]string) bool { return l["controller"] == "aws-auth" }
	err := pollUntil(ctx, timeout, func() bool {
		samples, err := b.op.scrape()
		if err != nil {
			return false
		}
		idle := sum(samples, "controller_runtime_active_workers", controller) == 0 &&
			sum(samples, "workqueue_depth", controller) == 0
		if !idle {
			time.Sleep(10 * time.Millisecond)
		}
		return idle
	})
	if err != nil {
		return fmt.Errorf("the operator's worker did not become idle: %w", err)
	}
	return nil
}
