package secretsync

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/util/csaupgrade"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"

	"github.com/coffer-csi/coffer/internal/kube"

	"github.com/coffer-csi/coffer/provider/fetch"
	"github.com/coffer-csi/coffer/provider/render"
)

// Names coffer puts on the objects it manages.
const (
	// Domain is coffer's label and annotation domain.
	Domain = "coffer-csi.github.io"
	// AnnotationCreatedBy marks a Secret coffer created, with the name of
	// the SecretProviderClass that declares it.
	AnnotationCreatedBy = Domain + "/created-by"
	// AnnotationMergedBy marks a Secret coffer merges keys into, with the
	// name of the SecretProviderClass that declares it.
	AnnotationMergedBy = Domain + "/merged-by"
	// AnnotationContentHash identifies the content coffer wrote (see
	// Secret.Hash).
	AnnotationContentHash = Domain + "/content-hash"
	// AnnotationAllowMerge is set by a Secret's owner to let
	// SecretProviderClasses (comma-separated names, same namespace) merge
	// keys into it with creationPolicy Merge.
	AnnotationAllowMerge = Domain + "/allow-merge-from"
	// AnnotationAllowOverwrite is set by a merged Secret's owner to let
	// coffer take over keys (comma-separated) the Secret already has; any
	// other key the declaration shares with the Secret is refused.
	AnnotationAllowOverwrite = Domain + "/allow-merge-overwrite"
	// AnnotationStatus holds the controller's sync status on a
	// SecretProviderClass.
	AnnotationStatus = Domain + "/sync-status"

	LabelManagedBy = "app.kubernetes.io/managed-by"
	ManagedByValue = "coffer"
	// FieldManager is coffer's server-side apply field manager.
	FieldManager = "coffer"
)

// Event reasons and status reasons: a small fixed set (usable as metric
// labels).
const (
	ReasonCreated            = "SecretCreated"
	ReasonUpdated            = "SecretUpdated"
	ReasonDeleted            = "SecretDeleted"
	ReasonUnchanged          = "SecretUnchanged"
	ReasonAbsent             = "SecretAbsent"
	ReasonInvalidDeclaration = "InvalidDeclaration"
	ReasonIdentityFailed     = "IdentityFailed"
	ReasonFetchFailed        = "FetchFailed"
	ReasonInvalidData        = "InvalidData"
	ReasonNotOwned           = "SecretNotOwned"
	ReasonConflict           = "SecretConflict"
	ReasonMergeNotAllowed    = "MergeNotAllowed"
	ReasonMergeTargetMissing = "MergeTargetMissing"
	ReasonMergeKeyTaken      = "MergeKeyTaken"
	ReasonImmutable          = "SecretImmutable"
	ReasonTypeChanged        = "SecretTypeChanged"
	ReasonWriteFailed        = "WriteFailed"
)

// SPCGroupVersion and SPCKind name the SecretProviderClass API.
const (
	SPCGroupVersion = "secrets-store.csi.x-k8s.io/v1"
	SPCKind         = "SecretProviderClass"
)

// SPC is the part of a SecretProviderClass object sync needs.
type SPC struct {
	Namespace, Name string
	UID             types.UID
	Generation      int64
	Provider        string
	Parameters      map[string]string
	Annotations     map[string]string
}

// Reference is the SecretProviderClass as an event's involved object.
func (o *SPC) Reference() *corev1.ObjectReference {
	return &corev1.ObjectReference{APIVersion: SPCGroupVersion, Kind: SPCKind, Namespace: o.Namespace, Name: o.Name, UID: o.UID}
}

// EventRecorder records Kubernetes Events (client-go's record.EventRecorder).
type EventRecorder interface {
	Eventf(object runtime.Object, eventtype, reason, messageFmt string, args ...any)
}

