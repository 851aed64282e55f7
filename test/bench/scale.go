package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	iamv1alpha1 "github.com/aws-auth-guardian/aws-auth-guardian/api/v1alpha1"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/awsauth"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/managed"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/testing/mappingtest"
)

// Scale: the render in process (awsauth.Resolve and Render, which also
// parses its output back to validate it) for 100, 1,000 and 5,000 typical
// mappings, how many entries fit the 1 MiB ConfigMap limit, and the time
// the running operator takes to apply 100, 1,000 and 5,000 mappings.

// typicalInputs are n typical mappings as the render takes them, named as
// the in-cluster ones are.
func typicalInputs(n int, shape func(string) *iamv1alpha1.IAMIdentityMapping) []awsauth.Mapping {
	inputs := make([]awsauth.Mapping, n)
	for i := range inputs {
		inputs[i] = managed.MappingInput(shape(fmt.Sprintf("scale-%05d", i)))
	}
	return inputs
}

// large is a mapping at the long end of real ones: a 64-character role
// name (IAM's maximum) and three groups.
func large(name string) *iamv1alpha1.IAMIdentityMapping {
	roleName := (name + "-" + strings.Repeat("x", 64))[:64]
	return mappingtest.Mapping(name, mappingtest.WithARN("arn:aws:iam::"+account+":role/"+roleName),
		mappingtest.WithUsername("platform:"+name+":{{SessionName}}"),
		mappingtest.WithGroups("platform:"+name+":developers", "platform:"+name+":readers", "platform:"+name+":operators"))
}

func renderOnce(inputs []awsauth.Mapping) (time.Duration, int, error) {
	start := time.Now()
	res := awsauth.Resolve(inputs)
	rendered, err := awsauth.Render(res.Entries)
	return time.Since(start), rendered.Size, err
}

func (r *report) renderInProcess() {
	for _, c := range []struct{ n, reps int }{{100, 200}, {1000, 50}, {5000, 10}} {
		inputs := typicalInputs(c.n, typical)
		var times []time.Duration
		size := 0
		for range c.reps {
			took, n, err := renderOnce(inputs)
			if err != nil {
				r.skip(fmt.Sprintf("render %d", c.n), err.Error())
				return
			}
			times, size = append(times, took), n
		}
		r.latency(secScale, fmt.Sprintf("4. render in process (Resolve + Render + parse-back check), %d mappings", c.n), summarize(times))
		r.figure(secScale, fmt.Sprintf("4. data size, %d typical mappings", c.n), fmt.Sprintf("%d bytes (%.1f%% of the 1 MiB limit, %d bytes per entry)", size, 100*float64(size)/awsauth.MaxDataBytes, size/c.n))
	}
	for _, shape := range []struct {
		what string
		make func(string) *iamv1alpha1.IAMIdentityMapping
	}{
		{"typical entries (as in this bench: `rolearn: arn:aws:iam::111122223333:role/scale-00042`, `username: scale-00042:{{SessionName}}`, one group)", typical},
		{"large entries (64-character role name, three groups)", large},
	} {
		n, size := limit(shape.make)
		r.figure(secScale, "4. the 1 MiB limit: "+shape.what, fmt.Sprintf("%d fit (%d bytes, %d bytes per entry); %d do not", n, size, size/max(1, n), n+1))
	}
	r.note(secScale, "- The render figures are in process, one goroutine, before the control plane starts: `awsauth.Resolve` (validate, settle conflicts) and `awsauth.Render` (encode, then parse back and compare, and refuse over 1 MiB). The operator does this once per reconcile.")
}

// limit finds the largest number of entries of the given shape whose
// render awsauth.Render accepts, and its size.
func limit(shape func(string) *iamv1alpha1.IAMIdentityMapping) (int, int) {
	fits := func(n int) (bool, int) {
		_, size, err := renderOnce(typicalInputs(n, shape))
		return err == nil, size
	}
	lo, hi := 1, 2
	for range 24 {
		if ok, _ := fits(hi); !ok {
			break
		}
		lo, hi = hi, hi*2
	}
	for range 32 {
		if hi-lo <= 1 {
			break
		}
		mid := (lo + hi) / 2
		if ok, _ := fits(mid); ok {
			lo = mid
		} else {
			hi = mid
		}
	}
	_, size := fits(lo)
	return lo, size
}

