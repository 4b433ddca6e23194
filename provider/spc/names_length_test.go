package spc

import (
	"strings"
	"testing"
)

// TestNameLengths: the character patterns no longer carry the lengths
// (see inLength); each bound is still enforced, at both ends.
func TestNameLengths(t *testing.T) {
	tests := map[string]struct {
		err  error
		fail bool
	}{
		"secret name of 512":      {checkName(SecretsManager, strings.Repeat("s", 512)), false},
		"secret name of 513":      {checkName(SecretsManager, strings.Repeat("s", 513)), true},
		"empty secret name":       {checkName(SecretsManager, ""), true},
		"version id of 32":        {checkVersion(SecretsManager, strings.Repeat("a", 32)), false},
		"version id of 64":        {checkVersion(SecretsManager, strings.Repeat("a", 64)), false},
		"version id of 31":        {checkVersion(SecretsManager, strings.Repeat("a", 31)), true},
		"version id of 65":        {checkVersion(SecretsManager, strings.Repeat("a", 65)), true},
		"label of 256":            {checkLabel(strings.Repeat("l", 256)), false},
		"label of 257":            {checkLabel(strings.Repeat("l", 257)), true},
		"empty label":             {checkLabel(""), true},
		"label with a bad rune":   {checkLabel("AWS CURRENT"), true},
		"version with a bad rune": {checkVersion(SecretsManager, strings.Repeat("a", 31)+"_"), true},
	}
	for name, tc := range tests {
		if (tc.err != nil) != tc.fail {
			t.Errorf("%s: error %v, want failure %v", name, tc.err, tc.fail)
		}
	}
}