// Result is what one sync did to one declared Secret.
type Result struct {
	Secret string
	// Ready says the Secret is as declared (created, updated, unchanged,
	// or deleted because its sources are gone).
	Ready bool
	// Reason is one of the Reason constants; Message says what happened
	// and, for failures, how to fix it. Neither holds a value.
	Reason  string
	Message string
	// problems is Message as a list, when it lists several problems.
	problems *problems
}

func ready(name, reason, format string, args ...any) Result {
	return Result{Secret: name, Ready: true, Reason: reason, Message: fmt.Sprintf(format, args...)}
}

func failed(name, reason, format string, args ...any) Result {
	return Result{Secret: name, Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// failedWith is a failure that says lead, then err; when err lists several
// problems, the result keeps them as a list (see problems).
func failedWith(name, reason, lead string, err error) Result {
	r := failed(name, reason, "%s: %v", lead, err)
	if list, ok := problemsOf(lead, err); ok {
		r.problems = &list
	}
	return r
}

// Engine reconciles declared Secrets with the Kubernetes API.
type Engine struct {
	Secrets kube.SecretsGetter
	// Events records an Event on the SecretProviderClass for every change
	// and failure (nil: none).
	Events EventRecorder
	Logger *slog.Logger
	// OnResult, when set, sees every result (for metrics: Reason is from a
	// small fixed set, Ready a boolean; Message is free text).
	OnResult func(owner *SPC, r Result)
	// Evaluator runs the Secrets' templates (nil: in this process), as
	// the class's namespace.
	Evaluator render.Evaluator
}

// Sync brings each declared Secret of owner in line with files, the files
// fetched for it (possibly partial), and fetchErr, the error that came with
// them (fetch.Errors per object, or any other error for all). It never
// empties or deletes a Secret because of a failed fetch; it deletes one
// only under deletionPolicy Delete when AWS confirmed every source is gone.
func (e *Engine) Sync(ctx context.Context, owner *SPC, secrets []*Secret, files []render.File, fetchErr error) []Result {
	byPath := make(map[string]render.File, len(files))
	for _, f := range files {
		byPath[f.Path] = f
	}
	failures := map[int]*fetch.ObjectError{}
	var global error
	var objErrs fetch.Errors
	switch {
	case errors.As(fetchErr, &objErrs):
		for _, oe := range objErrs {
			if _, seen := failures[oe.Object.Index]; !seen {
				failures[oe.Object.Index] = oe
			}
		}
	case fetchErr != nil:
		global = fetchErr
	}
	results := make([]Result, 0, len(secrets))
	for _, s := range secrets {
		r := e.syncOne(ctx, owner, s, byPath, failures, global)
		e.report(owner, r)
		results = append(results, r)
	}
	return results
}

// Report records a result that did not come from Sync (a declaration or
// identity failure) as Sync would.
func (e *Engine) Report(owner *SPC, r Result) { e.report(owner, r) }

func (e *Engine) report(owner *SPC, r Result) {
	if e.OnResult != nil {
		e.OnResult(owner, r)
	}
	log := e.logger().With("secretProviderClass", owner.Namespace+"/"+owner.Name, "secret", r.Secret, "reason", r.Reason)
	eventType := corev1.EventTypeNormal
	switch {
	case !r.Ready:
		eventType = corev1.EventTypeWarning
		log.Warn("secret sync failed", "message", r.Message)
	case r.Reason == ReasonUnchanged || r.Reason == ReasonAbsent:
		log.Debug("secret in sync")
		return
	default:
		log.Info("secret synced", "message", r.Message)
	}
	if e.Events != nil {
		e.Events.Eventf(owner.Reference(), eventType, r.Reason, "%s", r.Message)
	}
}

func (e *Engine) logger() *slog.Logger {
	if e.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return e.Logger
}

func (e *Engine) syncOne(ctx context.Context, owner *SPC, s *Secret, files map[string]render.File, failures map[int]*fetch.ObjectError, global error) Result {
	if global != nil {
		return failedWith(s.Name, ReasonFetchFailed, fmt.Sprintf("Secret %q not synced, left as it is", s.Name), global)
	}
	objects := s.Objects()
	var missing fetch.Errors
	gone := 0
	for _, o := range objects {
		if oe := failures[o.Index]; oe != nil {
			missing = append(missing, oe)
			if oe.Kind == fetch.KindNotFound && oe.Entry < 0 {
				gone++
			}
		}
	}
	if len(missing) > 0 {
		if s.DeletionPolicy == Delete && gone == len(objects) {
			return e.deleteGone(ctx, owner, s, missing)
		}
		note := ""
		if s.DeletionPolicy == Delete && gone > 0 {
			note = fmt.Sprintf(" (deletionPolicy Delete deletes the Secret only when all %d of its sources are gone)", len(objects))
		}
		return failedWith(s.Name, ReasonFetchFailed, fmt.Sprintf("Secret %q not synced, left as it is%s", s.Name, note), missing)
	}
	data, err := s.BuildWith(ctx, files, e.Evaluator, owner.Namespace)
	if err != nil {
		return failed(s.Name, ReasonInvalidData, "Secret %q not synced, left as it is: %s: %v", s.Name, s.Describe(), err)
	}
	return e.write(ctx, owner, s, desiredSecret(owner, s, data, s.Hash(files)))
}

// desired is the state coffer wants of a Secret: only what coffer manages.
type desired struct {
	name, namespace string
	// typ is "" with Merge and no declared type.
	typ         corev1.SecretType
	data        map[string][]byte
	labels      map[string]string
	annotations map[string]string
	owner       *metav1.OwnerReference
	immutable   bool
	merge       bool
}

func desiredSecret(owner *SPC, s *Secret, data map[string][]byte, hash string) *desired {
	d := &desired{
		name: s.Name, namespace: owner.Namespace, typ: s.Type, data: data,
		labels: map[string]string{}, annotations: map[string]string{AnnotationContentHash: hash},
		immutable: s.Immutable, merge: s.CreationPolicy == Merge,
	}
	for k, v := range s.Labels {
		d.labels[k] = v
	}
	for k, v := range s.Annotations {
		d.annotations[k] = v
	}
	if d.merge {
		d.annotations[AnnotationMergedBy] = owner.Name
		if !s.TypeSet {
			d.typ = ""
		}
	} else {
		d.labels[LabelManagedBy] = ManagedByValue
		d.annotations[AnnotationCreatedBy] = owner.Name
	}
	if s.CreationPolicy == Owner {
		// As ExternalSecret's (controller-runtime's SetControllerReference):
		// a foreground deletion of the class waits for its Secrets. Setting
		// blockOwnerDeletion needs update on secretproviderclasses/finalizers
		// where the OwnerReferencesPermissionEnforcement plugin is on.
		yes := true
		d.owner = &metav1.OwnerReference{APIVersion: SPCGroupVersion, Kind: SPCKind, Name: owner.Name, UID: owner.UID, Controller: &yes, BlockOwnerDeletion: &yes}
	}
	return d
}

// write creates or updates the Secret. Creation is a create (never an apply)
// so that a Secret someone else creates at the same moment is never merged
// into; updates apply with the live resourceVersion as a precondition, so a
// Secret replaced or deleted meanwhile is never touched.
func (e *Engine) write(ctx context.Context, owner *SPC, s *Secret, d *desired) Result {
	secrets := e.Secrets.Secrets(d.namespace)
	for attempt := 0; attempt < 3; attempt++ {
		live, err := secrets.Get(ctx, d.name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			if d.merge {
				return failed(s.Name, ReasonMergeTargetMissing, "Secret %q does not exist; creationPolicy Merge only adds keys to an existing Secret that opts in (annotation %s=%s); create it, or use creationPolicy Owner or Orphan to let coffer create it", d.name, AnnotationAllowMerge, owner.Name)
			}
			created, err := secrets.Create(ctx, d.secret(), metav1.CreateOptions{FieldManager: FieldManager})
			if apierrors.IsAlreadyExists(err) {
				continue // someone else was faster: look at theirs
			}
			if err != nil {
				return failed(s.Name, ReasonWriteFailed, "creating Secret %q: %v", d.name, apiError(err))
			}
			// Make the fields coffer set its apply-owned fields, so later
			// applies can remove what the declaration drops.
			if _, err := e.adoptFields(ctx, created); err != nil {
				e.logger().Warn("taking server-side apply ownership of a new Secret failed; retried on the next sync", "secret", owner.Namespace+"/"+d.name, "error", err)
			}
			return ready(s.Name, ReasonCreated, "Secret %q created with %s", d.name, describeKeys(sortedKeys(d.data)))
		}
		if err != nil {
			return failed(s.Name, ReasonWriteFailed, "reading Secret %q: %v", d.name, apiError(err))
		}
		if r := checkOwnership(live, s, owner); r != nil {
			return *r
		}
		if r := d.checkTakeover(live, s); r != nil {
			return *r
		}
		if d.upToDate(live) {
			return ready(s.Name, ReasonUnchanged, "Secret %q is up to date", d.name)
		}
		if r := d.checkUpdatable(live, s); r != nil {
			return *r
		}
		adopted, err := e.adoptFields(ctx, live)
		if err != nil && !apierrors.IsConflict(err) {
			return failed(s.Name, ReasonWriteFailed, "preparing Secret %q for server-side apply: %v", d.name, apiError(err))
		}
		if adopted || err != nil {
			continue // the resourceVersion moved: read it again
		}
		patch, err := d.applyPatch(live.ResourceVersion)
		if err != nil {
			return failed(s.Name, ReasonWriteFailed, "preparing Secret %q for server-side apply: %v", d.name, err)
		}
		_, err = secrets.Patch(ctx, d.name, types.ApplyPatchType, patch, metav1.PatchOptions{FieldManager: FieldManager, Force: ptr.To(true)})
		if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return failed(s.Name, ReasonWriteFailed, "updating Secret %q: %v", d.name, apiError(err))
		}
		changed := changedKeys(live.Data, d.data)
		if len(changed) == 0 {
			return ready(s.Name, ReasonUpdated, "Secret %q updated (labels, annotations or owner; no value changed)", d.name)
		}
		return ready(s.Name, ReasonUpdated, "Secret %q updated: %s changed", d.name, describeKeys(changed))
	}
	return failed(s.Name, ReasonWriteFailed, "Secret %q kept changing while coffer wrote it; retrying later", d.name)
}

// deleteGone deletes the Secret of an entry whose sources AWS says are gone
// (deletionPolicy Delete), if coffer created it.
func (e *Engine) deleteGone(ctx context.Context, owner *SPC, s *Secret, gone fetch.Errors) Result {
	secrets := e.Secrets.Secrets(owner.Namespace)
	names := make([]string, len(gone))
	for i, oe := range gone {
		names[i] = oe.Object.Describe()
	}
	why := fmt.Sprintf("every AWS entry it reads is gone (%s) and deletionPolicy is Delete", strings.Join(names, ", "))
	live, err := secrets.Get(ctx, s.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return ready(s.Name, ReasonAbsent, "Secret %q does not exist: %s", s.Name, why)
	}
	if err != nil {
		return failed(s.Name, ReasonWriteFailed, "reading Secret %q: %v", s.Name, apiError(err))
	}
	if r := checkOwnership(live, s, owner); r != nil {
		return *r
	}
	uid, rv := live.UID, live.ResourceVersion
	err = secrets.Delete(ctx, s.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid, ResourceVersion: &rv}})
	switch {
	case apierrors.IsNotFound(err):
		return ready(s.Name, ReasonAbsent, "Secret %q does not exist: %s", s.Name, why)
	case err != nil:
		return failed(s.Name, ReasonWriteFailed, "deleting Secret %q (%s): %v", s.Name, why, apiError(err))
	}
	return ready(s.Name, ReasonDeleted, "Secret %q deleted: %s", s.Name, why)
}

