package controllers

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	toolscache "k8s.io/client-go/tools/cache"
)

// refused is the error of a request to an API server that is not running:
// a real dial to a port nobody listens on.
func refused(t *testing.T) error {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	conn, err := net.Dial("tcp", addr)
	if err == nil {
		_ = conn.Close()
		t.Fatalf("%s still accepts connections", addr)
	}
	return err
}

func TestReconnectingRetriesOnlyWhileTheServerCannotBeReached(t *testing.T) {
	down := refused(t)
	forbidden := apierrors.NewForbidden(schema.GroupResource{Resource: "configmaps"}, "aws-auth", errors.New("no"))
	for _, tc := range []struct {
		name      string
		errs      []error // one per call; nil is an answer
		wantCalls int
		wantErr   error
	}{
		{name: "answered at once", errs: []error{nil}, wantCalls: 1},
		{name: "down, then answered", errs: []error{down, down, down, nil}, wantCalls: 4},
		{name: "connection lost mid-request, then answered", errs: []error{io.ErrUnexpectedEOF, nil}, wantCalls: 2},
		{name: "an error from the server is the reflector's", errs: []error{forbidden}, wantCalls: 1, wantErr: forbidden},
		{name: "down, then an error from the server", errs: []error{down, forbidden}, wantCalls: 2, wantErr: forbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var lists, watches int
			lw := reconnecting(&toolscache.ListWatch{
				ListWithContextFunc: func(context.Context, metav1.ListOptions) (runtime.Object, error) {
					lists++
					return &metav1.List{}, tc.errs[lists-1]
				},
				WatchFuncWithContext: func(context.Context, metav1.ListOptions) (watch.Interface, error) {
					watches++
					return watch.NewFake(), tc.errs[watches-1]
				},
			}, time.Millisecond)

			_, err := lw.ListWithContext(context.Background(), metav1.ListOptions{})
			if !errors.Is(err, tc.wantErr) || lists != tc.wantCalls {
				t.Errorf("list: error %v after %d calls, want %v after %d", err, lists, tc.wantErr, tc.wantCalls)
			}
			_, err = lw.WatchWithContext(context.Background(), metav1.ListOptions{})
			if !errors.Is(err, tc.wantErr) || watches != tc.wantCalls {
				t.Errorf("watch: error %v after %d calls, want %v after %d", err, watches, tc.wantErr, tc.wantCalls)
			}
		})
	}
}

func TestReconnectingStopsWithItsContext(t *testing.T) {
	down := refused(t)
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	lw := reconnecting(&toolscache.ListWatch{
		ListWithContextFunc: func(context.Context, metav1.ListOptions) (runtime.Object, error) {
			calls++
			if calls == 3 {
				cancel()
			}
			return nil, down
		},
	}, time.Millisecond)
	_, err := lw.ListWithContext(ctx, metav1.ListOptions{})
	if !errors.Is(err, down) || calls != 3 {
		t.Errorf("error %v after %d calls, want the connection error after 3", err, calls)
	}
}
