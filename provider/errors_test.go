package provider

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/coffer-csi/coffer/auth"
	"github.com/coffer-csi/coffer/provider/fetch"
	"github.com/coffer-csi/coffer/provider/render"
	"github.com/coffer-csi/coffer/provider/spc"
)

// objErr is a failure of object index i.
func objErr(i int, kind fetch.Kind) *fetch.ObjectError {
	return &fetch.ObjectError{Object: &spc.Object{Index: i, Name: fmt.Sprintf("o%d", i)}, Entry: -1, Kind: kind, Detail: string(kind)}
}

// indexes lists the objects err names, in its order (nil: not fetch.Errors).
func indexes(err error) []int {
	var es fetch.Errors
	if !errors.As(err, &es) {
		return nil
	}
	out := []int{}
	for _, e := range es {
		out = append(out, e.Object.Index)
	}
	return out
}

func TestMergeErrors(t *testing.T) {
	other := errors.New("the fetch failed as a whole")
	tests := map[string]struct {
		fetchErr, renderErr error
		want                []int // object indexes, in order
		wantErr             error // when not a list
	}{
		"fetch failures only": {
			fetchErr: fetch.Errors{objErr(2, fetch.KindNotFound)},
			want:     []int{2},
		},
		"both, in object order": {
			fetchErr:  fetch.Errors{objErr(1, fetch.KindNotFound), objErr(3, fetch.KindAccessDenied)},
			renderErr: fetch.Errors{objErr(0, fetch.KindInvalid), objErr(2, fetch.KindInvalid)},
			want:      []int{0, 1, 2, 3},
		},
		"wrapped lists are found": {
			fetchErr:  fmt.Errorf("fetching: %w", fetch.Errors{objErr(1, fetch.KindNotFound)}),
			renderErr: fmt.Errorf("rendering: %w", fetch.Errors{objErr(0, fetch.KindInvalid)}),
			want:      []int{0, 1},
		},
		"the size limit is moot when fetches failed": {
			fetchErr:  fetch.Errors{objErr(1, fetch.KindNotFound)},
			renderErr: &render.SizeError{Total: 10, Limit: 1},
			want:      []int{1},
		},
		"a fetch that failed as a whole stays as it is": {
			fetchErr:  other,
			renderErr: fetch.Errors{objErr(0, fetch.KindInvalid)},
			wantErr:   other,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := mergeErrors(tc.fetchErr, tc.renderErr)
			if tc.wantErr != nil {
				if got != tc.wantErr {
					t.Errorf("merged %v, want %v", got, tc.wantErr)
				}
				return
			}
			if idx := indexes(got); !slices.Equal(idx, tc.want) {
				t.Errorf("merged objects %v, want %v (%v)", idx, tc.want, got)
			}
		})
	}
	t.Run("the fetch list is not modified", func(t *testing.T) {
		// Room to append in place: merging must copy, not sort the
		// caller's list under it.
		fetchErr := make(fetch.Errors, 1, 4)
		fetchErr[0] = objErr(1, fetch.KindNotFound)
		mergeErrors(fetchErr, fetch.Errors{objErr(0, fetch.KindInvalid)})
		if fetchErr[0].Object.Index != 1 || fetchErr[:2][1] != nil {
			t.Errorf("merging wrote to the fetch error's list")
		}
	})
}

func TestErrorClass(t *testing.T) {
	tests := map[string]struct {
		err  error
		want string
	}{
		"none":                     {nil, ""},
		"invalid input":            {&InputError{Err: errors.New("objects: missing")}, "invalid_config"},
		"invalid input, wrapped":   {fmt.Errorf("mount: %w", &InputError{Err: errors.New("x")}), "invalid_config"},
		"identity":                 {fmt.Errorf("resolving the AWS identity: %w", &auth.Error{Reason: auth.ReasonNoRole, Msg: "no role"}), "identity_" + auth.ReasonNoRole},
		"response too large":       {&render.SizeError{Total: 10, Limit: 1}, "too_large"},
		"values too large":         {&fetch.BudgetError{Limit: 1}, "too_large"},
		"one object":               {fetch.Errors{objErr(0, fetch.KindThrottled)}, string(fetch.KindThrottled)},
		"the most actionable kind": {fetch.Errors{objErr(0, fetch.KindThrottled), objErr(1, fetch.KindAccessDenied)}, string(fetch.KindAccessDenied)},
		"deadline":                 {fmt.Errorf("waiting: %w", context.DeadlineExceeded), string(fetch.KindTimeout)},
		"canceled":                 {context.Canceled, string(fetch.KindCanceled)},
		"anything else":            {errors.New("boom"), "internal"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := ErrorClass(tc.err); got != tc.want {
				t.Errorf("ErrorClass(%v) = %q, want %q", tc.err, got, tc.want)
			}
		})
	}
}

func TestCredentialsRejected(t *testing.T) {
	tests := map[string]struct {
		err  error
		want bool
	}{
		"none":                           {nil, false},
		"not a list":                     {errors.New("ExpiredTokenException"), false},
		"other kinds":                    {fetch.Errors{objErr(0, fetch.KindAccessDenied), objErr(1, fetch.KindNotFound)}, false},
		"one object's credentials":       {fetch.Errors{objErr(0, fetch.KindNotFound), objErr(1, fetch.KindCredentials)}, true},
		"wrapped":                        {fmt.Errorf("x: %w", fetch.Errors{objErr(0, fetch.KindCredentials)}), true},
		"an identity that failed itself": {&auth.Error{Reason: auth.ReasonDenied, Msg: "denied"}, false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := credentialsRejected(tc.err); got != tc.want {
				t.Errorf("credentialsRejected(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}