// checkOwnership refuses to touch a Secret coffer may not change: one it
// did not create (unless it opted in to Merge), one another class declares.
func checkOwnership(live *corev1.Secret, s *Secret, owner *SPC) *Result {
	created, merged := live.Annotations[AnnotationCreatedBy], live.Annotations[AnnotationMergedBy]
	ns, name := owner.Namespace, live.Name
	other := created
	if other == "" {
		other = merged
	}
	if other != "" && other != owner.Name {
		r := failed(s.Name, ReasonConflict, "Secret %q is synced by SecretProviderClass %q; one Secret has one declaration: choose another secretName in one of the classes", name, other)
		return &r
	}
	if s.CreationPolicy == Merge {
		switch {
		case created == owner.Name:
			r := failed(s.Name, ReasonConflict, "coffer created Secret %q for this class, so it is not merged into: set creationPolicy back to Owner or Orphan, or delete the Secret and create your own", name)
			return &r
		case !allowsMerge(live, owner.Name):
			r := failed(s.Name, ReasonMergeNotAllowed, "Secret %q has not opted in to creationPolicy Merge, so coffer leaves it alone; to let this class add its keys: kubectl annotate secret -n %s %s %s=%s", name, ns, name, AnnotationAllowMerge, owner.Name)
			return &r
		}
		return nil
	}
	switch {
	case created == owner.Name:
		return nil
	case merged == owner.Name:
		r := failed(s.Name, ReasonNotOwned, "coffer merges keys into Secret %q but did not create it, so it will not take it over: keep creationPolicy Merge, or delete the Secret for coffer to create it", name)
		return &r
	}
	r := failed(s.Name, ReasonNotOwned, "Secret %q exists and coffer did not create it, so coffer leaves it alone; delete it for coffer to create it, choose another secretName, or merge into it: creationPolicy: Merge and kubectl annotate secret -n %s %s %s=%s", name, ns, name, AnnotationAllowMerge, owner.Name)
	return &r
}

