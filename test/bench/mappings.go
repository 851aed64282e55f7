package main

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iamv1alpha1 "github.com/aws-auth-guardian/aws-auth-guardian/api/v1alpha1"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/awsauth"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/managed"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/testing/mappingtest"
)

// typical is the mapping most clusters are made of: a team role with a
// session-named user and one group.
func typical(name string) *iamv1alpha1.IAMIdentityMapping {
	return mappingtest.Role(name, "arn:aws:iam::"+account+":role/"+name, "team:"+name)
}

func (b *bench) remember(m *iamv1alpha1.IAMIdentityMapping) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.mappings[m.Name] = managed.MappingInput(m)
}

func (b *bench) forget(name string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.mappings, name)
}

func (b *bench) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.mappings)
}

// expected renders the mappings the bench created, as the operator must.
func (b *bench) expected() ([]awsauth.Entry, string, error) {
	b.mu.Lock()
	inputs := make([]awsauth.Mapping, 0, len(b.mappings))
	for _, m := range b.mappings {
		inputs = append(inputs, m)
	}
	b.mu.Unlock()
	res := awsauth.Resolve(inputs)
	rendered, err := awsauth.Render(res.Entries)
	if err != nil {
		return nil, "", err
	}
	return rendered.Entries, rendered.Hash, nil
}

func (b *bench) expectedHash() string {
	_, hash, err := b.expected()
	if err != nil {
		return "render failed: " + err.Error()
	}
	return hash
}

// createAll creates objs with bounded concurrency and remembers them; it
// returns when the first create was sent and the last one answered.
func (b *bench) createAll(ctx context.Context, objs []*iamv1alpha1.IAMIdentityMapping, workers int) (first, last time.Time, err error) {
	first = time.Now()
	err = parallel(ctx, len(objs), workers, func(i int) error {
		return retry(ctx, func() error {
			err := b.k.Create(ctx, objs[i])
			if apierrors.IsAlreadyExists(err) {
				return nil
			}
			return err
		}, func() { b.remember(objs[i]) })
	})
	return first, time.Now(), err
}

// deleteAll deletes the named mappings with bounded concurrency; their
// finalizers keep them until aws-auth is written without them.
func (b *bench) deleteAll(ctx context.Context, names []string, workers int) (first, last time.Time, err error) {
	first = time.Now()
	err = parallel(ctx, len(names), workers, func(i int) error {
		m := &iamv1alpha1.IAMIdentityMapping{ObjectMeta: metav1.ObjectMeta{Name: names[i]}}
		return retry(ctx, func() error { return client.IgnoreNotFound(b.k.Delete(ctx, m)) }, func() { b.forget(names[i]) })
	})
	return first, time.Now(), err
}

// parallel runs f(0..n-1) on at most workers goroutines and returns the
// first error.
func parallel(ctx context.Context, n, workers int, f func(i int) error) error {
	next := atomic.Int64{}
	var wg sync.WaitGroup
	var firstErr error
	var once sync.Once
	for range min(workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					once.Do(func() { firstErr = err })
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	return firstErr
}

// retry tries a write up to 5 times on errors worth retrying; then runs
// onSuccess.
func retry(ctx context.Context, write func() error, onSuccess func()) error {
	var err error
	for attempt := range 5 {
		if err = write(); err == nil {
			onSuccess()
			return nil
		}
		if !apierrors.IsTooManyRequests(err) && !apierrors.IsServerTimeout(err) && !apierrors.IsTimeout(err) &&
			!apierrors.IsInternalError(err) && !apierrors.IsServiceUnavailable(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(attempt+1) * 100 * time.Millisecond):
		}
	}
	return err
}
