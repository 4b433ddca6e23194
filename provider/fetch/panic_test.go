package fetch_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/coffer-csi/coffer/internal/panics"
	"github.com/coffer-csi/coffer/provider/fetch"
)

// buggyClients are clients with bugs: Secrets Manager answers nothing at
// all (nil output, nil error: the fetch worker panics reading it), Parameter
// Store panics inside the shared call.
type buggyClients struct{}

func (buggyClients) SecretsManager(string) fetch.SecretsManagerAPI { return buggySM{} }
func (buggyClients) ParameterStore(string) fetch.ParameterStoreAPI { return buggySSM{} }

type buggySM struct{}

func (buggySM) GetSecretValue(context.Context, *secretsmanager.GetSecretValueInput, ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
	return nil, nil
}

func (buggySM) BatchGetSecretValue(context.Context, *secretsmanager.BatchGetSecretValueInput, ...func(*secretsmanager.Options)) (*secretsmanager.BatchGetSecretValueOutput, error) {
	return nil, nil
}

type buggySSM struct{}

func (buggySSM) GetParameters(context.Context, *ssm.GetParametersInput, ...func(*ssm.Options)) (*ssm.GetParametersOutput, error) {
	panic("bug")
}

func (buggySSM) GetParametersByPath(context.Context, *ssm.GetParametersByPathInput, ...func(*ssm.Options)) (*ssm.GetParametersByPathOutput, error) {
	panic("bug")
}

// TestPanicFailsTheObjectNotTheProcess: a panic in a fetch worker or in a
// shared AWS call fails the objects it was fetching, with an error for the
// caller; the process goes on.
func TestPanicFailsTheObjectNotTheProcess(t *testing.T) {
	cfg := config(t, "- {objectName: s, objectType: secretsmanager, objectVersionLabel: AWSPREVIOUS}\n- {objectName: p, objectType: ssmparameter}\n- {path: /bulk/, objectAlias: bulk}")
	var f fetch.Fetcher
	_, err := f.Fetch(context.Background(), cfg, buggyClients{}, "id")
	var errs fetch.Errors
	if !errors.As(err, &errs) || len(errs) != 3 {
		t.Fatalf("Fetch = %v, want three object errors", err)
	}
	for _, e := range errs {
		var pe *panics.Error
		if !errors.As(e, &pe) && !strings.Contains(e.Error(), "internal error in coffer") {
			t.Errorf("%v: want an internal error", e)
		}
	}
}
