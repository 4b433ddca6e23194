package spc

import "strings"

// Nearest returns the candidate closest to key by edit distance (ignoring
// case), or "" when nothing is close enough to be a plausible typo.
func Nearest(key string, candidates []string) string {
	best, bestDist := "", len(key)/2+2
	lk := strings.ToLower(key)
	for _, c := range candidates {
		d := editDistance(lk, strings.ToLower(c))
		if d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// unknownKeyMessage explains an unknown key, suggesting the valid key it most
// likely meant.
func unknownKeyMessage(key string, valid []string) string {
	if s := Nearest(key, valid); s != "" {
		return "unknown key; did you mean " + quote(s) + "? (valid keys: " + strings.Join(valid, ", ") + ")"
	}
	return "unknown key; valid keys are " + strings.Join(valid, ", ")
}

func quote(s string) string { return `"` + s + `"` }
