package controllers

import (
	"context"
	"fmt"
	"maps"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iamv1alpha1 "github.com/aws-auth-guardian/aws-auth-guardian/api/v1alpha1"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/awsauth"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/managed"
)

// +kubebuilder:rbac:groups="",namespace=aws-auth-guardian-system,resources=configmaps,resourceNames=aws-auth-backup,verbs=get;update;patch
// +kubebuilder:rbac:groups="",namespace=aws-auth-guardian-system,resources=configmaps,verbs=create

// saveBackup records rendered as the last applied, when it is not already.
// What the backup holds is remembered, so a steady state costs no request.
func (r *AWSAuthReconciler) saveBackup(ctx context.Context, rendered awsauth.Rendered) error {
	if r.lastApplied != nil && r.lastApplied.Hash == rendered.Hash {
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
	backup.Data, backup.BinaryData = maps.Clone(rendered.Data), nil
	backup.Labels = map[string]string{iamv1alpha1.ManagedByLabel: iamv1alpha1.ManagedByValue}
	backup.Annotations = map[string]string{iamv1alpha1.DataHashAnnotation: rendered.Hash}
	switch {
	case original.ResourceVersion == "":
		err = r.Client.Create(ctx, backup)
	// The data is compared too: a forged backup may carry the right hash.
	case original.Annotations[iamv1alpha1.DataHashAnnotation] != rendered.Hash || awsauth.Hash(original.Data) != rendered.Hash || len(original.BinaryData) > 0:
		err = r.Client.Update(ctx, backup)
	}
	if err != nil {
		return fmt.Errorf("saving the backup of aws-auth: %w", err)
	}
	r.lastApplied = &rendered
	return nil
}

// backupRejection is a backup found written by someone else, to report.
type backupRejection struct {
	backup          *corev1.ConfigMap
	hash, annotated string
}

// record is what the operator knows it last applied: the render this
// process wrote, or else the backup, if it is intact. Only a record may be
// restored, and only a record is what the guards measure a render against.
// exists says whether there is a backup at all, intact or not: if there
// is, the operator has written aws-auth before.
func (r *AWSAuthReconciler) record(ctx context.Context) (record *awsauth.Rendered, exists bool, err error) {
	if r.lastApplied != nil {
		// Written by this process, so known without a round trip.
		return r.lastApplied, true, nil
	}
	backup, err := r.readBackup(ctx)
	if err != nil || backup == nil {
		return nil, false, err
	}
	hash, annotated := awsauth.Hash(backup.Data), backup.Annotations[iamv1alpha1.DataHashAnnotation]
	if hash != annotated || len(backup.BinaryData) > 0 {
		// Someone else wrote it: only the operator and break-glass may
		// (policy aws-auth-guardian-protect-operator-configmaps). Told
		// once per version of the backup, not at every read.
		if backup.ResourceVersion != r.rejectedBackup {
			r.rejectedBackup = backup.ResourceVersion
			r.unreported = &backupRejection{backup: backup, hash: hash, annotated: annotated}
		}
		return nil, true, nil
	}
	// Intact, so known from now on without a round trip.
	entries, _ := awsauth.Parse(backup.Data)
	r.lastApplied = &awsauth.Rendered{Entries: entries, Data: backup.Data, Hash: hash, Size: awsauth.DataSize(backup.Data)}
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
