package node

import (
	"bytes"
	"fmt"
	"regexp"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// The node has no EKS Pod Identity Webhook, which on EKS gives every pod
// of a ServiceAccount annotated eks.amazonaws.com/role-arn what the AWS
// SDK's web identity credentials need. irsaWebhook does the same to a
// chart's rendered manifests, as a Helm post-renderer: a Deployment or
// DaemonSet whose ServiceAccount the same manifests annotate gets the
// webhook's environment and projected token volume
// (github.com/aws/amazon-eks-pod-identity-webhook, its defaults). Pods of
// ServiceAccounts without the annotation, and every other object, are left
// byte for byte as rendered. coffer's node pods need none of it (they read
// AWS as the mounting pod); coffer-controller events does.
type irsaWebhook struct{}

const (
	irsaRoleAnnotation = "eks.amazonaws.com/role-arn"
	irsaTokenDir       = "/var/run/secrets/eks.amazonaws.com/serviceaccount"
	irsaVolume         = "aws-iam-token"
)

// manifestSep splits Helm's rendered stream into its documents.
var manifestSep = regexp.MustCompile(`(?m)^---[ \t]*$`)

func (irsaWebhook) Run(rendered *bytes.Buffer) (*bytes.Buffer, error) {
	docs := manifestSep.Split(rendered.String(), -1)
	type meta struct {
		Kind     string `json:"kind"`
		Metadata struct {
			Name        string            `json:"name"`
			Annotations map[string]string `json:"annotations"`
		} `json:"metadata"`
	}
	kinds := make([]string, len(docs))
	roles := map[string]string{} // ServiceAccount name: role ARN
	for i, d := range docs {
		var m meta
		if err := yaml.Unmarshal([]byte(d), &m); err != nil {
			return nil, fmt.Errorf("irsa webhook: a rendered document: %w", err)
		}
		kinds[i] = m.Kind
		if arn := m.Metadata.Annotations[irsaRoleAnnotation]; m.Kind == "ServiceAccount" && arn != "" {
			roles[m.Metadata.Name] = arn
		}
	}
	var out bytes.Buffer
	for i, d := range docs {
		if i > 0 {
			out.WriteString("---")
		}
		mutated, err := mutateWorkload(kinds[i], d, roles)
		if err != nil {
			return nil, err
		}
		out.WriteString(mutated)
	}
	return &out, nil
}

// mutateWorkload returns doc with the webhook's changes when it is a
// Deployment or DaemonSet whose pods run as an annotated ServiceAccount,
// and doc unchanged otherwise.
func mutateWorkload(kind, doc string, roles map[string]string) (string, error) {
	var obj interface{ podSpec() *corev1.PodSpec }
	switch kind {
	case "Deployment":
		obj = &deployment{}
	case "DaemonSet":
		obj = &daemonSet{}
	default:
		return doc, nil
	}
	if err := yaml.Unmarshal([]byte(doc), obj); err != nil {
		return "", fmt.Errorf("irsa webhook: a %s: %w", kind, err)
	}
	spec := obj.podSpec()
	arn := roles[spec.ServiceAccountName]
	if arn == "" {
		return doc, nil
	}
	expiry := int64(86400)
	spec.Volumes = append(spec.Volumes, corev1.Volume{Name: irsaVolume, VolumeSource: corev1.VolumeSource{
		Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{{
			ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Audience: audSTS, ExpirationSeconds: &expiry, Path: "token"},
		}}},
	}})
	for i := range spec.Containers {
		c := &spec.Containers[i]
		c.Env = append(c.Env,
			corev1.EnvVar{Name: "AWS_STS_REGIONAL_ENDPOINTS", Value: "regional"},
			corev1.EnvVar{Name: "AWS_DEFAULT_REGION", Value: nodeRegion},
			corev1.EnvVar{Name: "AWS_REGION", Value: nodeRegion},
			corev1.EnvVar{Name: "AWS_ROLE_ARN", Value: arn},
			corev1.EnvVar{Name: "AWS_WEB_IDENTITY_TOKEN_FILE", Value: irsaTokenDir + "/token"},
		)
		c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: irsaVolume, MountPath: irsaTokenDir, ReadOnly: true})
	}
	b, err := yaml.Marshal(obj)
	if err != nil {
		return "", fmt.Errorf("irsa webhook: a %s: %w", kind, err)
	}
	return "\n" + string(b), nil
}

type deployment struct{ appsv1.Deployment }

func (d *deployment) podSpec() *corev1.PodSpec { return &d.Spec.Template.Spec }

type daemonSet struct{ appsv1.DaemonSet }

func (d *daemonSet) podSpec() *corev1.PodSpec { return &d.Spec.Template.Spec }
