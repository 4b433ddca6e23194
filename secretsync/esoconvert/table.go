package esoconvert

import (
	"fmt"
	"strings"
)

// Row is one row of the ExternalSecret mapping: what an External Secrets
// Operator field becomes in coffer. The table below is the one source of
// both the converter's reasons (a DROPPED or NOTE line prints the row's
// coffer cell) and docs/migrating-from-eso.md's table, which a test holds
// equal to it row by row (go test ./secretsync/esoconvert -update-docs
// rewrites it).
type Row struct {
	// Key names the row for the converter; it is not shown.
	Key string
	// ESO is the Markdown cell naming the ESO field (and value).
	ESO string
	// Coffer is the Markdown cell saying what it becomes, or why it is
	// not converted and what to do instead.
	Coffer string
	// Dropped marks a field coffer convert does not carry over: it prints
	// a DROPPED line and exits 2.
	Dropped bool
}

// Reason is the row's coffer cell as plain text (without backticks, a pipe unescaped), as
// DROPPED and NOTE lines print it.
func (r Row) Reason() string {
	return strings.ReplaceAll(strings.ReplaceAll(r.Coffer, "`", ""), `\|`, "|")
}

// Table is the mapping, in the order the documentation shows it.
var Table = []Row{
	// The ExternalSecret itself.
	{Key: "apiVersion", ESO: "`apiVersion: external-secrets.io/v1` or `v1beta1`, `kind: ExternalSecret`", Coffer: "one SecretProviderClass (`provider: aws`) with one `syncSecrets` entry and the `objects` it reads"},
	{Key: "list", ESO: "`apiVersion: v1`, `kind: List` (what `kubectl get -o yaml` prints for several objects)", Coffer: "its `items`, each read as a manifest of its own"},
	{Key: "apiVersion-other", ESO: "other `apiVersion`s of `external-secrets.io` (`v1alpha1`)", Coffer: "not converted: convert the manifest to external-secrets.io/v1 first", Dropped: true},
	{Key: "kind-cluster", ESO: "`kind: ClusterExternalSecret`", Coffer: "not converted: a SecretProviderClass lives in one namespace; write its externalSecretSpec as an ExternalSecret in each namespace and convert those", Dropped: true},
	{Key: "metadata.name", ESO: "`metadata.name`", Coffer: "the class's `metadata.name`, and `secretName` when `spec.target.name` is unset"},
	{Key: "metadata.namespace", ESO: "`metadata.namespace`", Coffer: "the class's `metadata.namespace` (`--namespace` when the manifest names none)"},
	{Key: "metadata.meta", ESO: "`metadata.labels`, `metadata.annotations` (without `spec.target.template`, ESO copies them onto the Secret too)", Coffer: "the class's labels and annotations; without `spec.target.template`, the entry's `labels` and `annotations` too"},
	{Key: "metadata.meta-coffer", ESO: "`metadata.labels.app.kubernetes.io/managed-by`, or a label or annotation in `coffer-csi.github.io/`, without `spec.target.template`", Coffer: "not on the Secret: coffer manages its own domain, and sets app.kubernetes.io/managed-by: coffer itself; the class keeps them"},
	{Key: "metadata.server", ESO: "`metadata` the apiserver writes (`uid`, `resourceVersion`, `generation`, `creationTimestamp`, `managedFields`), `status`", Coffer: "not read: the apiserver writes them"},
	{Key: "metadata.other", ESO: "`metadata.ownerReferences`, `metadata.finalizers`", Coffer: "not converted: set them on the SecretProviderClass yourself if you need them", Dropped: true},
	{Key: "malformed", ESO: "a field of the wrong shape (a list where ESO's API has a mapping, a duration that is none)", Coffer: "not converted: ESO's API refuses it too; fix the manifest", Dropped: true},
	{Key: "invalid", ESO: "a value coffer's validation refuses (a name, label or key)", Coffer: "not converted, nor is its ExternalSecret: coffer validate's message follows; fix the value and convert again", Dropped: true},
	{Key: "unknown", ESO: "any field not in this table", Coffer: "not converted: coffer convert does not know this field; check what it does and whether coffer has an equivalent", Dropped: true},
	{Key: "spec.secretStoreRef", ESO: "`spec.secretStoreRef` (`kind` `SecretStore`, the default, or `ClusterSecretStore`)", Coffer: "read from the same input: the store's fields below become class parameters and the entry's `serviceAccountName`"},
	{Key: "store-missing", ESO: "`spec.secretStoreRef` naming a store not in the input", Coffer: "not converted: give the store's manifest too (-f store.yaml); without it the objects are read from Secrets Manager, and the class has no region (coffer's --region or the node's label applies), no role and no serviceAccountName (unless --service-account)", Dropped: true},
	{Key: "spec.refreshInterval", ESO: "`spec.refreshInterval` (default `1h`)", Coffer: "`refreshInterval` (default `1h`)"},
	{Key: "spec.refreshInterval-zero", ESO: "`spec.refreshInterval: 0` (fetch once)", Coffer: "`refreshInterval: 0`: read when the class changes, and again when coffer-controller sync restarts"},
	{Key: "spec.refreshInterval-short", ESO: "`spec.refreshInterval` under `1s`", Coffer: "not converted: every refresh reads AWS and coffer's shortest is 1s; the default 1h applies, set refreshInterval: 1s or more", Dropped: true},
	{Key: "spec.refreshPolicy", ESO: "`spec.refreshPolicy: Periodic` (the default)", Coffer: "`refreshInterval` as above"},
	{Key: "spec.refreshPolicy-onchange", ESO: "`spec.refreshPolicy: OnChange`", Coffer: "`refreshInterval: 0`: read when the class changes, and again when coffer-controller sync restarts"},
	{Key: "spec.refreshPolicy-once", ESO: "`spec.refreshPolicy: CreatedOnce`", Coffer: "not converted: coffer keeps the Secret as declared; the refreshInterval is kept, use refreshInterval: 0 to read only when the class changes", Dropped: true},
	{Key: "spec.syncWindows", ESO: "`spec.syncWindows`", Coffer: "not converted: coffer refreshes on refreshInterval at any time", Dropped: true},
	{Key: "spec.target.name", ESO: "`spec.target.name` (default: the ExternalSecret's name)", Coffer: "`secretName`"},
	{Key: "creationPolicy-owner", ESO: "`spec.target.creationPolicy: Owner` (the default; a controller reference with `blockOwnerDeletion`)", Coffer: "`creationPolicy: Owner` (the default): owned by the SecretProviderClass, the same way: a foreground deletion of the class waits for its Secrets"},
	{Key: "creationPolicy-orphan", ESO: "`spec.target.creationPolicy: Orphan`", Coffer: "`creationPolicy: Orphan`"},
	{Key: "creationPolicy-merge", ESO: "`spec.target.creationPolicy: Merge` (overwrites keys the Secret already has)", Coffer: "`creationPolicy: Merge`, and the Secret must opt in with the annotation `coffer-csi.github.io/allow-merge-from: <class>`; a key the Secret already has is not overwritten (`MergeKeyTaken`) unless the Secret names it in `coffer-csi.github.io/allow-merge-overwrite`, so the owner's value is never lost without asking"},
	{Key: "creationPolicy-none", ESO: "`spec.target.creationPolicy: None`, `CreateOrMerge`", Coffer: "not converted: coffer creates (Owner, Orphan) or merges into a Secret that opts in (Merge); the default Owner applies, choose one of them", Dropped: true},
	{Key: "deletionPolicy", ESO: "`spec.target.deletionPolicy: Retain` (the default) / `Delete` (a secret \"marked for deletion\" counts as gone)", Coffer: "`deletionPolicy: Retain` (the default) / `Delete`; the same: a Secrets Manager secret scheduled for deletion is gone"},
	{Key: "deletionPolicy-merge", ESO: "`spec.target.deletionPolicy: Merge` (drop only our keys), or `Delete` with `creationPolicy: Merge`", Coffer: "not converted: the default Retain applies (coffer never deletes a Secret it did not create); use Retain, or Delete with creationPolicy Owner", Dropped: true},
	{Key: "spec.target.immutable", ESO: "`spec.target.immutable`", Coffer: "`immutable` (not with `creationPolicy: Merge`: not converted then)"},
	{Key: "immutable-merge", ESO: "`spec.target.immutable: true` with `creationPolicy: Merge`", Coffer: "not converted: coffer makes immutable only the Secrets it creates; use creationPolicy Owner or Orphan", Dropped: true},
	{Key: "spec.target.manifest", ESO: "`spec.target.manifest` (a ConfigMap or custom resource instead of a Secret)", Coffer: "not converted, nor is its ExternalSecret: coffer syncs Secrets only", Dropped: true},
	{Key: "template.type", ESO: "`spec.target.template.type`", Coffer: "`type`"},
	{Key: "template.metadata", ESO: "`spec.target.template.metadata.labels` / `.annotations`", Coffer: "`labels` / `annotations`"},
	{Key: "template.finalizers", ESO: "`spec.target.template.metadata.finalizers`", Coffer: "not converted: coffer writes no finalizers on Secrets", Dropped: true},
	{Key: "template.data", ESO: "`spec.target.template.data`", Coffer: "`template.data` (Go `text/template` with coffer's functions; Sprig functions beyond them are not available)"},
	{Key: "template.data-function", ESO: "`spec.target.template.data` using a function coffer lacks", Coffer: "not converted (that key): see Kubernetes Secrets for coffer's template functions; compute the value another way, or keep it in the source", Dropped: true},
	{Key: "template.mergePolicy", ESO: "`spec.target.template.mergePolicy`", Coffer: "`template.mergePolicy` (`Replace` / `Merge`)"},
	{Key: "template.engineVersion", ESO: "`spec.target.template.engineVersion: v2` (the default)", Coffer: "nothing to write: coffer's templates are v2's (values are strings)"},
	{Key: "template.engineVersion-v1", ESO: "`spec.target.template.engineVersion: v1`", Coffer: "not converted, nor is its template.data: rewrite the templates for engine v2 (values are strings, no toString), convert again", Dropped: true},
	{Key: "template.templateFrom", ESO: "`spec.target.template.templateFrom`", Coffer: "not converted: write the templates inline in template.data", Dropped: true},
	{Key: "data.secretKey", ESO: "`spec.data[].secretKey`", Coffer: "`data[].key`"},
	{Key: "remoteRef.key", ESO: "`spec.data[].remoteRef.key`", Coffer: "an entry in `objects` (`objectName`: the store's `prefix` and the key; `objectType` from the store's `service`), named by `data[].objectName`; one object per name and version, shared by every key that reads it"},
	{Key: "remoteRef.property", ESO: "`spec.data[].remoteRef.property` (a gjson path: `name.first`, `friends.1.first`)", Coffer: "a `jmesPath` entry `{path, objectAlias}` on that object, named by `data[].objectName`: `a.b` becomes `\"a.b\" \\|\\| a.b` (ESO too reads a key with dots first), a number an array index (`friends[1].first`); objects and arrays come out as compact JSON, not as stored; a `null` value is an error (ESO writes it empty), and a key with dots whose value is empty or `false` reads the path instead"},
	{Key: "remoteRef.property-syntax", ESO: "`spec.data[].remoteRef.property` using gjson's queries, wildcards or modifiers (`#`, `*`, `?`, `@`, `\\|`, ...)", Coffer: "not converted, nor is its key: write the jmesPath expression on the object by hand", Dropped: true},
	{Key: "remoteRef.version-sm", ESO: "`spec.data[].remoteRef.version` (Secrets Manager: a staging label, default `AWSCURRENT`, or `uuid/<VersionId>`)", Coffer: "`objectVersionLabel` (nothing for `AWSCURRENT`), or `objectVersion: <VersionId>`, on that object"},
	{Key: "remoteRef.version-ps", ESO: "`spec.data[].remoteRef.version` (Parameter Store: a version number or a label)", Coffer: "`objectVersion` (a number) or `objectVersionLabel` on that object"},
	{Key: "decodingStrategy", ESO: "`spec.data[].remoteRef.decodingStrategy: None` / `Base64` / `Base64URL`", Coffer: "`data[].decoding: none` / `base64` / `base64url`"},
	{Key: "decodingStrategy-auto", ESO: "`spec.data[].remoteRef.decodingStrategy: Auto`", Coffer: "not converted: the value is written as stored; say what it is with decoding: base64 or base64url", Dropped: true},
	{Key: "conversionStrategy", ESO: "`spec.data[].remoteRef.conversionStrategy: Default`", Coffer: "nothing to write"},
	{Key: "conversionStrategy-unicode", ESO: "`spec.data[].remoteRef.conversionStrategy: Unicode`", Coffer: "not converted: the value is written as stored; decode its escapes in a template.data key", Dropped: true},
	{Key: "metadataPolicy", ESO: "`spec.data[].remoteRef.metadataPolicy: None` (the default)", Coffer: "nothing to write"},
	{Key: "metadataPolicy-fetch", ESO: "`spec.data[].remoteRef.metadataPolicy: Fetch` (the entry's tags)", Coffer: "not converted, nor is its key: coffer reads values, not tags; put what you need in the value", Dropped: true},
	{Key: "nullBytePolicy", ESO: "`spec.data[].remoteRef.nullBytePolicy: Ignore` (the default)", Coffer: "nothing to write: coffer writes values with NUL bytes as they are"},
	{Key: "nullBytePolicy-fail", ESO: "`spec.data[].remoteRef.nullBytePolicy: Fail`", Coffer: "not converted: coffer writes values with NUL bytes as they are", Dropped: true},
	{Key: "data.sourceRef", ESO: "`spec.data[].sourceRef`, `spec.dataFrom[].sourceRef` (another store, a generator)", Coffer: "not converted, nor is its key: one class reads as one identity and region; convert an ExternalSecret per store, and coffer has no generators", Dropped: true},
	{Key: "dataFrom.extract", ESO: "`spec.dataFrom[].extract` (its `key`, `property`, `version`, `decodingStrategy` as in `data`)", Coffer: "`dataFrom[].extract` naming that object (or its `jmesPath` entry), with `decoding`: every top-level key of the JSON object becomes a key; objects and arrays as compact JSON (ESO's as stored), `null` as `null` (ESO's empty)"},
	{Key: "dataFrom.find", ESO: "`spec.dataFrom[].find` (by `path`, `name.regexp` or `tags`)", Coffer: "not converted: coffer selects by Parameter Store path (an object with path:) or Secrets Manager filters (name prefix, tag-key, tag-value; no regular expressions, no tag pairs), and names keys differently; list each entry in objects, or write such an object and dataFrom: [{extract: <its objectAlias>}]", Dropped: true},
	{Key: "dataFrom.rewrite", ESO: "`spec.dataFrom[].rewrite`", Coffer: "not converted: the keys are not renamed; name each key with data, or rename keys with a template", Dropped: true},

	// The store: SecretStore or ClusterSecretStore.
	{Key: "store.kind", ESO: "`SecretStore` (in the ExternalSecret's namespace) or `ClusterSecretStore`, `external-secrets.io/v1` or `v1beta1`, `spec.provider.aws`", Coffer: "class parameters and the entry's `serviceAccountName`, as below"},
	{Key: "store.provider-other", ESO: "a store of another provider than `aws`", Coffer: "not converted, nor are its ExternalSecrets: coffer reads AWS only", Dropped: true},
	{Key: "store.service", ESO: "`spec.provider.aws.service: SecretsManager` / `ParameterStore`", Coffer: "`objectType: secretsmanager` / `ssmparameter` of every object (an ARN's own service wins)"},
	{Key: "store.service-acm", ESO: "`spec.provider.aws.service: CertificateManager`", Coffer: "not converted, nor are its ExternalSecrets: coffer reads Secrets Manager and Parameter Store", Dropped: true},
	{Key: "store.region", ESO: "`spec.provider.aws.region`", Coffer: "class parameter `region`"},
	{Key: "store.role", ESO: "`spec.provider.aws.role`", Coffer: "class parameter `assumeRoleArn`: assumed with the ServiceAccount's credentials, as ESO does"},
	{Key: "store.role-name", ESO: "`spec.provider.aws.role` that is not an ARN (`team-b`)", Coffer: "not converted: coffer assumes a role by its ARN; write arn:aws:iam::<account>:role/<name>", Dropped: true},
	{Key: "store.externalID", ESO: "`spec.provider.aws.externalID`", Coffer: "class parameter `assumeRoleExternalId` (with `role` only)"},
	{Key: "store.additionalRoles", ESO: "`spec.provider.aws.additionalRoles`", Coffer: "not converted: coffer assumes one role after the ServiceAccount's; let that role read the entries, or trust the ServiceAccount's role directly", Dropped: true},
	{Key: "store.jwt", ESO: "`spec.provider.aws.auth.jwt.serviceAccountRef.name`", Coffer: "entry `serviceAccountName`: coffer-controller sync reads AWS as that ServiceAccount of the class's namespace (its IRSA annotation or Pod Identity association), as ESO's JWT auth does"},
	{Key: "store.jwt-namespace", ESO: "`spec.provider.aws.auth.jwt.serviceAccountRef.namespace` of a `ClusterSecretStore`, other than the ExternalSecret's (a `SecretStore`'s is ignored, as ESO does)", Coffer: "not converted: coffer reads as a ServiceAccount of the class's own namespace; create one there with the role's annotation, or pass --service-account", Dropped: true},
	{Key: "store.jwt-audiences", ESO: "`spec.provider.aws.auth.jwt.serviceAccountRef.audiences`", Coffer: "not converted: coffer-controller sync requests tokens for --sts-audience (sts.amazonaws.com)", Dropped: true},
	{Key: "store.secretRef", ESO: "`spec.provider.aws.auth.secretRef` (static access keys in a Secret)", Coffer: "not converted: coffer never reads static keys; give a ServiceAccount an IAM role (IRSA or Pod Identity) and pass --service-account", Dropped: true},
	{Key: "store.no-auth", ESO: "no `spec.provider.aws.auth` (ESO's own credentials), with `--service-account`", Coffer: "entry `serviceAccountName` from `--service-account`: its IAM role must be allowed what ESO's own was (to read the entries, or to assume `role`)"},
	{Key: "store.no-auth-missing", ESO: "no `spec.provider.aws.auth`, without `--service-account`", Coffer: "not converted: coffer reads as a ServiceAccount of the class's namespace, never as itself; pass --service-account", Dropped: true},
	{Key: "store.sessionTags", ESO: "`spec.provider.aws.sessionTags`, `transitiveTagKeys`, `sessionTagsPolicy`, `customSessionTags`", Coffer: "not converted: coffer's sessions carry no tags; the STS session name says the namespace and ServiceAccount", Dropped: true},
	{Key: "store.prefix", ESO: "`spec.provider.aws.prefix`", Coffer: "written before every key in `objectName`"},
	{Key: "store.secretsManager", ESO: "`spec.provider.aws.secretsManager` (deletion options of PushSecret)", Coffer: "not converted: coffer never writes to AWS; nothing to do", Dropped: true},
	{Key: "store.other", ESO: "`spec.controller`, `spec.retrySettings`, `spec.refreshInterval`, `spec.conditions` of the store", Coffer: "not converted: coffer has no store; a class is read only in its own namespace, and the AWS SDK's retries apply", Dropped: true},

	// What only running shows.
	{Key: "session", ESO: "STS session of JWT auth in CloudTrail: `external-secrets-provider-aws` for every ExternalSecret", Coffer: "`coffer-<namespace>@sync.<serviceAccountName>`: one session per ServiceAccount, shared by the classes reading as it"},
	{Key: "status", ESO: "`status.conditions[Ready]` (`SecretSynced` / `SecretSyncedError`)", Coffer: "annotation `coffer-csi.github.io/sync-status` (`ready`, `reason`) and Events"},
	{Key: "refreshTime", ESO: "`status.refreshTime`", Coffer: "`lastSyncTime` per Secret in that annotation"},
	{Key: "hash", ESO: "data hash (`reconcile.external-secrets.io/data-hash`)", Coffer: "`coffer-csi.github.io/content-hash`, over versions not values"},
}

// reasons are the rows' reasons by key, computed once (never written
// after).
var reasons = func() map[string]string {
	m := make(map[string]string, len(Table))
	for _, r := range Table {
		m[r.Key] = r.Reason()
	}
	return m
}()

// reason returns the reason of the row named key; an unknown key is a
// bug of this package.
func reason(key string) string {
	s, ok := reasons[key]
	if !ok {
		panic(fmt.Sprintf("esoconvert: no table row %q", key))
	}
	return s
}

// Markdown renders Table as docs/migrating-from-eso.md shows it.
func Markdown() string {
	var b strings.Builder
	b.WriteString("| ExternalSecret | coffer |\n|---|---|\n")
	for _, r := range Table {
		fmt.Fprintf(&b, "| %s | %s |\n", r.ESO, r.Coffer)
	}
	return b.String()
}
