package fakeaws_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/ssm/types"
)

const paramARNPrefix = "arn:aws:ssm:us-east-1:123456789012:parameter/"

func seedParams(e *env) {
	e.srv.PutParameter(east, "/app/db-host", "db1", "String")
	e.srv.PutParameter(east, "/app/db-host", "db2", "")
	e.srv.PutParameter(east, "/app/db-host", "db3", "")
	if err := e.srv.LabelParameter(east, "/app/db-host", 2, "stable", "blue"); err != nil {
		panic(err)
	}
	e.srv.PutParameter(east, "/app/token", "tok-1", "SecureString")
	e.srv.PutParameter(east, "/app/list", "a,b,c", "StringList")
	e.srv.PutParameter(east, "/app/nested/deep/x", "deep", "String")
	e.srv.PutParameter(east, "/app/nested/y", "y", "String")
	e.srv.PutParameter(east, "/other/z", "z", "String")
	e.srv.PutParameter(east, "plain", "p", "String")
}

func TestGetParameter(t *testing.T) {
	e := newEnv(t)
	seedParams(e)
	client := e.ssm(east, admin)

	tests := []struct {
		name         string
		in           ssm.GetParameterInput
		wantName     string
		wantValue    string
		wantVersion  int64
		wantSelector string
		wantType     types.ParameterType
		wantCode     string
	}{
		{name: "latest", in: ssm.GetParameterInput{Name: aws.String("/app/db-host")}, wantName: "/app/db-host", wantValue: "db3", wantVersion: 3, wantType: types.ParameterTypeString},
		{name: "version selector", in: ssm.GetParameterInput{Name: aws.String("/app/db-host:1")}, wantName: "/app/db-host", wantValue: "db1", wantVersion: 1, wantSelector: ":1"},
		{name: "label selector", in: ssm.GetParameterInput{Name: aws.String("/app/db-host:stable")}, wantName: "/app/db-host", wantValue: "db2", wantVersion: 2, wantSelector: ":stable"},
		{name: "by ARN", in: ssm.GetParameterInput{Name: aws.String(paramARNPrefix + "app/db-host")}, wantName: paramARNPrefix + "app/db-host", wantValue: "db3", wantVersion: 3},
		{name: "by ARN with selector", in: ssm.GetParameterInput{Name: aws.String(paramARNPrefix + "app/db-host:blue")}, wantName: paramARNPrefix + "app/db-host", wantValue: "db2", wantVersion: 2, wantSelector: ":blue"},
		{name: "non-hierarchical by ARN", in: ssm.GetParameterInput{Name: aws.String(paramARNPrefix + "plain")}, wantName: paramARNPrefix + "plain", wantValue: "p", wantVersion: 1},
		{name: "secure with decryption", in: ssm.GetParameterInput{Name: aws.String("/app/token"), WithDecryption: aws.Bool(true)}, wantName: "/app/token", wantValue: "tok-1", wantVersion: 1, wantType: types.ParameterTypeSecureString},
		{name: "string list", in: ssm.GetParameterInput{Name: aws.String("/app/list")}, wantName: "/app/list", wantValue: "a,b,c", wantVersion: 1, wantType: types.ParameterTypeStringList},
		{name: "unknown", in: ssm.GetParameterInput{Name: aws.String("/nope")}, wantCode: "ParameterNotFound"},
		{name: "other region's ARN", in: ssm.GetParameterInput{Name: aws.String("arn:aws:ssm:eu-west-1:123456789012:parameter/app/db-host")}, wantCode: "ParameterNotFound"},
		{name: "unknown version", in: ssm.GetParameterInput{Name: aws.String("/app/db-host:9")}, wantCode: "ParameterVersionNotFound"},
		{name: "unknown label", in: ssm.GetParameterInput{Name: aws.String("/app/db-host:nolabel")}, wantCode: "ParameterVersionNotFound"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := client.GetParameter(context.Background(), &tc.in)
			if tc.wantCode != "" {
				wantCode(t, err, tc.wantCode)
				var pnf *types.ParameterNotFound
				if tc.wantCode == "ParameterNotFound" && !errors.As(err, &pnf) {
					t.Errorf("error %T is not *types.ParameterNotFound", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			p := out.Parameter
			if aws.ToString(p.Name) != tc.wantName || aws.ToString(p.Value) != tc.wantValue || p.Version != tc.wantVersion || aws.ToString(p.Selector) != tc.wantSelector {
				t.Errorf("got name=%q value=%q version=%d selector=%q", aws.ToString(p.Name), aws.ToString(p.Value), p.Version, aws.ToString(p.Selector))
			}
			if tc.wantType != "" && p.Type != tc.wantType {
				t.Errorf("Type = %q, want %q", p.Type, tc.wantType)
			}
			if !strings.HasPrefix(aws.ToString(p.ARN), paramARNPrefix) || aws.ToString(p.DataType) != "text" || p.LastModifiedDate == nil {
				t.Errorf("ARN=%q DataType=%q LastModified=%v", aws.ToString(p.ARN), aws.ToString(p.DataType), p.LastModifiedDate)
			}
		})
	}
}

func TestSecureStringWithoutDecryption(t *testing.T) {
	e := newEnv(t)
	e.srv.PutParameter(east, "/s", "plaintext-value", "SecureString")
	out, err := e.ssm(east, admin).GetParameter(context.Background(), &ssm.GetParameterInput{Name: aws.String("/s")})
	if err != nil {
		t.Fatal(err)
	}
	v := aws.ToString(out.Parameter.Value)
	if v == "" || strings.Contains(v, "plaintext") {
		t.Errorf("undecrypted SecureString value = %q; want an opaque ciphertext", v)
	}
}

func TestGetParameters(t *testing.T) {
	e := newEnv(t)
	seedParams(e)
	client := e.ssm(east, admin)

	out, err := client.GetParameters(context.Background(), &ssm.GetParametersInput{
		Names:          []string{"/app/db-host:stable", "/app/token", "/missing", "/app/db-host:7", "/app/db-host:nolabel", "/app/token", paramARNPrefix + "app/list:1"},
		WithDecryption: aws.Bool(true),
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range out.Parameters {
		got = append(got, aws.ToString(p.Name)+aws.ToString(p.Selector)+"="+aws.ToString(p.Value))
	}
	want := []string{"/app/db-host:stable=db2", "/app/token=tok-1", paramARNPrefix + "app/list:1=a,b,c"}
	if !slices.Equal(got, want) {
		t.Errorf("Parameters = %v, want %v", got, want)
	}
	// Invalid names come back exactly as requested, selector included.
	if want := []string{"/missing", "/app/db-host:7", "/app/db-host:nolabel"}; !slices.Equal(out.InvalidParameters, want) {
		t.Errorf("InvalidParameters = %v, want %v", out.InvalidParameters, want)
	}

	names := make([]string, 11)
	for i := range names {
		names[i] = "/p" + string(rune('a'+i))
	}
	_, err = client.GetParameters(context.Background(), &ssm.GetParametersInput{Names: names})
	wantCode(t, err, "ValidationException")
}

func TestGetParametersByPath(t *testing.T) {
	e := newEnv(t)
	seedParams(e)
	e.srv.LabelParameter(east, "/app/list", 1, "stable")
	client := e.ssm(east, admin)
	ctx := context.Background()

	collect := func(in *ssm.GetParametersByPathInput) ([]string, int, error) {
		var names []string
		pages := 0
		p := ssm.NewGetParametersByPathPaginator(client, in)
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				return nil, pages, err
			}
			pages++
			for _, prm := range page.Parameters {
				names = append(names, aws.ToString(prm.Name)+"="+aws.ToString(prm.Value))
			}
		}
		return names, pages, nil
	}

	tests := []struct {
		name      string
		in        ssm.GetParametersByPathInput
		want      []string
		wantPages int
	}{
		{"direct children only", ssm.GetParametersByPathInput{Path: aws.String("/app")},
			[]string{"/app/db-host=db3", "/app/list=a,b,c", "/app/token=" + "<cipher>"}, 1},
		{"recursive paged by 2", ssm.GetParametersByPathInput{Path: aws.String("/app/"), Recursive: aws.Bool(true), WithDecryption: aws.Bool(true), MaxResults: aws.Int32(2)},
			[]string{"/app/db-host=db3", "/app/list=a,b,c", "/app/nested/deep/x=deep", "/app/nested/y=y", "/app/token=tok-1"}, 3},
		{"nested non-recursive", ssm.GetParametersByPathInput{Path: aws.String("/app/nested")}, []string{"/app/nested/y=y"}, 1},
		{"label filter", ssm.GetParametersByPathInput{Path: aws.String("/app"), ParameterFilters: []types.ParameterStringFilter{{Key: aws.String("Label"), Values: []string{"stable"}}}},
			[]string{"/app/db-host=db2", "/app/list=a,b,c"}, 1},
		{"empty", ssm.GetParametersByPathInput{Path: aws.String("/nothing")}, nil, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, pages, err := collect(&tc.in)
			if err != nil {
				t.Fatal(err)
			}
			for i, g := range got {
				// SecureString without decryption: compare shape only.
				if strings.HasPrefix(g, "/app/token=") && !aws.ToBool(tc.in.WithDecryption) {
					got[i] = "/app/token=<cipher>"
				}
			}
			if !slices.Equal(got, tc.want) || pages != tc.wantPages {
				t.Errorf("got %v in %d pages, want %v in %d", got, pages, tc.want, tc.wantPages)
			}
		})
	}

	_, err := client.GetParametersByPath(ctx, &ssm.GetParametersByPathInput{Path: aws.String("/app"), MaxResults: aws.Int32(11)})
	wantCode(t, err, "ValidationException")
	_, err = client.GetParametersByPath(ctx, &ssm.GetParametersByPathInput{Path: aws.String("app")})
	wantCode(t, err, "ValidationException")
	_, err = client.GetParametersByPath(ctx, &ssm.GetParametersByPathInput{Path: aws.String("/app"), NextToken: aws.String("bogus")})
	wantCode(t, err, "InvalidNextToken")
}

func TestPutParameterAndLabels(t *testing.T) {
	e := newEnv(t)
	client := e.ssm(east, admin)
	ctx := context.Background()
	put := func(name, value string, typ types.ParameterType, overwrite bool) (int64, error) {
		out, err := client.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String(name), Value: aws.String(value), Type: typ, Overwrite: aws.Bool(overwrite)})
		if err != nil {
			return 0, err
		}
		return out.Version, nil
	}

	if v, err := put("/cfg/a", "1", types.ParameterTypeString, false); err != nil || v != 1 {
		t.Fatalf("create: v=%d err=%v", v, err)
	}
	_, err := put("/cfg/a", "2", types.ParameterTypeString, false)
	wantCode(t, err, "ParameterAlreadyExists")
	if v, err := put("/cfg/a", "2", "", true); err != nil || v != 2 {
		t.Fatalf("overwrite: v=%d err=%v", v, err)
	}
	if v, err := put("/cfg/a", "3", "", true); err != nil || v != 3 {
		t.Fatalf("overwrite: v=%d err=%v", v, err)
	}

	for _, tc := range []struct {
		name, param, value string
		typ                types.ParameterType
		code               string
	}{
		{"type required on create", "/cfg/new", "x", "", "ValidationException"},
		{"bad type", "/cfg/new", "x", "Blob", "ValidationException"},
		{"reserved prefix", "/aws/x", "x", types.ParameterTypeString, "ValidationException"},
		{"not fully qualified", "cfg/x", "x", types.ParameterTypeString, "ValidationException"},
		{"empty value", "/cfg/new", "", types.ParameterTypeString, "ValidationException"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := put(tc.param, tc.value, tc.typ, false)
			wantCode(t, err, tc.code)
		})
	}

	label := func(version *int64, labels ...string) (*ssm.LabelParameterVersionOutput, error) {
		return client.LabelParameterVersion(ctx, &ssm.LabelParameterVersionInput{Name: aws.String("/cfg/a"), ParameterVersion: version, Labels: labels})
	}
	out, err := label(aws.Int64(1), "stable", "1bad", "awsx")
	if err != nil {
		t.Fatal(err)
	}
	if out.ParameterVersion != 1 || !slices.Equal(out.InvalidLabels, []string{"1bad", "awsx"}) {
		t.Errorf("label: version %d invalid %v", out.ParameterVersion, out.InvalidLabels)
	}
	// Labels move; no version means the latest.
	if out, err := label(nil, "stable"); err != nil || out.ParameterVersion != 3 {
		t.Fatalf("relabel: %v %v", out, err)
	}
	got, err := client.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("/cfg/a:stable")})
	if err != nil || got.Parameter.Version != 3 {
		t.Errorf("after moving label: %v %v", got, err)
	}
	_, err = label(aws.Int64(9), "x")
	wantCode(t, err, "ParameterVersionNotFound")
	tooMany := []string{"l1", "l2", "l3", "l4", "l5", "l6", "l7", "l8", "l9", "l10", "l11"}
	_, err = label(aws.Int64(2), tooMany...)
	wantCode(t, err, "ParameterVersionLabelLimitExceeded")

	if _, err := client.DeleteParameter(ctx, &ssm.DeleteParameterInput{Name: aws.String("/cfg/a")}); err != nil {
		t.Fatal(err)
	}
	_, err = client.DeleteParameter(ctx, &ssm.DeleteParameterInput{Name: aws.String("/cfg/a")})
	wantCode(t, err, "ParameterNotFound")
	if e.srv.DeleteParameter(east, "/cfg/a") {
		t.Error("DeleteParameter of a deleted parameter reported true")
	}
}