func allowsMerge(live *corev1.Secret, spcName string) bool {
	return listed(live.Annotations[AnnotationAllowMerge], spcName)
}

// listed reports whether a comma-separated annotation value names name.
func listed(annotation, name string) bool {
	for _, n := range strings.Split(annotation, ",") {
		if strings.TrimSpace(n) == name {
			return true
		}
	}
	return false
}

// checkTakeover refuses a merge that would write a key the Secret already
// has and coffer did not put there: server-side apply would take the key
// from its owner, overwrite the owner's value, and delete the key when the
// declaration drops it. (ExternalSecret's Merge overwrites such keys; coffer
// asks first.) The Secret's owner allows it per key with
// AnnotationAllowOverwrite.
func (d *desired) checkTakeover(live *corev1.Secret, s *Secret) *Result {
	if !d.merge {
		return nil
	}
	ours := appliedDataKeys(live)
	var taken []string
	for _, k := range sortedKeys(d.data) {
		if _, has := live.Data[k]; has && !ours[k] && !listed(live.Annotations[AnnotationAllowOverwrite], k) {
			taken = append(taken, k)
		}
	}
	if len(taken) == 0 {
		return nil
	}
	allow := slices.Clone(taken)
	for _, k := range strings.Split(live.Annotations[AnnotationAllowOverwrite], ",") {
		if k = strings.TrimSpace(k); k != "" && !slices.Contains(allow, k) {
			allow = append(allow, k)
		}
	}
	sort.Strings(allow)
	r := failed(s.Name, ReasonMergeKeyTaken, "Secret %q already has %s, which this class also declares; coffer does not overwrite its owner's keys: rename the key in the declaration, or let coffer take it over (its value is replaced, and removed when the declaration drops it): kubectl annotate --overwrite secret -n %s %s %s=%s",
		d.name, describeKeys(taken), d.namespace, d.name, AnnotationAllowOverwrite, strings.Join(allow, ","))
	return &r
}

