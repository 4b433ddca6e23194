package fetch

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/coffer-csi/coffer/provider/spc"
)

func (f *Fetcher) overBudget(n int64) bool { return f.MaxBytes > 0 && n > int64(f.MaxBytes) }

// size is the bytes of a value's data.
func (v Value) size() int {
	n := len(v.Data)
	for _, m := range v.Members {
		n += len(m.Data)
	}
	return n
}

// BudgetError is a Fetch that read more than its MaxBytes.
type BudgetError struct {
	Limit int
	// Largest names the largest objects and their sizes (at least, for
	// one that stopped paging).
	Largest string
}

func (e *BudgetError) Error() string {
	return fmt.Sprintf("the mount's objects hold more than %d bytes of values (twice --max-response-bytes), more than its response can return; largest: %s; split the objects across several SecretProviderClasses or drop large ones", e.Limit, e.Largest)
}

func anyTooLarge(outcomes []outcome) bool {
	for _, r := range outcomes {
		if r.err != nil && errors.Is(r.err.Err, errTooLarge) {
			return true
		}
	}
	return false
}

func budgetError(outcomes []outcome, limit int) *BudgetError {
	type sized struct {
		o       *spc.Object
		n       int
		atLeast bool
	}
	var list []sized
	for _, r := range outcomes {
		switch {
		case r.err != nil && errors.Is(r.err.Err, errTooLarge):
			list = append(list, sized{r.err.Object, limit + 1, true})
		case r.err == nil && r.value.Object != nil:
			list = append(list, sized{r.value.Object, r.value.size(), false})
		}
	}
	sort.SliceStable(list, func(i, j int) bool { return list[i].n > list[j].n })
	var largest []string
	for _, s := range list[:min(3, len(list))] {
		if s.atLeast {
			largest = append(largest, fmt.Sprintf("%s more than %d bytes", s.o.Describe(), limit))
		} else {
			largest = append(largest, fmt.Sprintf("%s %d bytes", s.o.Describe(), s.n))
		}
	}
	return &BudgetError{Limit: limit, Largest: strings.Join(largest, ", ")}
}
