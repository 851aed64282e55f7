package controllers

import (
	"context"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/apimachinery/pkg/watch"
	toolscache "k8s.io/client-go/tools/cache"
)

// ReconnectInterval is how often an informer tries again to list or watch
// while the API server cannot be reached.
const ReconnectInterval = 500 * time.Millisecond

// newReconnectingInformer is the cache's informer, built as client-go
// builds it, but listing and watching through reconnecting.
func newReconnectingInformer(lw toolscache.ListerWatcher, obj runtime.Object, resync time.Duration, indexers toolscache.Indexers) toolscache.SharedIndexInformer {
	return toolscache.NewSharedIndexInformer(reconnecting(lw, ReconnectInterval), obj, resync, indexers)
}

// reconnecting retries a list or watch that could not reach the API server
// every interval, until it can or ctx ends. client-go's reflector backs off
// from every failure, doubling from 0.8s up to [30s, 60s), and starts over
// only after two quiet minutes: each try while the API server is down
// counts, so after a few restarts in a row a deleted aws-auth or a new
// mapping waited up to a minute for the watch. Here the reflector sees
// none of those tries; it backs off only for what the server answers (a
// restarted server answers a resumed watch with 410 Gone, and the reflector
// lists again after one step of its backoff).
func reconnecting(lw toolscache.ListerWatcher, interval time.Duration) *toolscache.ListWatch {
	inner := toolscache.ToListerWatcherWithContext(lw)
	return &toolscache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			return untilReachable(ctx, interval, func() (runtime.Object, error) { return inner.ListWithContext(ctx, opts) })
		},
		WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			return untilReachable(ctx, interval, func() (watch.Interface, error) { return inner.WatchWithContext(ctx, opts) })
		},
	}
}

func untilReachable[T any](ctx context.Context, interval time.Duration, call func() (T, error)) (T, error) {
	for {
		result, err := call()
		if !unreachable(err) {
			return result, err
		}
		select {
		case <-ctx.Done():
			return result, err
		case <-time.After(interval):
		}
	}
}

// unreachable tells a request that never got an answer from the API server
// (it is down, restarting, or its connection broke) from one it answered.
func unreachable(err error) bool {
	return utilnet.IsConnectionRefused(err) || utilnet.IsConnectionReset(err) ||
		utilnet.IsProbableEOF(err) || utilnet.IsHTTP2ConnectionLost(err)
}