// appliedDataKeys are the data keys coffer's field manager owns in live.
func appliedDataKeys(live *corev1.Secret) map[string]bool {
	out := map[string]bool{}
	data := "data"
	for _, mf := range live.ManagedFields {
		if mf.Manager != FieldManager || mf.FieldsV1 == nil {
			continue
		}
		var set fieldpath.Set
		if err := set.FromJSON(mf.FieldsV1.GetRawReader()); err != nil {
			continue // unreadable: coffer owns none of its keys
		}
		set.WithPrefix(fieldpath.PathElement{FieldName: &data}).Iterate(func(p fieldpath.Path) {
			if len(p) == 1 && p[0].FieldName != nil {
				out[*p[0].FieldName] = true
			}
		})
	}
	return out
}

// upToDate reports whether live already holds everything coffer wants. The
// content hash annotation is part of it: a changed declaration or source
// version always writes, and so does any drift of the values.
func (d *desired) upToDate(live *corev1.Secret) bool {
	if d.typ != "" && live.Type != d.typ {
		return false
	}
	for k, v := range d.data {
		if lv, ok := live.Data[k]; !ok || !bytes.Equal(lv, v) {
			return false
		}
	}
	if !subset(d.labels, live.Labels) || !subset(d.annotations, live.Annotations) {
		return false
	}
	if d.merge {
		return true
	}
	if isImmutable(live) != d.immutable {
		return false
	}
	var ours *metav1.OwnerReference
	for i, ref := range live.OwnerReferences {
		if ref.Kind == SPCKind && ref.Name == d.annotations[AnnotationCreatedBy] {
			ours = &live.OwnerReferences[i]
		}
	}
	if d.owner == nil {
		return ours == nil
	}
	return ours != nil && ours.UID == d.owner.UID && ours.Controller != nil && *ours.Controller &&
		ours.BlockOwnerDeletion != nil && *ours.BlockOwnerDeletion
}

