package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	gvrPolicy  = schema.GroupVersionResource{Group: "admissionregistration.k8s.io", Version: "v1", Resource: "validatingadmissionpolicies"}
	gvrBinding = schema.GroupVersionResource{Group: "admissionregistration.k8s.io", Version: "v1", Resource: "validatingadmissionpolicybindings"}
)

// applyPolicies installs the chart's ValidatingAdmissionPolicies, rendered
// for coffer's ServiceAccounts here (release coffer in coffer-system), so
// that every scenario runs under them as a chart install does.
func (c *cluster) applyPolicies(ctx context.Context) error {
	data, err := os.ReadFile(c.bins.policies)
	if err != nil {
		return err
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 1<<20), 1<<20)
	n := 0
	for sc.Scan() {
		var obj map[string]any
		if err := json.Unmarshal(sc.Bytes(), &obj); err != nil {
			return fmt.Errorf("%s: %w", c.bins.policies, err)
		}
		u := &unstructured.Unstructured{Object: obj}
		gvr := gvrPolicy
		if u.GetKind() == "ValidatingAdmissionPolicyBinding" {
			gvr = gvrBinding
		}
		if _, err := c.dyn.Resource(gvr).Create(ctx, u, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("%s %s: %w", u.GetKind(), u.GetName(), err)
		}
		n++
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("%s holds no policies", c.bins.policies)
	}
	return nil
}
