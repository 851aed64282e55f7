package controllers

import (
	"context"
	"time"

	"github.com/aws-auth-guardian/aws-auth-guardian/internal/managed"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"
)

// awsAuthSource enqueues the reconcile key on every event of aws-auth, from
// a watch of that one object kept open by hand rather than by an informer.
// Every reconcile reads aws-auth from the API server, so a cache of it
// would serve nothing; and after an API server restart an informer lists
// again only after a step of client-go's backoff, which grows with each
// restart, while a deleted aws-auth must come back at once. Each new watch
// starts at the present and enqueues the key, so whatever happened while
// none was open is read by the reconcile.
func (r *AWSAuthReconciler) awsAuthSource(watcher client.WithWatch) source.Source {
	return source.Func(func(ctx context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
		go watchAWSAuth(ctx, watcher, func(deleted bool) {
			r.events.record(deleted)
			q.Add(reconcile.Request{NamespacedName: managed.AWSAuthKey})
		})
		return nil
	})
}

// watchAWSAuth calls changed when a watch of aws-auth starts and on each of
// its events, saying whether the event is a deletion, until ctx ends. A watch that fails or ends is started again,
// at most once every ReconnectInterval.
func watchAWSAuth(ctx context.Context, watcher client.WithWatch, changed func(deleted bool)) {
	log := ctrl.LoggerFrom(ctx).WithName("aws-auth-watch")
	failing := false
	for {
		started := time.Now()
		w, err := watcher.Watch(ctx, &corev1.ConfigMapList{},
			client.InNamespace(managed.AWSAuthKey.Namespace), client.MatchingFields{"metadata.name": managed.AWSAuthKey.Name})
		switch {
		case err != nil && !failing && ctx.Err() == nil:
			log.Error(err, "Watching aws-auth failed; retrying", "interval", ReconnectInterval)
			failing = true
		case err == nil:
			failing = false
			changed(false)
			forward(ctx, w, changed)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Until(started.Add(ReconnectInterval))):
		}
	}
}

// forward calls changed on each event of w until it ends, fails (410 Gone
// and the like: the caller starts over at the present) or ctx ends.
func forward(ctx context.Context, w watch.Interface, changed func(deleted bool)) {
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case event, open := <-w.ResultChan():
			if !open || event.Type == watch.Error {
				return
			}
			changed(event.Type == watch.Deleted)
		}
	}
}