// checkUpdatable reports changes the apiserver would refuse, with the fix.
func (d *desired) checkUpdatable(live *corev1.Secret, s *Secret) *Result {
	if d.typ != "" && live.Type != d.typ {
		fix := "delete the Secret and coffer recreates it"
		if d.merge {
			fix = "remove type from the declaration or make it agree"
		}
		r := failed(s.Name, ReasonTypeChanged, "Secret %q has type %s and the declaration says %s; a Secret's type cannot change: %s", d.name, live.Type, d.typ, fix)
		return &r
	}
	if !isImmutable(live) {
		return nil
	}
	if d.merge {
		r := failed(s.Name, ReasonImmutable, "Secret %q is immutable, so no key can be merged into it; make it mutable (recreate it), or let coffer create its own Secret", d.name)
		return &r
	}
	if !d.immutable {
		r := failed(s.Name, ReasonImmutable, "Secret %q is immutable and the declaration no longer says so; an immutable Secret cannot change: delete it and coffer recreates it", d.name)
		return &r
	}
	if changed := changedKeys(live.Data, d.data); len(changed) > 0 {
		r := failed(s.Name, ReasonImmutable, "Secret %q is immutable but %s changed (in AWS or in the declaration); it keeps its old content: delete it and coffer recreates it with the new", d.name, describeKeys(changed))
		return &r
	}
	return nil
}

func isImmutable(s *corev1.Secret) bool { return s.Immutable != nil && *s.Immutable }

func subset(want, have map[string]string) bool {
	for k, v := range want {
		if hv, ok := have[k]; !ok || hv != v {
			return false
		}
	}
	return true
}

