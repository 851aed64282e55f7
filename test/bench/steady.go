package main

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	iamv1alpha1 "github.com/aws-auth-guardian/aws-auth-guardian/api/v1alpha1"
)

// Steady state: the API requests the operator makes when nothing changes,
// from its own client metrics (controller-runtime's
// rest_client_requests_total{code,method,host}), over a window after
// convergence. Also checked: aws-auth and the mappings keep their
// resourceVersions (no hot loop).
const requestsMetric = "rest_client_requests_total"

func (b *bench) measureSteady(ctx context.Context, rep *report, window time.Duration) error {
	if err := b.waitSettled(ctx, b.expectedHash(), time.Minute); err != nil {
		return err
	}
	// Converged: the operator's request counters have not moved for 5 s.
	if err := b.waitQuiet(ctx, 5*time.Second, 2*time.Minute); err != nil {
		return err
	}
	before, err := b.op.scrape()
	if err != nil {
		return err
	}
	rvBefore, err := b.mappingVersions(ctx)
	if err != nil {
		return err
	}
	from := b.w.mark()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(window):
	}
	after, err := b.op.scrape()
	if err != nil {
		return err
	}
	rvAfter, err := b.mappingVersions(ctx)
	if err != nil {
		return err
	}
	awsAuthEvents := len(b.w.since(from))
	moved := 0
	for name, rv := range rvBefore {
		if rvAfter[name] != rv {
			moved++
		}
	}

	byMethod := func(samples []series) map[string]float64 {
		out := map[string]float64{}
		for _, s := range samples {
			if s.name == requestsMetric {
				out[s.labels["method"]+" "+s.labels["code"]] += s.value
			}
		}
		return out
	}
	b0, b1 := byMethod(before), byMethod(after)
	perMinute := 60 / window.Seconds()
	var parts []string
	writes, total := 0.0, 0.0
	for _, k := range slices.Sorted(maps.Keys(b1)) {
		d := b1[k] - b0[k]
		if d == 0 {
			continue
		}
		total += d
		parts = append(parts, fmt.Sprintf("%s: %.0f", k, d*perMinute))
		switch strings.Fields(k)[0] {
		case "POST", "PUT", "PATCH", "DELETE":
			writes += d
		}
	}
	detail := "none"
	if len(parts) > 0 {
		detail = strings.Join(parts, ", ")
	}
	rep.figure(secSteady, "5. operator API requests per minute at rest", fmt.Sprintf("%.0f (by method and code: %s)", total*perMinute, detail))
	rep.figure(secSteady, "5. resourceVersions at rest", fmt.Sprintf("aws-auth: %d watch events; mappings: %d of %d changed", awsAuthEvents, moved, len(rvBefore)))
	rep.note(secSteady, "- Over %s after convergence (the operator's request counters still for 5 s), with %d mappings, leader election off. With `--leader-elect`, as the Deployment runs it, the Lease renewals come on top (one update every retry period, 2 s by default): they are the election's, not aws-auth's.",
		window, len(rvBefore))
	why := ""
	if writes > 0 {
		why = fmt.Sprintf("Over by %.0f writes per minute (%s): with nothing changing, a write means the operator finds a difference where there is none (a hot loop).", writes*perMinute, detail)
	}
	rep.target("5. writes per minute at rest", "0", fmt.Sprintf("%.0f writes, %.0f requests in all", writes*perMinute, total*perMinute), writes == 0 && awsAuthEvents == 0 && moved == 0, why)
	return nil
}

func (b *bench) mappingVersions(ctx context.Context) (map[string]string, error) {
	var list iamv1alpha1.IAMIdentityMappingList
	if err := b.k.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
		return nil, err
	}
	out := make(map[string]string, len(list.Items))
	for _, m := range list.Items {
		out[m.Name] = m.ResourceVersion
	}
	return out, nil
}
