package spc_test

import (
	"io/fs"
	"maps"
	"strings"
	"testing"

	"github.com/coffer-csi/coffer/provider/spc"
)

func TestParseAttributes(t *testing.T) {
	tests := map[string]struct {
		raw     string
		want    map[string]string
		wantErr bool
	}{
		"object of strings": {
			raw:  `{"objects":"- objectName: a","region":"us-east-1","csi.storage.k8s.io/pod.name":"web-0"}`,
			want: map[string]string{"objects": "- objectName: a", "region": "us-east-1", "csi.storage.k8s.io/pod.name": "web-0"},
		},
		"empty object":              {raw: `{}`, want: map[string]string{}},
		"empty string":              {raw: ``, wantErr: true},
		"not JSON":                  {raw: `objects: x`, wantErr: true},
		"truncated JSON":            {raw: `{"region":"us-east-1"`, wantErr: true},
		"number value":              {raw: `{"usePodIdentity":1}`, wantErr: true},
		"boolean value":             {raw: `{"usePodIdentity":true}`, wantErr: true},
		"nested object value":       {raw: `{"objects":{"objectName":"a"}}`, wantErr: true},
		"list instead of an object": {raw: `["region","us-east-1"]`, wantErr: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := spc.ParseAttributes(tc.raw)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("ParseAttributes(%q) = %v, want an error", tc.raw, got)
				}
				if !strings.Contains(err.Error(), "not a JSON object of strings") {
					t.Errorf("error %q does not say what was expected", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseAttributes(%q): %v", tc.raw, err)
			}
			if !maps.Equal(got, tc.want) {
				t.Errorf("ParseAttributes(%q) = %v, want %v", tc.raw, got, tc.want)
			}
		})
	}
}