func (d *desired) secret() *corev1.Secret {
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: d.name, Namespace: d.namespace, Labels: d.labels, Annotations: d.annotations},
		Type:       d.typ,
		Data:       d.data,
	}
	if d.owner != nil {
		s.OwnerReferences = []metav1.OwnerReference{*d.owner}
	}
	if d.immutable {
		t := true
		s.Immutable = &t
	}
	return s
}

// applyPatch is the server-side apply configuration of the Secret: the
// fields coffer owns, and nothing else. (client-go's typed apply
// configurations would do, but they link its discovery client and with it
// every API group's types; see internal/kube.)
func (d *desired) applyPatch(resourceVersion string) ([]byte, error) {
	type meta struct {
		Name            string                  `json:"name"`
		Namespace       string                  `json:"namespace"`
		ResourceVersion string                  `json:"resourceVersion,omitempty"`
		Labels          map[string]string       `json:"labels,omitempty"`
		Annotations     map[string]string       `json:"annotations,omitempty"`
		OwnerReferences []metav1.OwnerReference `json:"ownerReferences,omitempty"`
	}
	ac := struct {
		APIVersion string            `json:"apiVersion"`
		Kind       string            `json:"kind"`
		Metadata   meta              `json:"metadata"`
		Type       corev1.SecretType `json:"type,omitempty"`
		Data       map[string][]byte `json:"data,omitempty"`
		Immutable  *bool             `json:"immutable,omitempty"`
	}{
		APIVersion: "v1", Kind: "Secret", Type: d.typ, Data: d.data,
		Metadata: meta{Name: d.name, Namespace: d.namespace, ResourceVersion: resourceVersion, Labels: d.labels, Annotations: d.annotations},
	}
	if d.owner != nil {
		ac.Metadata.OwnerReferences = []metav1.OwnerReference{{
			APIVersion: d.owner.APIVersion, Kind: d.owner.Kind, Name: d.owner.Name, UID: d.owner.UID,
			Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true),
		}}
	}
	if d.immutable {
		ac.Immutable = ptr.To(true)
	}
	return json.Marshal(ac)
}

// adoptFields turns the fields coffer set with a create (an "Update"
// operation in managedFields) into fields of its server-side apply
// manager, as kubectl does when moving to server-side apply; otherwise a
// later apply could never remove them. It reports whether it patched.
func (e *Engine) adoptFields(ctx context.Context, s *corev1.Secret) (bool, error) {
	has := false
	for _, mf := range s.ManagedFields {
		if mf.Manager == FieldManager && mf.Operation == metav1.ManagedFieldsOperationUpdate {
			has = true
		}
	}
	if !has {
		return false, nil
	}
	patch, err := csaupgrade.UpgradeManagedFieldsPatch(s, sets.New(FieldManager), FieldManager)
	if err != nil || patch == nil {
		return false, err
	}
	_, err = e.Secrets.Secrets(s.Namespace).Patch(ctx, s.Name, types.JSONPatchType, patch, metav1.PatchOptions{FieldManager: FieldManager})
	return err == nil, err
}

// describeKeys names keys in messages: "key \"a\"", "3 keys (a, b, c)".
func describeKeys(keys []string) string {
	switch len(keys) {
	case 0:
		return "no keys"
	case 1:
		return fmt.Sprintf("key %q", keys[0])
	}
	const show = 10
	list := keys
	more := ""
	if len(list) > show {
		list, more = list[:show], fmt.Sprintf(", and %d more", len(keys)-show)
	}
	return fmt.Sprintf("%d keys (%s%s)", len(keys), strings.Join(list, ", "), more)
}

// apiError shortens an apiserver error to its message. The apiserver
// redacts Secret values from its validation errors.
func apiError(err error) string {
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		return status.Status().Message
	}
	return err.Error()
}
