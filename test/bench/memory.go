package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The operator's resident memory (VmRSS) at rest, before and after 10,000
// ConfigMaps of 10 KiB appear in another namespace. It caches only aws-auth
// (a field-selected informer), so they should cost it nothing.
const (
	noiseConfigMaps = 10000
	noiseBytes      = 10 * 1024
)

func (b *bench) measureMemory(ctx context.Context, rep *report) error {
	hash := b.expectedHash()
	if err := b.waitSettled(ctx, hash, time.Minute); err != nil {
		return err
	}
	before, err := b.restingRSS(ctx, hash)
	if err != nil {
		return err
	}
	payload := strings.Repeat("x", noiseBytes)
	start := time.Now()
	err = parallel(ctx, noiseConfigMaps, burstWorkers, func(i int) error {
		cm := &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Namespace: noiseNamespace, Name: fmt.Sprintf("noise-%05d", i)},
			Data:       map[string]string{"payload": payload},
		}
		return retry(ctx, func() error {
			_, err := b.cs.CoreV1().ConfigMaps(noiseNamespace).Create(ctx, cm, metav1.CreateOptions{})
			if apierrors.IsAlreadyExists(err) {
				return nil
			}
			return err
		}, func() {})
	})
	if err != nil {
		return fmt.Errorf("creating the ConfigMaps: %w", err)
	}
	took := time.Since(start)
	// Count them without reading 100 MB: one item, and how many remain.
	list, err := b.cs.CoreV1().ConfigMaps(noiseNamespace).List(ctx, metav1.ListOptions{Limit: 1})
	if err != nil {
		return err
	}
	present := int64(len(list.Items))
	if list.RemainingItemCount != nil {
		present += *list.RemainingItemCount
	}
	if present < noiseConfigMaps {
		return fmt.Errorf("only %d of the %d ConfigMaps exist in %s", present, noiseConfigMaps, noiseNamespace)
	}
	after, err := b.restingRSS(ctx, hash)
	if err != nil {
		return err
	}
	growth := after - before
	hwm, _ := b.op.status("VmHWM")
	rep.figure(secScale, "4. operator resident memory (VmRSS) at rest", fmt.Sprintf("%s with 0, %s with %s unrelated ConfigMaps of 10 KiB (growth %s; peak VmHWM so far %s; %d mappings)",
		mib(before), mib(after), thousands(noiseConfigMaps), signedMiB(growth), mib(hwm), b.count()))
	rep.note(secScale, "- Memory: the operator's VmRSS from `/proc/<pid>/status`, each time 5 s after a heal of aws-auth (so that it has just done its real work, then rested), before and after %s ConfigMaps of 10 KiB were created in namespace `%s` (%s, %d workers).",
		thousands(noiseConfigMaps), noiseNamespace, ms(took), burstWorkers)
	why := ""
	if growth >= 10<<20 {
		why = fmt.Sprintf("Over by %s. The operator caches no ConfigMap (it watches kube-system/aws-auth alone, by name, and reads it from the API server), so these objects should never reach it; growth of this size points at something listing or watching ConfigMaps beyond it.", signedMiB(growth-10<<20))
	}
	rep.target("4. memory growth with 10,000 unrelated ConfigMaps", "< 10 MiB", signedMiB(growth), growth < 10<<20, why)
	return nil
}

// restingRSS heals aws-auth once, lets the operator rest, and reads its
// VmRSS.
func (b *bench) restingRSS(ctx context.Context, hash string) (int64, error) {
	if err := b.waitQuiet(ctx, 2*time.Second, 3*time.Minute); err != nil {
		return 0, err
	}
	if _, err := b.healOnce(ctx, hash, 10*time.Second); err != nil {
		return 0, err
	}
	if err := b.waitSettled(ctx, hash, 30*time.Second); err != nil {
		return 0, err
	}
	select {
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-time.After(5 * time.Second):
	}
	return b.op.status("VmRSS")
}

func signedMiB(bytes int64) string {
	return fmt.Sprintf("%+.1f MiB", float64(bytes)/(1<<20))
}