// measureApply creates mappings until there are target of them and times
// how long the operator takes to have aws-auth hold them all. The first
// call creates the base set, with the looked-up role and a node role.
func (b *bench) measureApply(ctx context.Context, rep *report, target int) error {
	have := b.count()
	var objs []*iamv1alpha1.IAMIdentityMapping
	if have == 0 {
		objs = append(objs,
			mappingtest.Role("bench-lookup", lookupARN, "platform:admins"),
			mappingtest.Mapping("bench-nodes", mappingtest.WithARN(nodesARN), mappingtest.WithUsername("system:node:{{EC2PrivateDNSName}}"),
				mappingtest.WithGroups("system:bootstrappers", "system:nodes")))
	}
	for i := 0; len(objs) < target-have; i++ {
		objs = append(objs, typical(fmt.Sprintf("scale-%05d", have+i)))
	}
	if len(objs) == 0 {
		return nil
	}
	if have > 0 {
		if err := b.waitQuiet(ctx, 2*time.Second, 3*time.Minute); err != nil {
			return err
		}
	}
	before, err := b.replaces()
	if err != nil {
		return err
	}
	from := b.w.mark()
	first, last, err := b.createAll(ctx, objs, burstWorkers)
	if err != nil {
		return err
	}
	entries, hash, err := b.expected()
	if err != nil {
		return err
	}
	done, err := b.w.waitFor(ctx, from, 5*time.Minute, func(s *awsAuthState) bool { return s.complete(hash) })
	if err != nil {
		return err
	}
	// The operator counts a replace once its create has returned, which
	// may be after the watcher saw the new object.
	time.Sleep(time.Second)
	after, _ := b.replaces()
	exact, mismatch := b.compareLive(ctx, entries)
	if !exact {
		return fmt.Errorf("aws-auth at %d mappings is not the render: %s", target, mismatch)
	}
	rep.figure(secScale, fmt.Sprintf("4. apply %s mappings: last create → aws-auth holds all", thousands(target)),
		fmt.Sprintf("%s (%d created in this step, sent in %s with %d workers; first create → all applied %s; %.0f replaces; %d bytes of data)",
			ms(done.At.Sub(last)), len(objs), ms(last.Sub(first)), burstWorkers, ms(done.At.Sub(first)), after-before, done.Size))
	if len(objs) >= 1000 {
		b.healWhileBusy(ctx, rep, hash, len(objs), done.At)
	}
	return nil
}

func thousands(n int) string {
	if n < 1000 {
		return itoa(n)
	}
	return fmt.Sprintf("%d,%03d", n/1000, n%1000)
}

// healWhileBusy deletes aws-auth (finalizer bypassed) right after a large
// apply, while the operator is still writing the status of every new
// mapping: its one worker finishes that reconcile before it sees the
// deletion.
func (b *bench) healWhileBusy(ctx context.Context, rep *report, hash string, created int, applied time.Time) {
	s, err := b.healOnce(ctx, hash, 3*time.Minute)
	name := fmt.Sprintf("4. heal right after applying %s new mappings (the operator still writing their status)", thousands(created))
	if err != nil {
		rep.figure(secScale, name, "failed: "+err.Error())
		return
	}
	rest := "did not come to rest within 3 minutes"
	if err := b.waitQuiet(ctx, 2*time.Second, 3*time.Minute); err == nil {
		rest = fmt.Sprintf("came to rest %s after aws-auth held the %s", ms(time.Since(applied)-2*time.Second), thousands(b.count()))
	}
	rep.figure(secScale, name, fmt.Sprintf("%s from DELETE to a complete aws-auth seen (%s without aws-auth); the operator %s",
		ms(s.heal), ms(s.gap), rest))
	rep.note(secScale, "- A heal is one reconcile on the operator's single worker, so it waits for the reconcile in progress. After applying %s new mappings that reconcile goes on to write each new mapping's status, one request each, and a deletion of aws-auth in that time is healed only when it ends: here %s without aws-auth (compare the heal at rest in the latency table).",
		thousands(created), ms(s.gap))
}
