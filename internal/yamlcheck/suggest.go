package yamlcheck

import "strings"

// Nearest returns the candidate closest to key by edit distance (ignoring
// case), or "" when nothing is close enough to be a plausible typo. It
// compares no name longer than MaxSuggestLen and reads at most
// MaxSuggestCandidates candidates, so its cost is bounded whatever it is
// given.
func Nearest(key string, candidates []string) string {
	if len(key) > MaxSuggestLen {
		return ""
	}
	best, bestDist := "", len(key)/2+2
	for _, c := range candidates[:min(len(candidates), MaxSuggestCandidates)] {
		if len(c) > MaxSuggestLen {
			continue
		}
		if d := Distance(key, c); d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}

// Distance is the Levenshtein distance between a and b, ignoring case, in
// bytes.
func Distance(a, b string) int {
	a, b = strings.ToLower(a), strings.ToLower(b)
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