func TestParsePermission(t *testing.T) {
	tests := map[string]struct {
		in      string
		want    fs.FileMode
		wantErr bool
	}{
		"empty is 0644":             {in: "", want: 0o644},
		"420 is 0644":               {in: "420", want: 0o644},
		"384 is 0600":               {in: "384", want: 0o600},
		"416 is 0640":               {in: "416", want: 0o640},
		"0 is 0000":                 {in: "0", want: 0},
		"511 is 0777":               {in: "511", want: 0o777},
		"512 is too large":          {in: "512", wantErr: true},
		"octal text is not decimal": {in: "0644", wantErr: true},
		"negative":                  {in: "-1", wantErr: true},
		"not a number":              {in: "rw-r--r--", wantErr: true},
		"surrounding spaces":        {in: " 420", wantErr: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := spc.ParsePermission(tc.in)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("ParsePermission(%q) = %#o, want an error", tc.in, got)
				}
				if !strings.Contains(err.Error(), "between 0 and 511") {
					t.Errorf("error %q does not give the range", err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("ParsePermission(%q) = %#o, %v; want %#o", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestValidRegion(t *testing.T) {
	tests := map[string]bool{
		"us-east-1":      true,
		"eu-central-2":   true,
		"ap-southeast-5": true,
		"il-central-1":   true,
		"mx-central-1":   true,
		"us-gov-west-1":  true,
		"cn-north-1":     true,
		"cn-northwest-1": true,
		"us-iso-east-1":  true,
		"us-isob-east-1": true,
		"eu-isoe-west-1": true,
		"eusc-de-east-1": true,
		"":               false,
		"US-EAST-1":      false,
		"us-east":        false,
		"useast1":        false,
		"us-east-1a":     false,
		"us_east_1":      false,
		"us-east-100":    false,
		"aws-global":     false,
		" us-east-1":     false,
		"us-east-1\n":    false,
	}
	for region, want := range tests {
		t.Run(region, func(t *testing.T) {
			if got := spc.ValidRegion(region); got != want {
				t.Errorf("ValidRegion(%q) = %v, want %v", region, got, want)
			}
		})
	}
}

func TestParseARN(t *testing.T) {
	tests := map[string]struct {
		in      string
		want    spc.ARN
		wantErr string
	}{
		"secrets manager": {
			in:   smARN,
			want: spc.ARN{Partition: "aws", Service: "secretsmanager", Region: "us-east-1", Account: "123456789012", Resource: "secret:prod/db-AbCdEf"},
		},
		"parameter store": {
			in:   ssmARN,
			want: spc.ARN{Partition: "aws", Service: "ssm", Region: "us-east-1", Account: "123456789012", Resource: "parameter/app/prod/x"},
		},
		"resource with colons": {
			in:   "arn:aws-cn:secretsmanager:cn-north-1:123456789012:secret:a:b",
			want: spc.ARN{Partition: "aws-cn", Service: "secretsmanager", Region: "cn-north-1", Account: "123456789012", Resource: "secret:a:b"},
		},
		"too few fields":       {in: "arn:aws:secretsmanager:us-east-1:123456789012", wantErr: "not an ARN"},
		"not starting arn":     {in: "urn:aws:secretsmanager:us-east-1:123456789012:secret:x", wantErr: "not an ARN"},
		"partition not AWS":    {in: "arn:azure:secretsmanager:us-east-1:123456789012:secret:x", wantErr: `partition "azure"`},
		"empty region":         {in: "arn:aws:secretsmanager::123456789012:secret:x", wantErr: `region ""`},
		"account with letters": {in: "arn:aws:secretsmanager:us-east-1:12345678901a:secret:x", wantErr: "12-digit account"},
		"empty resource":       {in: "arn:aws:secretsmanager:us-east-1:123456789012:", wantErr: "no resource"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := spc.ParseARN(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseARN(%q) = %+v, %v; want an error with %q", tc.in, got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseARN(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
			}
			if got.String() != tc.in {
				t.Errorf("String() = %q, want %q", got.String(), tc.in)
			}
		})
	}
}

// TestFilePathQuotesWhatWasWritten: a file name problem is reported with
// the name as the class (or AWS) wrote it first, and the translated path
// second when translation changed it, never the translated form alone.
func TestFilePathQuotesWhatWasWritten(t *testing.T) {
	long := strings.Repeat("n", 300)
	tests := map[string]struct {
		name, translation string
		wantPath          string
		wantErr           string // the whole message; "" for a valid name
	}{
		"alias climbing out, translated":   {"../escape", "_", ".._escape", `"../escape" becomes the file path ".._escape", which has an element starting with ".." (the driver reserves those for its own files)`},
		"alias climbing out, kept":         {"../escape", "", "../escape", `"../escape" has a ".." element (a file must stay inside the mount)`},
		"absolute, leading / dropped":      {"/../etc", "", "../etc", `"/../etc" becomes the file path "../etc", which has a ".." element (a file must stay inside the mount)`},
		"another translation character":    {"../x", ".", "...x", `"../x" becomes the file path "...x", which has an element starting with ".." (the driver reserves those for its own files)`},
		"non-canonical, leading / dropped": {"/a//b", "", "a//b", `"/a//b" becomes the file path "a//b", which is not canonical (empty, "." or trailing path elements); write it as "a/b"`},
		"control character":                {"db\tx", "_", "db\tx", `"db\tx" contains a control character`},
		"long element, quote cut short":    {long, "_", long, `"` + long[:100] + `"... has an element of 300 bytes; the driver allows at most 255`},
		"valid, translated":                {"/app/prod/db", "_", "_app_prod_db", ""},
		"valid, nested":                    {"/app/prod/db", "", "app/prod/db", ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := spc.FilePath(tc.name, tc.translation)
			if got != tc.wantPath {
				t.Errorf("FilePath(%q, %q) path = %q, want %q", tc.name, tc.translation, got, tc.wantPath)
			}
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("FilePath(%q, %q) = %v, want nil", tc.name, tc.translation, err)
			case tc.wantErr != "" && (err == nil || err.Error() != tc.wantErr):
				t.Errorf("FilePath(%q, %q) =\n  %v\nwant\n  %s", tc.name, tc.translation, err, tc.wantErr)
			}
		})
	}
}

func TestCheckFilePath(t *testing.T) {
	tests := map[string]struct {
		path    string
		wantErr string // "" for a valid path
	}{
		"plain file":              {path: "db"},
		"nested file":             {path: "app/prod/db"},
		"dot file":                {path: ".env"},
		"two dots inside a name":  {path: "a..b"},
		"dot file in a directory": {path: "a/.b"},
		"255-byte name":           {path: strings.Repeat("n", 255)},
		"empty":                   {path: "", wantErr: "empty"},
		"dot":                     {path: ".", wantErr: "names the mount itself"},
		"absolute":                {path: "/etc/passwd", wantErr: "is absolute"},
		"trailing slash":          {path: "a/", wantErr: "not canonical"},
		"double slash":            {path: "a//b", wantErr: "not canonical"},
		"leading dot element":     {path: "./a", wantErr: "not canonical"},
		"inner dot element":       {path: "a/./b", wantErr: "not canonical"},
		"dot dot":                 {path: "..", wantErr: `has a ".." element`},
		"leading dot dot":         {path: "../a", wantErr: `has a ".." element`},
		"inner dot dot":           {path: "a/../b", wantErr: `has a ".." element`},
		"driver's ..data":         {path: "..data", wantErr: "starting with \"..\""},
		"nested ..name":           {path: "a/..b", wantErr: "starting with \"..\""},
		"256-byte name":           {path: strings.Repeat("n", 256), wantErr: "256 bytes"},
		"path over 4096 bytes":    {path: strings.Repeat(strings.Repeat("n", 200)+"/", 21) + "n", wantErr: "at most 4096"},
		"NUL byte":                {path: "a\x00b", wantErr: "control character"},
		"newline":                 {path: "a\nb", wantErr: "control character"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			err := spc.CheckFilePath(tc.path)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("CheckFilePath(%q) = %v, want nil", tc.path, err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("CheckFilePath(%q) = %v, want an error with %q", tc.path, err, tc.wantErr)
			}
		})
	}
}

func TestObjectHelpers(t *testing.T) {
	if got := spc.SecretsManager.Service(); got != "secretsmanager" {
		t.Errorf("SecretsManager.Service() = %q", got)
	}
	if got := spc.ParameterStore.Service(); got != "ssm" {
		t.Errorf("ParameterStore.Service() = %q", got)
	}
	o := &spc.Object{Index: 2, Name: "prod/db", Version: uuid1, VersionLabel: "AWSCURRENT"}
	if got := o.Describe(); got != "objects[2] (prod/db)" {
		t.Errorf("Describe() = %q", got)
	}
	if got := o.Primary(); got != (spc.Target{Name: "prod/db", Version: uuid1, VersionLabel: "AWSCURRENT"}) {
		t.Errorf("Primary() = %+v", got)
	}
	c := &spc.Config{Objects: []*spc.Object{{}, {JMESPath: []*spc.JMESPathEntry{{}, {}}}}}
	if got := c.FileCount(); got != 4 {
		t.Errorf("FileCount() = %d, want 4", got)
	}
	c = &spc.Config{Objects: []*spc.Object{{NoFile: true}, {JMESPath: []*spc.JMESPathEntry{{NoFile: true}, {}}}}, Files: []*spc.FileTemplate{{}}}
	if got := c.FileCount(); got != 3 {
		t.Errorf("FileCount() with writeFile: false and a template = %d, want 3", got)
	}
	if got := (&spc.Config{}).FileCount(); got != 0 {
		t.Errorf("FileCount() of an empty Config = %d", got)
	}
}
