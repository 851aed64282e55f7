package controllers

import (
	"context"
	"fmt"
	"maps"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iamv1alpha1 "github.com/aws-auth-guardian/aws-auth-guardian/api/v1alpha1"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/awsauth"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/managed"
)

// +kubebuilder:rbac:groups="",namespace=aws-auth-guardian-system,resources=configmaps,resourceNames=aws-auth-backup,verbs=get;update;patch
// +kubebuilder:rbac:groups="",namespace=aws-auth-guardian-system,resources=configmaps,verbs=create

// saveBackup records data as the last applied, when it is not already.
// What the backup holds is remembered, so a steady state costs no request.
func (r *AWSAuthReconciler) saveBackup(ctx context.Context, data map[string]string) error {
	hash := awsauth.Hash(data)
	if r.lastApplied != nil && awsauth.Hash(r.lastApplied) == hash {
		return nil
	}
	backup, err := r.readBackup(ctx)
	if err != nil {
		return err
	}
	if backup == nil {
		backup = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: r.BackupNamespace, Name: managed.BackupName}}
	}
	original := backup.DeepCopy()
	backup.Data = maps.Clone(data)
	backup.Labels = map[string]string{iamv1alpha1.ManagedByLabel: iamv1alpha1.ManagedByValue}
	backup.Annotations = map[string]string{iamv1alpha1.DataHashAnnotation: hash}
	switch {
	case original.ResourceVersion == "":
		err = r.Client.Create(ctx, backup)
	// The data is compared too: a forged backup may carry the right hash.
	case original.Annotations[iamv1alpha1.DataHashAnnotation] != hash || awsauth.Hash(original.Data) != hash:
		err = r.Client.Update(ctx, backup)
	}
	if err != nil {
		return fmt.Errorf("saving the backup of aws-auth: %w", err)
	}
	r.lastApplied = maps.Clone(data)
	return nil
}

// record is what the operator knows it last applied: the data this
// process wrote, or else the backup, if it is intact. Only a record may
// be restored, and only a record is what the guards measure a render
// against. exists says whether there is a backup at all, intact or not:
// if there is, the operator has written aws-auth before.
func (r *AWSAuthReconciler) record(ctx context.Context) (data map[string]string, exists bool, err error) {
	if r.lastApplied != nil {
		// Written by this process, so known without a round trip.
		return r.lastApplied, true, nil
	}
	backup, err := r.readBackup(ctx)
	if err != nil || backup == nil {
		return nil, false, err
	}
	if got, want := awsauth.Hash(backup.Data), backup.Annotations[iamv1alpha1.DataHashAnnotation]; got != want || len(backup.BinaryData) > 0 {
		// Someone else wrote it: only the operator and break-glass may
		// (policy aws-auth-guardian-protect-operator-configmaps). Told
		// once per version of the backup, not at every read.
		if backup.ResourceVersion == r.rejectedBackup {
			return nil, true, nil
		}
		r.rejectedBackup = backup.ResourceVersion
		backupRejectedTotal.Inc()
		ctrl.LoggerFrom(ctx).Error(nil, "The backup of aws-auth was changed by someone else; not restoring from it", "backup", r.backupKey(), "sha256", got, "annotated", want)
		r.Recorder.Eventf(backup, nil, corev1.EventTypeWarning, "BackupRejected", "Restore",
			"The data of %s does not match its %s annotation (%.12s, annotated %.12q): someone else wrote it, so aws-auth is not restored from it; the render of the mappings is used instead and the backup is rewritten",
			r.backupKey(), iamv1alpha1.DataHashAnnotation, got, want)
		return nil, true, nil
	}
	// Intact, so known from now on without a round trip.
	r.lastApplied = maps.Clone(backup.Data)
	return r.lastApplied, true, nil
}

// readBackup reads the backup from the API server, or nil when there is none.
func (r *AWSAuthReconciler) readBackup(ctx context.Context) (*corev1.ConfigMap, error) {
	backup := &corev1.ConfigMap{}
	err := r.APIReader.Get(ctx, r.backupKey(), backup)
	switch {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("reading the backup of aws-auth: %w", err)
	}
	return backup, nil
}

func (r *AWSAuthReconciler) backupKey() client.ObjectKey {
	return client.ObjectKey{Namespace: r.BackupNamespace, Name: managed.BackupName}
}

// restoreLastApplied recreates a missing aws-auth with the data last
// applied, and returns it; nil when there is no intact record to restore
// it from (a first start, or a forged backup: the render creates it).
func (r *AWSAuthReconciler) restoreLastApplied(ctx context.Context) (*corev1.ConfigMap, error) {
	data, _, err := r.record(ctx)
	if err != nil || data == nil {
		return nil, err
	}
	return r.create(ctx, nil, data, actionRestored)
}

// reportNoBackup says that aws-auth is missing, may not be rendered, and
// cannot be restored.
func (r *AWSAuthReconciler) reportNoBackup(ctx context.Context) {
	ctrl.LoggerFrom(ctx).Error(nil, "aws-auth is missing and there is no backup to restore it from", "backup", r.backupKey())
	r.Recorder.Eventf(awsAuthOrReference(nil), nil,
		corev1.EventTypeWarning, "NoBackup", "Restore", "aws-auth is missing and there is no backup in %s to restore it from", r.backupKey())
}
